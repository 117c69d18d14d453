"""Outbound webhooks: signed httpx POSTs, and the signature recipe receivers verify with."""

from adapters.webhooks.sender import HttpxWebhookSender
from adapters.webhooks.signature import sign, verify

__all__ = ["HttpxWebhookSender", "sign", "verify"]
