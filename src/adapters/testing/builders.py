"""Small factories of domain objects (and of stored ones) for the contract kit and our own tests.

Ledger transactions take the organization first: ``grant(org_id, amount, key)``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from adapters.testing.storage import StorageBackend
from billing_core.billing_settings import TaxRegistration, TaxRegistrationStatus
from billing_core.catalog import PlanCode
from billing_core.checkout import CheckoutSession, CheckoutStatus
from billing_core.invoices import Invoice, InvoiceItem, InvoiceStatus
from billing_core.ledger import Account, EntryKind, LedgerTransaction, transfer
from billing_core.money import Money
from billing_core.organization import Organization
from billing_core.outbox import OutboxMessage, OutboxTopic, new_message
from billing_core.payments import Payment, PaymentMethod, PaymentPurpose, PaymentStatus, PaymentType
from billing_core.plan_subscription import PlanSubscription, SubscriptionStatus
from billing_core.product_subscription import ProductSubscription
from billing_core.refund_policy import RefundDecision, RefundDecisionStatus, RefundRequest
from billing_core.tax import TaxLine, TaxTreatment
from billing_core.usage import UsageEvent
from billing_core.wallet import WalletAccount

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
PRODUCT = uuid.UUID("11111111-1111-4111-8111-111111111111")
OTHER_PRODUCT = uuid.UUID("22222222-2222-4222-8222-222222222222")


def new_org(backend: StorageBackend, *, name: str = "Acme", wallet: bool = True,
            created_at: datetime = NOW, org_id: uuid.UUID | None = None) -> Organization:
    """Store an organization (and its empty wallet) and commit."""
    org = Organization(id=org_id or uuid.uuid4(), name=name, created_at=created_at)
    with backend.uow() as uow:
        uow.organizations.add(org)
        if wallet:
            uow.wallets.create(WalletAccount(organization_id=org.id))
        uow.commit()
    return org


def grant(org_id: uuid.UUID, amount: int, key: str = "grant", at: datetime = NOW) -> LedgerTransaction:
    return transfer(organization_id=org_id, idempotency_key=key, kind=EntryKind.GRANT,
                    description="Free Trial Credits", created_at=at, source=Account.PROMOTIONAL_GRANTS,
                    target=Account.WALLET, amount_micros=amount)


def usage_tx(org_id: uuid.UUID, amount: int, key: str, at: datetime = NOW) -> LedgerTransaction:
    return transfer(organization_id=org_id, idempotency_key=key, kind=EntryKind.USAGE, description="usage",
                    created_at=at, source=Account.UNBILLED_USAGE, target=Account.REVENUE, amount_micros=amount,
                    reference=key)


def top_up(org_id: uuid.UUID, amount: int, key: str, at: datetime = NOW) -> LedgerTransaction:
    return transfer(organization_id=org_id, idempotency_key=key, kind=EntryKind.TOP_UP, description="Add Credits",
                    created_at=at, source=Account.PAYMENT_CLEARING, target=Account.WALLET, amount_micros=amount)


def usage_refund(org_id: uuid.UUID, amount: int, key: str, at: datetime = NOW, *,
                 reason: str = "failed generation reimbursed") -> LedgerTransaction:
    return transfer(organization_id=org_id, idempotency_key=key, kind=EntryKind.AUTOMATIC_REFUND,
                    description="Automatic refund", created_at=at, source=Account.REVENUE,
                    target=Account.UNBILLED_USAGE, amount_micros=amount, reason=reason)


def fund(backend: StorageBackend, org_id: uuid.UUID, amount: int, key: str = "grant") -> None:
    with backend.uow() as uow:
        uow.wallets.post(grant(org_id, amount, key))
        uow.commit()


def plan_subscription(org_id: uuid.UUID, *, created_at: datetime = NOW,
                      status: SubscriptionStatus = SubscriptionStatus.ACTIVE,
                      provider_id: str | None = None) -> PlanSubscription:
    return PlanSubscription(id=uuid.uuid4(), organization_id=org_id, plan=PlanCode.PRO, status=status,
                            created_at=created_at, current_period_start=created_at,
                            current_period_end=created_at + timedelta(days=30), provider_subscription_id=provider_id)


def product_subscription(org_id: uuid.UUID, *, project_id: uuid.UUID | None = None, product_id: uuid.UUID = PRODUCT,
                         start: datetime = NOW, end: datetime | None = None) -> ProductSubscription:
    return ProductSubscription(id=uuid.uuid4(), organization_id=org_id, project_id=project_id, product_id=product_id,
                               start_date=start, end_date=end)


def usage_event(org_id: uuid.UUID, event_id: str, *, quantity: int = 2, unit_price: int = 150,
                at: datetime = NOW, project_id: uuid.UUID | None = None,
                product_id: uuid.UUID = PRODUCT) -> UsageEvent:
    return UsageEvent(event_id=event_id, organization_id=org_id, project_id=project_id, product_id=product_id,
                      quantity=quantity, occurred_at=at, amount_micros=quantity * unit_price,
                      unit_price_micros=unit_price)


def invoice(org_id: uuid.UUID, period_start: datetime, *, status: InvoiceStatus = InvoiceStatus.OPEN,
            number: str | None = None) -> Invoice:
    item = InvoiceItem(product_id=PRODUCT, product="Storage", project_id=None, quantity=3, unit="GB-hour",
                       unit_price_micros=150, amount_micros=450, amount=Money(0, "USD"))
    return Invoice(id=uuid.uuid4(), organization_id=org_id, period_start=period_start,
                   period_end=period_start + timedelta(days=31), status=status, currency_iso="USD", items=(item,),
                   usage_micros=12_345_678, subtotal_cents=1235, credit_applied_cents=1000,
                   tax=TaxLine(TaxTreatment.DOMESTIC_VAT, 1900, 45, None), created_at=NOW, number=number,
                   finalized_at=NOW, due_at=NOW + timedelta(days=14))


def payment(org_id: uuid.UUID, *, created_at: datetime = NOW, provider_id: str | None = None) -> Payment:
    return Payment(id=uuid.uuid4(), organization_id=org_id, purpose=PaymentPurpose.ADD_CREDITS, amount_cents=2500,
                   currency_iso="USD", credits_micros=25_000_000, status=PaymentStatus.PENDING,
                   created_at=created_at, provider_payment_id=provider_id)


def payment_method(org_id: uuid.UUID, provider_id: str, *, default: bool = False,
                   created_at: datetime | None = NOW) -> PaymentMethod:
    return PaymentMethod(id=uuid.uuid4(), organization_id=org_id, provider_payment_method_id=provider_id,
                         payment_type=PaymentType.CARD, default=default, brand="visa", last4="4242", exp_month=12,
                         exp_year=2030, name="A. Card", created_at=created_at)


def tax_registration(org_id: uuid.UUID, value: str = "DE123456789", *, created_at: datetime = NOW) -> TaxRegistration:
    return TaxRegistration(id=uuid.uuid4(), organization_id=org_id, country="DE", description="European VAT number",
                           value=value, status=TaxRegistrationStatus.UNVERIFIED, created_at=created_at)


def refund_request(org_id: uuid.UUID, payment_id: uuid.UUID, *, created_at: datetime = NOW) -> RefundRequest:
    decision = RefundDecision(status=RefundDecisionStatus.APPROVED, amount_cents=1200, credits_micros=12_000_000,
                              message="Refund approved", expected_by=created_at + timedelta(days=10))
    return RefundRequest(id=uuid.uuid4(), organization_id=org_id, payment_id=payment_id, requested_by="user-1",
                         reason="not needed", created_at=created_at, decision=decision)


def checkout(org_id: uuid.UUID | None, *, guest_email: str | None = None,
             status: CheckoutStatus = CheckoutStatus.OPEN, created_at: datetime = NOW,
             provider_id: str | None = None) -> CheckoutSession:
    return CheckoutSession(id=uuid.uuid4(), organization_id=org_id, plan=PlanCode.STARTER, trial=True, status=status,
                           client_secret="cs_secret", return_url="https://example.test/billing",
                           created_at=created_at, provider_session_id=provider_id, guest_email=guest_email)


def outbox_message(org_id: uuid.UUID, dedupe_key: str, *, created_at: datetime = NOW) -> OutboxMessage:
    return new_message(organization_id=org_id, topic=OutboxTopic.EMAIL,
                       payload={"to": "billing@acme.test", "subject": "Hi", "n": 3, "nested": {"ok": True}},
                       created_at=created_at, dedupe_key=dedupe_key)
