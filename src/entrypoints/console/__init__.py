"""The billing console: HTML pages over the JSON API (see docs/adr/0006-console-front-end.md)."""

from entrypoints.console.router import CONTENT_SECURITY_POLICY, StripeJs, console_router, content_security_policy

__all__ = ["CONTENT_SECURITY_POLICY", "StripeJs", "console_router", "content_security_policy"]
