"""The one error hierarchy of billing-core.

Every error carries a stable machine ``code`` (never reworded once released) and, where a
single input is at fault, the ``field`` that caused it. The core knows no HTTP status:
entrypoints map codes to statuses.
"""

from __future__ import annotations

from typing import Any


class BillingError(Exception):
    """Root of every error the billing core raises on purpose."""

    code: str = "billing_error"

    def __init__(self, message: str, *, field: str | None = None, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.context = context

    def as_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready view for logs and problem documents."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class InvalidInput(BillingError):
    """An input value breaks a documented rule (range, format, currency, ...)."""

    code = "invalid_input"

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        super().__init__(message, field=field)
        if code is not None:
            self.code = code


class MalformedBody(InvalidInput):
    """A body must be readable JSON, nested at most ``billing_core.payloads.MAX_JSON_DEPTH`` deep."""

    code = "malformed_body"

    def __init__(self, message: str, *, field: str = "body") -> None:
        super().__init__(field, message)


class NotFound(BillingError):
    """The thing does not exist, or not in the caller's organization."""

    code = "not_found"

    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"{kind} {key} not found", kind=kind, key=str(key))
        self.kind = kind
        self.key = key


class Unauthenticated(BillingError):
    """No valid credential was presented."""

    code = "unauthenticated"

    def __init__(self, message: str = "a valid bearer token is required") -> None:
        super().__init__(message)


class PermissionDenied(BillingError):
    """The actor's role or token scopes do not grant the action."""

    code = "permission_denied"

    def __init__(self, action: str, message: str | None = None) -> None:
        super().__init__(message or f"not allowed to {action}", action=action)
        self.action = action


class Conflict(BillingError):
    """The request clashes with the current state (duplicate, wrong state, reused key)."""

    code = "conflict"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message, field=field)
        if code is not None:
            self.code = code


class IdempotencyKeyReused(Conflict):
    """An idempotency key may only ever describe one request body."""

    def __init__(self, key: str) -> None:
        super().__init__(f"idempotency key {key!r} was already used with a different request",
                         code="idempotency_key_reused")
        self.key = key


class IdempotencyRequestInProgress(Conflict):
    """One idempotency key runs one request at a time, across every process: a retry that arrives
    while the first attempt still runs (on this or another web process) is told to retry shortly
    instead of running the mutation a second time."""

    def __init__(self, key: str) -> None:
        super().__init__(f"a request with idempotency key {key!r} is still in progress: retry shortly",
                         code="idempotency_request_in_progress")
        self.key = key


class EventIdReused(Conflict):
    """A usage ``event_id`` names one event: reported again, it must be the same event."""

    def __init__(self, event_id: str, *, field: str = "event_id") -> None:
        super().__init__(f"event_id {event_id!r} was already reported with another product, project, quantity "
                         "or occurred_at", code="event_id_reused", field=field)
        self.event_id = event_id


class IllegalTransition(Conflict):
    """Statuses (subscriptions, invoices, payments) move only along their transition tables."""

    def __init__(self, current: str, target: str, *, subject: str = "subscription") -> None:
        article = "an" if subject[:1].lower() in "aeiou" else "a"
        super().__init__(f"{article} {subject} cannot go from {current} to {target}", code="illegal_transition")
        self.current = current
        self.target = target


class PaymentRequired(BillingError):
    """Money is missing: the wallet, a cap or a delinquent subscription stops the action."""

    code = "payment_required"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)
        self.reason = reason
        self.code = reason


class PaymentError(BillingError):
    """The payment provider refused or failed an operation."""

    code = "payment_error"

    def __init__(self, message: str, *, code: str | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.retryable = retryable


class PaymentDeclined(PaymentError):
    """The card or account was declined by the issuer."""

    def __init__(self, message: str = "the payment was declined") -> None:
        super().__init__(message, code="payment_declined")


class AuthenticationRequired(PaymentError):
    """The issuer wants the customer present (3-D Secure) for this off-session payment."""

    def __init__(self, message: str = "the payment needs the customer's authentication") -> None:
        super().__init__(message, code="authentication_required")


class ProviderUnavailable(PaymentError):
    """A remote service is down or rate limiting; the same request may be retried."""

    def __init__(self, message: str = "the payment provider is unavailable, try again later") -> None:
        super().__init__(message, code="provider_unavailable", retryable=True)


class StorageUnavailable(BillingError):
    """The database cannot be reached or dropped the connection: nothing of the unit of work was
    committed, and the same request may be retried."""

    code = "storage_unavailable"

    def __init__(self, message: str = "the database is unavailable, try again later") -> None:
        super().__init__(message)
        self.retryable = True


class LedgerImbalance(BillingError):
    """Every ledger transaction's postings sum to zero."""

    code = "ledger_imbalance"

    def __init__(self, total: int) -> None:
        super().__init__(f"ledger transaction does not balance: postings sum to {total}")
        self.total = total


class ReconciliationFailed(BillingError):
    """Stored balances equal the sum of their postings."""

    code = "reconciliation_failed"
