"""Request and response bodies of the HTTP API, as msgspec Structs.

Request bodies refuse unknown fields, so a typo is a 422 naming the field instead of a silent no-op.
Credits are integer micro-dollars (``*_micros``) with a display string (``$12.480``); invoice money
is ``{cents, currency_iso}``. Datetimes are ISO 8601 UTC with ``Z``; ids are UUIDs.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

import msgspec

from billing_core.budgets import BudgetBreach
from billing_core.checkout import CheckoutStatus, PlanAction
from billing_core.credit_packs import PackState
from billing_core.feed import EntryTone
from billing_core.grace_window import GraceState
from billing_core.holds import HoldOverrun, HoldStatus
from billing_core.invoices import InvoiceStatus
from billing_core.ledger import EntryKind
from billing_core.money import Money
from billing_core.organization import TokenStatus
from billing_core.payments import PaymentPurpose, PaymentStatus, PaymentType
from billing_core.plan_subscription import StatusColor, SubscriptionStatus
from billing_core.refund_policy import RefundDecisionStatus, RefundDenial, RefundStatus
from billing_core.spend_guard import DenialReason, ProductionHealth, SpendWarning
from billing_core.tax import TaxTreatment

T = TypeVar("T")

ShortText = Annotated[str, msgspec.Meta(max_length=2048)]
# No schema limits on these two: the core's rule answers every refusal with its own code naming the field.
DecimalDollars = Annotated[str, msgspec.Meta(description=(
    "Dollars as a canonical decimal string (\"25.00\") matching ^(0|[1-9][0-9]{0,11})(\\.[0-9]{1,6})?$ "
    "in ASCII digits: no sign, exponent, leading zeros or spaces. Anything else is a 422 invalid_amount."))]
ReturnUrl = Annotated[str, msgspec.Meta(description=(
    "An http(s) URL with a host, or an absolute path (/billing), at most 2,000 characters; no javascript:, "
    "data:, //host, backslashes, whitespace or control characters. Anything else is a 422 invalid_url."))]
Identifier = Annotated[str, msgspec.Meta(max_length=256)]


# --------------------------------------------------------------------------- shared


class Page(msgspec.Struct, Generic[T]):
    """One page of a list; pass ``next_cursor`` as ``cursor`` for the next one (null on the last)."""

    items: list[T]
    next_cursor: str | None = None


class Credits(msgspec.Struct, frozen=True, gc=False):
    """A credit amount: exact micro-dollars and the console's three-decimal display (``$12.480``)."""

    micros: int
    display: str


class Problem(msgspec.Struct, omit_defaults=True):
    """``application/problem+json`` (RFC 9457) with the core's stable ``code``."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    field: str | None = None
    reason: str | None = None
    retry_at: datetime | None = None
    errors: list[FieldError] | None = None
    budget: BudgetProblem | None = None
    """A budget denial (402): which budget was reached (ADR 0017)."""


class BudgetProblem(msgspec.Struct):
    """The budget a 402 names: whose (organization, project, token), which period, and what counts."""

    scope: str
    scope_id: uuid.UUID
    period: str
    limit_micros: int
    spent_micros: int
    held_micros: int
    retry_at: datetime

    @classmethod
    def of(cls, breach: BudgetBreach) -> BudgetProblem:
        return cls(scope=breach.scope.value, scope_id=breach.scope_id, period=breach.period.value,
                   limit_micros=breach.limit_micros, spent_micros=breach.spent_micros,
                   held_micros=breach.held_micros, retry_at=breach.retry_at)


class FieldError(msgspec.Struct, omit_defaults=True):
    field: str
    message: str
    source: str | None = None


class Health(msgspec.Struct):
    status: str
    storage: str
    payments: str


class Ready(msgspec.Struct):
    status: str
    storage: str
    last_closed_period: str | None
    """The last month the scheduled close completed (``YYYY-MM``), or null."""
    background_worker: bool
    """Whether this server delivers the outbox and runs scheduled jobs itself (in the worker process
    it supervises, or in a thread); false when a separate ``billing worker`` does it."""


# --------------------------------------------------------------------------- request bodies


class Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body."""


class AttachPaymentMethodBody(Body):
    payment_method_id: Identifier
    """The provider's id (``pm_...``) collected with Stripe.js."""


class CheckoutBody(Body):
    plan: Identifier
    return_url: ReturnUrl


class PlanChangePreviewBody(Body):
    plan: Identifier
    at: datetime | None = None
    """When to price the change; default now. Pass the preview's ``at`` to the change."""


class PlanChangeBody(Body):
    plan: Identifier
    preview_at: datetime


class PortalBody(Body):
    return_url: ReturnUrl


class PackPurchaseBody(Body):
    pack_dollars: int
    payment_method_id: uuid.UUID | None = None


class AddCreditsBody(Body):
    """``amount`` in dollars as a decimal string (``"25.00"``) or ``amount_micros``; pay with a saved
    method (``payment_method_id``, default method if omitted) or ``method: "crypto"``."""

    amount: DecimalDollars | None = None
    amount_micros: int | None = None
    payment_method_id: uuid.UUID | None = None
    method: Identifier | None = None
    return_url: ReturnUrl | None = None


class AutoRechargeBody(Body):
    enabled: bool
    threshold_micros: int | None = None
    amount_micros: int | None = None
    payment_method_id: uuid.UUID | None = None


class SpendManagementBody(Body):
    enabled: bool
    daily_budget_micros: int | None = None
    daily_email_threshold_micros: int | None = None
    monthly_cap_micros: int | None = None
    webhook_url: ShortText | None = None


class InvoiceAddressBody(Body):
    """Every field is checked by the core, which names the one at fault."""

    company_name: ShortText | None = None
    address_1: ShortText | None = None
    address_2: ShortText | None = None
    city: ShortText | None = None
    postal_code: ShortText | None = None
    region: ShortText | None = None
    country: ShortText | None = None
    po_number: ShortText | None = None


class BillingEmailBody(Body):
    email: ShortText


class TaxRegistrationBody(Body):
    country: Identifier
    value: Identifier
    description: ShortText | None = None


class LowBalanceAlertBody(Body):
    enabled: bool
    threshold_micros: int


class RefundBody(Body):
    payment_id: uuid.UUID
    reason: ShortText | None = None


class AuthorizeBody(Body):
    amount_micros: int = 0
    """The expected cost of the call; 0 asks "may a call start now?"."""
    project_id: uuid.UUID | None = None
    """The call's project: its budget (and the calling token's) is asked too (ADR 0017)."""


class UsageEventBody(Body, gc=False):
    event_id: Identifier
    """Client-supplied unique id: a replay is a no-op."""
    product: Identifier
    """Product code (``compute``) or product UUID."""
    quantity: int
    project_id: uuid.UUID | None = None
    occurred_at: datetime | None = None


class UsageBatchBody(Body):
    events: Annotated[list[UsageEventBody], msgspec.Meta(min_length=1, max_length=1000)]


class UsageRefundBody(Body):
    reason: ShortText | None = None


class ProductSubscriptionBody(Body):
    product: Identifier
    project_id: uuid.UUID | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None


class EndProductSubscriptionBody(Body):
    end_date: datetime | None = None


# --------------------------------------------------------------------------- usage


class UsageLineOut(msgspec.Struct, gc=False):
    """One per hour, project and product: untracked by the garbage collector (values only)."""

    hour: datetime
    project_id: uuid.UUID | None
    product_id: uuid.UUID
    product: str
    product_name: str
    unit: str
    quantity: int
    amount_micros: int
    amount: Money


class UsageProductTotalOut(msgspec.Struct):
    product_id: uuid.UUID
    product: str
    product_name: str
    unit: str
    quantity: int
    amount_micros: int
    amount: Money


class UsageProjectTotalOut(msgspec.Struct):
    project_id: uuid.UUID | None
    amount_micros: int
    amount: Money


class UsageItemOut(msgspec.Struct):
    """Usage of one product in one project over the window, rounded to cents once, as an invoice line is."""

    product_id: uuid.UUID
    product: str
    product_name: str
    project_id: uuid.UUID | None
    quantity: int
    amount_micros: int
    amount: Money


class UsageReportOut(msgspec.Struct):
    """Usage by project and product per hour for ``from <= hour < to``, with totals."""

    organization_id: uuid.UUID
    start: datetime = msgspec.field(name="from")
    end: datetime = msgspec.field(name="to")
    currency_iso: str = "USD"
    lines: list[UsageLineOut] = msgspec.field(default_factory=list)
    by_product: list[UsageProductTotalOut] = msgspec.field(default_factory=list)
    by_project: list[UsageProjectTotalOut] = msgspec.field(default_factory=list)
    total_micros: int = 0
    total: Money = msgspec.field(default_factory=Money.zero)
    items: list[UsageItemOut] = msgspec.field(default_factory=list)
    """One per product and project, each rounded to cents once: the lines an invoice of this window has."""
    invoice_total: Money = msgspec.field(default_factory=Money.zero)
    """The sum of ``items``: what an invoice of exactly this window totals, to the cent (``total`` rounds
    the whole once and can differ from it by a few cents)."""


class DecisionOut(msgspec.Struct):
    """The spend guard's answer: ``retry_at`` says when a denial lifts by itself."""

    allowed: bool
    reason: DenialReason | None
    message: str | None
    retry_at: datetime | None
    warning: SpendWarning | None
    grace_ends_at: datetime | None


class UsageOutcomeOut(msgspec.Struct, gc=False):
    event_id: str
    allowed: bool
    replayed: bool
    amount_micros: int
    balance: Credits
    warning: SpendWarning | None
    grace_ends_at: datetime | None
    reason: str | None = None
    """Why a batched event was denied (single events answer 402 instead)."""
    retry_at: datetime | None = None


class UsageBatchOut(msgspec.Struct):
    results: list[UsageOutcomeOut]
    """One per event, in order; a denied event carries ``allowed: false`` and its reason."""


# --------------------------------------------------------------------------- subscriptions


class ProductSubscriptionOut(msgspec.Struct):
    id: uuid.UUID
    organization_id: uuid.UUID
    project_id: uuid.UUID | None
    product_id: uuid.UUID
    start_date: datetime
    end_date: datetime | None


class PlanChoiceOut(msgspec.Struct):
    plan: str
    name: str
    description: str
    price: Money
    interval: str
    features: list[str]
    action: PlanAction
    action_label: str
    enabled: bool
    disabled_reason: str | None


class PlanSubscriptionOut(msgspec.Struct):
    id: uuid.UUID
    tier: str
    plan: str
    status: SubscriptionStatus
    status_label: str
    color: StatusColor
    message: str
    description: str
    price: Money
    interval: str
    features: list[str]
    current_period_start: datetime
    current_period_end: datetime
    trial_end: datetime | None
    has_billing_record: bool
    cancel_at_period_end: bool = False
    """The subscription ends with the current period (cancelled in the billing portal)."""


class SubscriptionView(msgspec.Struct):
    """The Team plan module: the current plan subscription, or null when there is none."""

    subscription: PlanSubscriptionOut | None


class CheckoutSessionOut(msgspec.Struct):
    id: uuid.UUID
    plan: str
    trial: bool
    status: CheckoutStatus
    client_secret: str
    return_url: str
    """The page to return to, carrying ``checkout_session_id`` and ``checkout_status``."""
    created_at: datetime
    completed_at: datetime | None
    subscription_id: uuid.UUID | None


class PlanChangePreviewOut(msgspec.Struct):
    from_plan: str
    to_plan: str
    at: datetime
    period_end: datetime
    unused_credit: Money
    new_plan_charge: Money
    amount_due: Money


class HostedInvoiceOut(msgspec.Struct):
    provider_invoice_id: str
    hosted_invoice_url: str | None
    status: str


class PlanChangeOut(msgspec.Struct):
    subscription_id: uuid.UUID
    preview: PlanChangePreviewOut
    hosted_invoice: HostedInvoiceOut | None


class PortalOut(msgspec.Struct):
    url: str


# --------------------------------------------------------------------------- invoices


class PeriodOut(msgspec.Struct):
    start: datetime
    end: datetime


class TaxOut(msgspec.Struct):
    treatment: TaxTreatment
    rate_basis_points: int
    amount: Money
    note: str | None


class InvoiceItemOut(msgspec.Struct):
    product: str
    product_id: uuid.UUID
    project: uuid.UUID | None
    quantity: int
    unit: str
    unit_price: str
    """Exact dollars per unit as a decimal string (``"0.04"``)."""
    unit_price_micros: int
    amount: Money
    amount_micros: int


class InvoiceOut(msgspec.Struct):
    """An internal usage invoice."""

    id: uuid.UUID
    number: str | None
    status: InvoiceStatus
    period: PeriodOut
    total: Money
    subtotal: Money
    credit_applied: Money
    tax: TaxOut
    amount_due: Money
    created_at: datetime
    finalized_at: datetime | None
    due_at: datetime | None
    paid_at: datetime | None
    includes_earlier_usage: bool
    hosted_invoice_url: str | None
    items: list[InvoiceItemOut]


class LegalInvoiceOut(msgspec.Struct):
    """A legally binding invoice (EasyBill, or the local PDF renderer offline)."""

    id: uuid.UUID
    number: str | None
    status: InvoiceStatus
    invoice_date: datetime | None
    due_date: datetime | None
    payment_date: datetime | None
    period: PeriodOut
    total: Money
    amount_due: Money
    document_id: str | None
    pdf_available: bool
    pdf_url: str | None
    hosted_invoice_url: str | None


# --------------------------------------------------------------------------- payment methods & payments


class PaymentMethodOut(msgspec.Struct):
    id: uuid.UUID
    payment_type: PaymentType
    default: bool
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    iban: str | None
    """Masked: only the last four characters are ever shown (``****3000``)."""
    name: str | None
    created_at: datetime | None


class SetupIntentOut(msgspec.Struct):
    client_secret: str


class PaymentOut(msgspec.Struct):
    id: uuid.UUID
    purpose: PaymentPurpose
    status: PaymentStatus
    payment_type: PaymentType
    amount: Money
    credits: Credits
    refunded: Money
    created_at: datetime
    settled_at: datetime | None
    failure_message: str | None
    client_secret: str | None
    """Set while the customer must act (3-D Secure, crypto checkout)."""


class RefundDecisionOut(msgspec.Struct):
    status: RefundDecisionStatus
    amount: Money
    credits_micros: int
    denial: RefundDenial | None
    message: str
    expected_by: datetime | None


class RefundOut(msgspec.Struct):
    id: uuid.UUID
    payment_id: uuid.UUID
    requested_by: str
    reason: str | None
    created_at: datetime
    decision: RefundDecisionOut
    provider_refund_id: str | None
    status: RefundStatus
    """denied; pending (approved, the provider has not confirmed yet: retry with the same
    Idempotency-Key); succeeded; failed (the provider refused, the credits are back)."""
    failure_message: str | None
    completed_at: datetime | None


# --------------------------------------------------------------------------- wallet


class CreditPackOut(msgspec.Struct):
    price_dollars: int
    price: Money
    credits: Credits
    label: str


class CreditPackOfferOut(msgspec.Struct):
    state: PackState
    message: str
    enabled: bool
    packs: list[CreditPackOut]


class FeedEntryOut(msgspec.Struct):
    id: uuid.UUID
    kind: EntryKind
    description: str
    reason: str | None
    created_at: datetime
    amount_micros: int
    amount_display: str
    sign: str
    tone: EntryTone
    balance_after: Credits | None
    reference: str | None
    purpose: str = ""
    """What the row was for, in words (usage feed only)."""
    reverses: str | None = None
    """For a refund: the charge it reverses."""


class WalletFiguresOut(msgspec.Struct):
    """The Overview page's figures."""

    total_credits: Credits
    usage_this_period: Credits
    remaining_credits: Credits
    overage_protection: Credits
    daily_hard_limit_used: Credits
    daily_hard_limit: Credits | None
    available_to_use: Credits
    held: Credits
    """Reserved by active holds for calls of unknown cost; already taken off ``available_to_use``."""


class GraceWindowOut(msgspec.Struct):
    state: GraceState
    started_at: datetime | None
    ends_at: datetime | None


class BannerOut(msgspec.Struct):
    kind: str
    message: str


class InvoiceAddressOut(msgspec.Struct):
    company_name: str | None = None
    address_1: str | None = None
    address_2: str | None = None
    city: str | None = None
    postal_code: str | None = None
    region: str | None = None
    country: str | None = None
    po_number: str | None = None


class AutoRechargeOut(msgspec.Struct):
    enabled: bool
    state: str
    """``Enabled`` or ``Disabled``, as the console's auto-recharge section says. A recharge paused
    after repeated failed charges is ``Enabled``, with ``paused_at`` and ``consecutive_failures``
    saying why it does not charge now."""
    threshold: Credits
    amount: Credits
    payment_method_id: uuid.UUID | None
    consecutive_failures: int
    paused_at: datetime | None


class SpendManagementOut(msgspec.Struct):
    enabled: bool
    state: str
    """``Enabled`` or ``Disabled``."""
    daily_budget: Credits | None
    daily_email_threshold: Credits | None
    monthly_cap: Credits | None
    webhook_url: str | None
    consumed_today: Credits
    consumed_yesterday: Credits


class OverviewOut(msgspec.Struct):
    organization_id: uuid.UUID
    credit_balance: Credits
    wallet: WalletFiguresOut
    address: InvoiceAddressOut | None
    billing_email: str | None
    auto_recharge: AutoRechargeOut
    spend_management: SpendManagementOut
    production_health: ProductionHealth
    grace_window: GraceWindowOut
    banners: list[BannerOut]


class BillingEmailOut(msgspec.Struct):
    email: str | None


class TaxRegistrationOut(msgspec.Struct):
    id: uuid.UUID
    country: str
    description: str
    value: str
    status: str
    created_at: datetime
    verified_at: datetime | None


class LowBalanceAlertOut(msgspec.Struct):
    enabled: bool
    threshold: Credits


class WebhookEventOut(msgspec.Struct):
    event_id: str
    type: str
    outcome: str


# --------------------------------------------------------------------------- account


class ActionOut(msgspec.Struct):
    """One action of the permission matrix as the caller may (not) perform it.

    ``key`` is stable (``add_credits``); ``label`` is the seed's wording; ``message`` is what a
    client shows next to the disabled control when ``allowed`` is false."""

    key: str
    label: str
    permission: str
    allowed: bool
    message: str | None


class MeOut(msgspec.Struct):
    """Who the bearer token speaks for: its organization, role (people), permissions, and every
    action of the permission matrix with whether this caller may perform it."""

    organization_id: uuid.UUID
    subject: str
    role: str | None
    permissions: list[str]
    email: str | None
    actions: list[ActionOut] = msgspec.field(default_factory=list)


class ApiTokenOut(msgspec.Struct):
    """One of the organization's API tokens as anyone who reads billing may see it: never its
    secret, nor the secret's hash."""

    id: uuid.UUID
    name: str
    kind: Literal["member", "service"]
    """``member``: speaks for ``user_id`` with the member's role; ``service``: holds ``scopes``."""
    user_id: str | None
    scopes: list[str]
    """A service token's permissions, sorted; empty for a member's token."""
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    status: TokenStatus
    """``active``, ``expired`` (from ``expires_at`` on) or ``revoked`` (from ``revoked_at`` on; wins over expired)."""


class ClaimsOut(msgspec.Struct):
    claimed: list[CheckoutSessionOut]


class WebhookSecretOut(msgspec.Struct):
    secret: str
    """Verify ``Billing-Webhook-Signature`` with it (docs/webhooks.md)."""


class GuestCheckoutBody(Body):
    email: ShortText
    plan: Identifier
    return_url: ReturnUrl


# --------------------------------------------------------------------------- explaining a usage event


class ExplainedEventOut(msgspec.Struct):
    """The usage event as stored."""

    event_id: str
    product_id: uuid.UUID
    product: str | None
    """The product's code (None if it left the catalog since)."""
    product_name: str | None
    quantity: int
    """Negative for the row an automatic refund records (``refund_of`` names the event it reverses)."""
    project_id: uuid.UUID | None
    occurred_at: datetime
    recorded_at: datetime | None
    """When billing recorded it: its debit's time (the refund's, for a refund's row)."""
    refund_of: str | None


class ExplainedPriceOut(msgspec.Struct):
    """``quantity`` × ``unit_price`` at the rate in force when the event was recorded (stored with it)."""

    unit_price: Credits
    unit: str | None
    priced: Credits
    """``quantity`` × ``unit_price``."""
    amount: Credits
    """What the event was charged: the priced amount, or the held amount when a hold's settle capped it."""
    uncharged: Credits
    """``priced`` − ``amount``."""


class ExplainedDebitOut(msgspec.Struct):
    """The ledger transaction that charged the event (idempotency key ``usage:<event_id>``)."""

    transaction_id: uuid.UUID
    idempotency_key: str
    description: str
    amount: Credits
    """Taken off the credit balance."""
    balance_after: Credits | None
    created_at: datetime


class ExplainedHoldOut(msgspec.Struct):
    """The hold whose settle recorded the event."""

    hold_id: uuid.UUID
    status: HoldStatus
    held: Credits
    max_quantity: int | None
    settled_quantity: int | None
    charged: Credits
    uncharged: Credits
    overrun_rule: HoldOverrun | None
    """The organization's over-hold rule, when the settle asked for more than the hold (null: it did not)."""
    overrun_denied_reason: DenialReason | None
    created_at: datetime
    expires_at: datetime
    closed_at: datetime | None


class ExplainedInvoiceLineOut(msgspec.Struct):
    """The invoice the event's hourly bucket went on and its line for the event's product and project
    (the line sums every such event of the period)."""

    invoice_id: uuid.UUID
    number: str | None
    status: InvoiceStatus
    period_start: datetime
    period_end: datetime
    product_id: uuid.UUID
    product_name: str
    project_id: uuid.UUID | None
    quantity: int
    unit: str
    unit_price: Credits
    usage: Credits
    amount: Money


class ExplainedGrantDrawOut(msgspec.Struct):
    """What the debit drew from one credit grant (or a refund gave back to it)."""

    grant_id: uuid.UUID
    source: str
    """purchase, pack, auto_recharge, promotion, trial or refund."""
    amount: Credits


class ExplainedRefundOut(msgspec.Struct):
    """An automatic refund of the event's charge (idempotency key ``usage-refund:<event_id>``)."""

    transaction_id: uuid.UUID
    idempotency_key: str
    reason: str | None
    amount: Credits
    """Given back to the credit balance."""
    balance_after: Credits | None
    created_at: datetime
    grants: list[ExplainedGrantDrawOut]
    """The grants it gave back to."""


class UsageExplanationOut(msgspec.Struct):
    """One usage event's chain: event → price → debit → (grants drawn) → hold → invoice line → refunds."""

    event: ExplainedEventOut
    price: ExplainedPriceOut
    debit: ExplainedDebitOut | None
    """Null for a refund's row, which charges nothing."""
    grants: list[ExplainedGrantDrawOut]
    """The credit grants that paid the debit, in draw order."""
    credit_line: Credits
    """What of the debit no grant paid (usage on the credit line)."""
    hold: ExplainedHoldOut | None
    """Null for a plain usage report."""
    invoice_line: ExplainedInvoiceLineOut | None
    """Null while the event's hourly bucket is on no invoice."""
    refunds: list[ExplainedRefundOut]
