"""The one error hierarchy of billing-core, by concept.

Every error carries a stable machine ``code`` (never reworded once released) and, where a
single input is at fault, the ``field`` that caused it. Three kinds of class live here:

- **categories** (``InvalidInput``, ``BadRequest``, ``NotFound``, ``Unauthenticated``,
  ``PermissionDenied``, ``Conflict``, ``PaymentRequired``, ``Unavailable``): what kind of failure
  it is. The core knows no HTTP status; entrypoints map *categories* to statuses, by type.
- **concept roots** (``WalletError``, ``UsageError``, ``SubscriptionError``, ``CheckoutError``,
  ``PaymentError``, ``RefundError``, ``InvoiceError``, ``DeliveryError``, ``StorageError``): which
  part of billing refused. Catch a root to handle everything one concept raises.
- **leaves**: one rule each, ``code`` a class attribute, the docstring naming the rule guarded,
  e.g. ``class ConcurrentUpdate(StorageError, Conflict)``. Every leaf code is unique
  (``tests/unit/test_error_codes.py``).

Per-field validation results (``required``, ``invalid_value``, ``invalid_url``, ...) and some
older domain codes are still raised as a category with ``code=``; new rules get a leaf.
"""

from __future__ import annotations

from datetime import datetime
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


class BadRequest(InvalidInput):
    """Category: the request cannot be processed at all (unreadable or unverifiable), not merely
    a value out of range."""

    code = "bad_request"


class MalformedBody(BadRequest):
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


class PaymentRequired(BillingError):
    """Category: money is missing: the wallet, a cap or a delinquent subscription stops the action.
    The ``reason`` is the code."""

    code = "payment_required"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)
        self.reason = reason
        self.code = reason


class Unavailable(BillingError):
    """Category: something billing depends on is down; nothing was committed and the same request
    may be retried."""

    code = "unavailable"
    retryable = True

    def __init__(self, message: str) -> None:
        super().__init__(message)


# --- concept roots: no ``__init__`` of their own, so a leaf takes its category's constructor ---------

class WalletError(BillingError):
    """Root of the wallet's rules: balances, ledger, holds, spend guard."""


class UsageError(BillingError):
    """Root of usage reporting's rules."""


class SubscriptionError(BillingError):
    """Root of subscriptions' and plan changes' rules."""


class CheckoutError(BillingError):
    """Root of checkout sessions' rules."""


class RefundError(BillingError):
    """Root of refunds' rules."""


class InvoiceError(BillingError):
    """Root of invoicing's rules (periods, legal documents, e-invoices)."""


class DeliveryError(BillingError):
    """Root of outbound delivery's rules (webhooks, email)."""


class StorageError(BillingError):
    """Root of storage's rules (concurrency, availability)."""


class IdempotencyError(BillingError):
    """Root of idempotent requests' rules."""


# --- leaves -------------------------------------------------------------------------------------

class IdempotencyKeyReused(IdempotencyError, Conflict):
    """An idempotency key may only ever describe one request body."""

    code = "idempotency_key_reused"

    def __init__(self, key: str) -> None:
        super().__init__(f"idempotency key {key!r} was already used with a different request")
        self.key = key


class IdempotencyRequestInProgress(IdempotencyError, Conflict):
    """One idempotency key runs one request at a time, across every process: a retry that arrives
    while the first attempt still runs (on this or another web process) is told to retry shortly
    instead of running the mutation a second time."""

    code = "idempotency_request_in_progress"

    def __init__(self, key: str) -> None:
        super().__init__(f"a request with idempotency key {key!r} is still in progress: retry shortly")
        self.key = key


class EventIdReused(UsageError, Conflict):
    """A usage ``event_id`` names one event: reported again, it must be the same event."""

    code = "event_id_reused"

    def __init__(self, event_id: str, *, field: str = "event_id") -> None:
        super().__init__(f"event_id {event_id!r} was already reported with another product, project, quantity "
                         "or occurred_at", field=field)
        self.event_id = event_id


class UsageEventNotFound(UsageError, NotFound):
    """Only recorded usage events are stored (allowed debits and hold settles): a denied event, one
    never reported, or another organization's has nothing to explain."""

    code = "usage_event_not_found"

    def __init__(self, event_id: str) -> None:
        BillingError.__init__(self, f"usage event {event_id!r} not found in this organization; denied events "
                              "are not stored, so only events that were charged can be explained",
                              kind="usage event", key=event_id)
        self.kind = "usage event"
        self.key = event_id
        self.event_id = event_id


class IllegalTransition(SubscriptionError, Conflict):
    """Statuses (subscriptions, invoices, payments) move only along their transition tables."""

    code = "illegal_transition"

    def __init__(self, current: str, target: str, *, subject: str = "subscription") -> None:
        article = "an" if subject[:1].lower() in "aeiou" else "a"
        super().__init__(f"{article} {subject} cannot go from {current} to {target}")
        self.current = current
        self.target = target


class ConcurrentUpdate(StorageError, Conflict):
    """A row changed between read and conditional write (optimistic version, lock lost): nothing
    was written and the same request may be retried."""

    code = "concurrent_update"


class CheckoutClosed(CheckoutError, Conflict):
    """Only an open checkout session (with its provider session) can complete or be resumed."""

    code = "checkout_closed"


class AlreadySubscribed(CheckoutError, Conflict):
    """A workspace has at most one live plan subscription: a second checkout changes the plan instead."""

    code = "already_subscribed"


class SubscriptionRequired(SubscriptionError, Conflict):
    """Credit packs and plan changes need an active plan subscription."""

    code = "subscription_required"


class PlanChangeExists(SubscriptionError, Conflict):
    """A subscription changes plan at most once per version."""

    code = "plan_change_exists"


class ProductNotSubscribed(UsageError, Conflict):
    """Usage (and holds) of a product need the project's active subscription to it at that moment."""

    code = "product_not_subscribed"


class HoldSettled(WalletError, Conflict):
    """A settled hold is final: settled again only with the same event and quantity, never released."""

    code = "hold_settled"


class DuplicateInvoice(InvoiceError, Conflict):
    """An organization has one invoice per billing period."""

    code = "duplicate_invoice"


class DuplicateTaxRegistration(InvoiceError, Conflict):
    """A tax registration (country and value) is recorded once per organization."""

    code = "duplicate_tax_registration"


class Duplicate(StorageError, Conflict):
    """A record's unique key (id, provider id, email, slug, ...) is stored once; inserting it again
    changes nothing."""

    code = "duplicate"


class PlanChanged(SubscriptionError, Conflict):
    """A plan change applies to the subscription version it was previewed on; a change meanwhile
    refuses it."""

    code = "plan_changed"


class SamePlan(SubscriptionError, InvalidInput):
    """A plan change names a plan other than the current one."""

    code = "same_plan"


class PreviewExpired(SubscriptionError, InvalidInput):
    """A plan-change preview is honoured only until it expires."""

    code = "preview_expired"


class NoBillingRecord(SubscriptionError, Conflict):
    """Provider-side subscription actions (portal, status) need the organization's billing record."""

    code = "no_billing_record"


class RefundRequestReused(RefundError, Conflict):
    """A refund request id names one refund: sent again, it must ask for the same refund."""

    code = "refund_request_reused"


class InvoicePaid(InvoiceError, Conflict):
    """A paid invoice is final: it cannot be voided or changed."""

    code = "invoice_paid"


class PeriodNotEnded(InvoiceError, InvalidInput):
    """A billing period is closed only after it has ended."""

    code = "period_not_ended"


class DuplicateEventId(UsageError, InvalidInput):
    """An event id appears at most once in one usage batch."""

    code = "duplicate_event_id"


class DuplicateProviderSubscription(CheckoutError, Conflict):
    """A provider subscription belongs to one checkout only."""

    code = "duplicate_provider_subscription"


class SettleExceedsHold(WalletError, Conflict):
    """A hold settles for at most the held amount plus the organization's allowed overrun."""

    code = "settle_exceeds_hold"


class CurrencyMismatch(WalletError, InvalidInput):
    """Money of different currencies is never added, compared or mixed."""

    code = "currency_mismatch"


class NothingToRefund(RefundError, InvalidInput):
    """Only a paid payment can be refunded."""

    code = "nothing_to_refund"


class AlreadyCredited(InvoiceError, InvalidInput):
    """A credit note credits at most what is left of its invoice."""

    code = "already_credited"


class InvoiceInconsistent(InvoiceError, InvalidInput):
    """An invoice's items add up to its subtotal before a legal document is issued."""

    code = "invoice_inconsistent"


class LegalDocumentRejected(InvoiceError, InvalidInput):
    """The invoicing service refused the legal document; it is not issued."""

    code = "legal_document_rejected"


class SsrfBlocked(DeliveryError, InvalidInput):
    """A webhook URL never points at (or resolves to) a private or loopback address."""

    code = "ssrf_blocked"


class WebhookSecretMissing(DeliveryError, InvalidInput):
    """A webhook is sent only signed with the organization's webhook secret."""

    code = "webhook_secret_missing"


class EmailRejected(DeliveryError, InvalidInput):
    """An email the mail server refuses for its recipient is not retried."""

    code = "email_rejected"


class TransactionAborted(StorageError, Conflict):
    """After a failed statement a unit of work is rolled back before it is used again."""

    code = "transaction_aborted"


class InvalidSignature(BadRequest):
    """A provider event is applied only when its signature verifies against the webhook secret."""

    code = "invalid_signature"


class SpendDenied(WalletError, PaymentRequired):
    """The spend guard denies a debit the wallet, a cap or a delinquent subscription cannot cover;
    ``retry_at`` says when the denial lifts by itself."""

    def __init__(self, reason: str, message: str, retry_at: datetime | None, budget: object = None) -> None:
        super().__init__(reason, message)
        self.retry_at = retry_at
        self.budget = budget
        """For a budget denial: the :class:`billing_core.budgets.BudgetBreach` reached (ADR 0017)."""


class PaymentError(BillingError):
    """Root of payments: the payment provider refused or failed an operation (status 402). An
    outage is not a refusal: that is ``ProviderUnavailable``."""

    code = "payment_error"

    def __init__(self, message: str, *, code: str | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.retryable = retryable


class PaymentDeclined(PaymentError):
    """A payment the issuer declined is failed, never retried with the same card."""

    code = "payment_declined"

    def __init__(self, message: str = "the payment was declined") -> None:
        super().__init__(message)


class AuthenticationRequired(PaymentError):
    """An off-session payment the issuer wants authenticated (3-D Secure) needs the customer present."""

    code = "authentication_required"

    def __init__(self, message: str = "the payment needs the customer's authentication") -> None:
        super().__init__(message)


class ProviderRefused(PaymentError):
    """The payment provider refused a request or answered without what the call needs (no client
    secret, no item): nothing is retried automatically."""

    code = "provider_error"


class ProviderMisconfigured(PaymentError):
    """The payment provider's API key must be valid and hold every permission billing uses."""

    code = "provider_misconfigured"


class CryptoUnavailable(PaymentError):
    """Crypto payments are offered only when the provider account has them enabled."""

    code = "crypto_unavailable"


class ProviderUnavailable(Unavailable):
    """A remote service (payment provider, invoicing, mail, tax-id registry, webhook endpoint) that
    is down or rate limiting fails nothing: the same request may be retried. An availability error,
    not a ``PaymentError``: catch ``PaymentError | ProviderUnavailable`` where both matter."""

    code = "provider_unavailable"

    def __init__(self, message: str = "the payment provider is unavailable, try again later") -> None:
        super().__init__(message)


class StorageUnavailable(StorageError, Unavailable):
    """The database cannot be reached or dropped the connection: nothing of the unit of work was
    committed, and the same request may be retried."""

    code = "storage_unavailable"

    def __init__(self, message: str = "the database is unavailable, try again later") -> None:
        super().__init__(message)


class LedgerImbalance(WalletError):
    """Every ledger transaction's postings sum to zero."""

    code = "ledger_imbalance"

    def __init__(self, total: int) -> None:
        super().__init__(f"ledger transaction does not balance: postings sum to {total}")
        self.total = total


class ReconciliationFailed(WalletError):
    """Stored balances equal the sum of their postings."""

    code = "reconciliation_failed"
