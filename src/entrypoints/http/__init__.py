"""The HTTP service: a Litestar app over the container's BillingContext."""

from entrypoints.http.app import create_app

__all__ = ["create_app"]
