"""The payment provider on Stripe (official ``stripe`` SDK, one ``StripeClient`` per instance)."""

from adapters.stripe.provider import StripePaymentProvider

__all__ = ["StripePaymentProvider"]
