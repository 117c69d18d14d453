"""The in-memory storage fake: a real unit of work (rollback undoes every write unless commit() is
called), idempotent ledger writes, organization scoping, and stored rows that are copies."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from adapters.fakes import FixedClock, InMemoryStore, InMemoryUnitOfWork
from adapters.fakes.storage import in_memory_uow_factory
from adapters.testing.builders import top_up, usage_tx
from billing_core.billing_settings import BillingSettings, TaxRegistration, TaxRegistrationStatus
from billing_core.budgets import BudgetScope, ScopedBudget
from billing_core.catalog import PlanCode, load_catalog
from billing_core.checkout import CheckoutSession, CheckoutStatus
from billing_core.einvoice import DEMO_SELLER, from_invoice
from billing_core.errors import Conflict, InvalidInput, LedgerImbalance, NotFound
from billing_core.grants import Grant, GrantSource, GrantTerms, MovementSpan
from billing_core.holds import Hold
from billing_core.invoices import NO_TAX, Invoice, InvoiceStatus
from billing_core.ledger import Account, EntryKind, LedgerTransaction, Posting
from billing_core.organization import ApiToken, Membership, Organization, hash_token
from billing_core.outbox import OutboxTopic, new_message
from billing_core.payments import Payment, PaymentMethod, PaymentPurpose, PaymentStatus, PaymentType
from billing_core.permissions import Role
from billing_core.plan_change import preview_change, record_change
from billing_core.plan_subscription import PlanSubscription, SubscriptionStatus
from billing_core.ports import Clock, GrantCursor, StoredResponse, UnitOfWork
from billing_core.product_subscription import ProductSubscription
from billing_core.refund_policy import RefundDecision, RefundDecisionStatus, RefundRequest
from billing_core.spend_guard import DenialReason
from billing_core.usage import UsageEvent
from billing_core.wallet import SpendLimits, SubscriptionGate, WalletAccount
from tests.unit.domain_builders import DOLLAR, NOW, ORG, OTHER_ORG

PRODUCT = uuid.UUID("0e000000-0000-4000-8000-00000000000e")


def snapshot(store: InMemoryStore) -> dict[str, Any]:
    """Every table of the store, copied."""
    return {name: copy.deepcopy(value) for name, value in vars(store).items() if isinstance(value, dict)}


def org(organization_id: uuid.UUID = ORG) -> Organization:
    return Organization(id=organization_id, name="Acme", created_at=NOW)


@pytest.fixture
def seeded() -> InMemoryStore:
    """A store with two organizations, each with a wallet, committed."""
    store = InMemoryStore()
    with InMemoryUnitOfWork(store) as uow:
        for organization_id in (ORG, OTHER_ORG):
            uow.organizations.add(org(organization_id))
            uow.wallets.create(WalletAccount(organization_id=organization_id))
        uow.wallets.post(top_up(ORG, 50 * DOLLAR, "seed"))
        uow.commit()
    return store


def plan_subscription(organization_id: uuid.UUID = ORG) -> PlanSubscription:
    return PlanSubscription(id=uuid.uuid4(), organization_id=organization_id, plan=PlanCode.PRO,
                            status=SubscriptionStatus.ACTIVE, created_at=NOW, current_period_start=NOW,
                            current_period_end=NOW + timedelta(days=30))


def payment(organization_id: uuid.UUID = ORG) -> Payment:
    return Payment(id=uuid.uuid4(), organization_id=organization_id, purpose=PaymentPurpose.ADD_CREDITS,
                   amount_cents=2500, currency_iso="USD", credits_micros=25 * DOLLAR, status=PaymentStatus.PENDING,
                   created_at=NOW, provider_payment_id=f"pi_{uuid.uuid4().hex}")


def invoice(organization_id: uuid.UUID = ORG) -> Invoice:
    return Invoice(id=uuid.uuid4(), organization_id=organization_id, period_start=NOW - timedelta(days=30),
                   period_end=NOW, status=InvoiceStatus.DRAFT, currency_iso="USD", items=(), usage_micros=0,
                   subtotal_cents=0, credit_applied_cents=0, tax=NO_TAX, created_at=NOW)


def write_everything(uow: InMemoryUnitOfWork) -> None:
    """One write through every repository of the unit of work."""
    new_org = uuid.uuid4()
    uow.organizations.add(org(new_org))
    uow.organizations.save(Organization(id=ORG, name="Renamed", created_at=NOW, provider_customer_id="cus_1"))
    uow.organizations.add_membership(Membership(organization_id=ORG, user_id="ada", email="ada@acme.test",
                                                role=Role.PRIMARY_OWNER))
    uow.organizations.add_token(ApiToken(id=uuid.uuid4(), organization_id=ORG, token_hash=hash_token("s"),
                                         name="t", created_at=NOW, user_id="ada"))
    uow.wallets.create(WalletAccount(organization_id=new_org))
    uow.wallets.post(top_up(ORG, 5 * DOLLAR, "top-up"))
    uow.wallets.debit(ORG, DOLLAR, NOW, usage_tx(ORG, DOLLAR, "usage"))
    uow.wallets.set_limits(ORG, SpendLimits(credit_line_micros=DOLLAR))
    uow.wallets.set_gate(ORG, SubscriptionGate(status="past_due", past_due_since=NOW, grace_days=3))
    uow.holds.add(Hold(id=uuid.uuid4(), organization_id=ORG, product_id=uuid.uuid4(), amount_micros=DOLLAR,
                       created_at=NOW, expires_at=NOW + timedelta(minutes=5)))
    sub = plan_subscription()
    uow.plan_subscriptions.add(sub)
    uow.plan_changes.add(record_change(
        change_id=uuid.uuid4(), subscription=sub, invoice_due=True, now=NOW,
        preview=preview_change(sub, load_catalog().plan("pro"), load_catalog().plan("scale"), at=NOW,
                               currency_iso="USD")))
    uow.product_subscriptions.add(ProductSubscription(id=uuid.uuid4(), organization_id=ORG, project_id=None,
                                                      product_id=PRODUCT, start_date=NOW))
    uow.usage.record(UsageEvent(event_id="evt", organization_id=ORG, project_id=None, product_id=PRODUCT, quantity=1,
                                occurred_at=NOW, amount_micros=150, unit_price_micros=150))
    uow.usage.mark_invoiced(ORG, NOW + timedelta(hours=1), uuid.uuid4())
    issued = invoice()
    uow.invoices.add(issued)
    uow.invoices.next_number("INV-")
    uow.invoices.record_einvoice(ORG, issued.id, from_invoice(
        issued, organization=uow.organizations.get(ORG), address=None, billing_email=None, buyer_tax_id=None,
        seller=DEMO_SELLER))
    uow.payment_methods.add(PaymentMethod(id=uuid.uuid4(), organization_id=ORG, provider_payment_method_id="pm_1",
                                          payment_type=PaymentType.CARD))
    uow.settings.save(BillingSettings(organization_id=ORG, billing_email="billing@acme.test"))
    uow.settings.add_tax_registration(TaxRegistration(id=uuid.uuid4(), organization_id=ORG, country="DE",
                                                      description="European VAT number", value="DE123456789",
                                                      status=TaxRegistrationStatus.UNVERIFIED, created_at=NOW))
    paid = payment()
    uow.payments.add(paid)
    uow.refunds.add(RefundRequest(id=uuid.uuid4(), organization_id=ORG, payment_id=paid.id, requested_by="ada",
                                  reason=None, created_at=NOW,
                                  decision=RefundDecision(status=RefundDecisionStatus.DENIED, message="no")))
    uow.checkouts.add(CheckoutSession(id=uuid.uuid4(), organization_id=None, plan=PlanCode.PRO, trial=False,
                                      status=CheckoutStatus.COMPLETE, client_secret="cs", return_url="https://a.test/",
                                      created_at=NOW, guest_email="ada@acme.test"))
    uow.outbox.add(new_message(organization_id=ORG, topic=OutboxTopic.EMAIL, payload={"to": ["x"]}, created_at=NOW,
                               dedupe_key="mail-1"))
    uow.inbox.remember("stripe", "evt_1", NOW)
    uow.idempotency.put(StoredResponse(scope="s", key="k", request_hash="h", status_code=201, body=b"{}",
                                       content_type="application/json", created_at=NOW))
    uow.scheduled_jobs.claim("close-period", "2026-02", "worker-1", NOW, NOW)
    uow.grants.put_terms(GrantTerms(organization_id=ORG, idempotency_key="top-up", source=GrantSource.PACK))
    uow.grants.apply(GrantCursor(organization_id=ORG, sequence=1), [
        Grant(id=uuid.uuid4(), organization_id=ORG, source=GrantSource.PACK, amount_micros=DOLLAR,
              remaining_micros=DOLLAR, created_at=NOW)],
        [MovementSpan(organization_id=ORG, transaction_id=uuid.uuid4(), grant_id=None, amount_micros=1,
                      first_sequence=1, last_sequence=1)],
        expected_sequence=0)
    uow.budgets.add(ScopedBudget(organization_id=ORG, scope=BudgetScope.PROJECT, scope_id=uuid.uuid4(),
                                 daily_micros=DOLLAR))


def test_leaving_without_commit_undoes_every_write(seeded: InMemoryStore) -> None:
    before = snapshot(seeded)
    with InMemoryUnitOfWork(seeded) as uow:
        write_everything(uow)
        assert snapshot(seeded) != before  # the writes were visible inside the unit of work
    assert snapshot(seeded) == before
    assert seeded.commits == 1


def test_an_exception_rolls_back_too(seeded: InMemoryStore) -> None:
    before = snapshot(seeded)

    def fail_midway() -> None:
        with InMemoryUnitOfWork(seeded) as uow:
            write_everything(uow)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_midway()
    assert snapshot(seeded) == before


def test_commit_keeps_every_write(seeded: InMemoryStore) -> None:
    before = snapshot(seeded)
    uow = InMemoryUnitOfWork(seeded)
    with uow:
        write_everything(uow)
        uow.commit()
        after_commit = snapshot(seeded)
    assert uow.committed
    assert seeded.commits == 2
    assert snapshot(seeded) == after_commit
    # Every table was written, so the rollback test above covers every repository.
    assert [name for name in before if after_commit[name] == before[name]] == []
    with InMemoryUnitOfWork(seeded) as check:
        assert check.organizations.get(ORG).name == "Renamed"
        assert check.wallets.get(ORG).balance_micros == 54 * DOLLAR
        assert check.ledger.get_by_key(ORG, "usage") is not None
        assert check.invoices.next_number("INV-") == "INV-000002"


def test_only_writes_after_the_last_commit_are_undone(seeded: InMemoryStore) -> None:
    with InMemoryUnitOfWork(seeded) as uow:
        uow.wallets.post(top_up(ORG, DOLLAR, "kept"))
        uow.commit()
        uow.wallets.post(top_up(ORG, 2 * DOLLAR, "dropped"))
    with InMemoryUnitOfWork(seeded) as uow:
        assert uow.ledger.get_by_key(ORG, "kept") is not None
        assert uow.ledger.get_by_key(ORG, "dropped") is None
        assert uow.wallets.get(ORG).wallet_micros == 51 * DOLLAR


def test_explicit_rollback_undoes_and_the_unit_can_go_on(seeded: InMemoryStore) -> None:
    with InMemoryUnitOfWork(seeded) as uow:
        uow.wallets.post(top_up(ORG, DOLLAR, "a"))
        uow.rollback()
        assert uow.ledger.get_by_key(ORG, "a") is None
        uow.wallets.post(top_up(ORG, DOLLAR, "b"))
        uow.commit()
    with InMemoryUnitOfWork(seeded) as uow:
        assert uow.wallets.get(ORG).wallet_micros == 51 * DOLLAR


def test_invoice_numbers_stay_gapless_across_a_rollback() -> None:
    store = InMemoryStore()
    with InMemoryUnitOfWork(store) as uow:
        assert uow.invoices.next_number("INV-") == "INV-000001"
    with InMemoryUnitOfWork(store) as uow:
        assert uow.invoices.next_number("INV-") == "INV-000001"
        assert uow.invoices.next_number("INV-") == "INV-000002"
        assert uow.invoices.next_number("CN-") == "CN-000001"
        uow.commit()
    with InMemoryUnitOfWork(store) as uow:
        assert uow.invoices.next_number("INV-") == "INV-000003"


def test_the_fakes_implement_the_ports_without_inheriting_them() -> None:
    uow: UnitOfWork = InMemoryUnitOfWork()  # checked by mypy --strict on the tests
    clock: Clock = FixedClock()
    assert UnitOfWork not in type(uow).__mro__ and Clock not in type(clock).__mro__


def test_a_unit_of_work_is_not_reentrant() -> None:
    uow = InMemoryUnitOfWork()
    with uow, pytest.raises(RuntimeError), uow:
        pass  # pragma: no cover
    with uow:  # usable again once left
        pass


def test_the_factory_shares_one_store() -> None:
    store = InMemoryStore()
    make = in_memory_uow_factory(store)
    with make() as uow:
        uow.organizations.add(org())
        uow.commit()
    with make() as uow:
        assert uow.organizations.get(ORG).name == "Acme"


# --------------------------------------------------------------------------- wallet writes


def test_post_is_idempotent_by_key_per_organization(seeded: InMemoryStore) -> None:
    with InMemoryUnitOfWork(seeded) as uow:
        first = uow.wallets.post(top_up(ORG, DOLLAR, "k"))
        again = uow.wallets.post(top_up(ORG, 9 * DOLLAR, "k"))
        other = uow.wallets.post(top_up(OTHER_ORG, 2 * DOLLAR, "k"))
        assert not first.replayed and again.replayed and not other.replayed
        assert again.transaction == first.transaction
        assert first.transaction.wallet_balance_after == 51 * DOLLAR
        assert uow.wallets.get(ORG).wallet_micros == 51 * DOLLAR
        assert uow.wallets.get(OTHER_ORG).wallet_micros == 2 * DOLLAR


def test_post_refuses_an_unbalanced_transaction(seeded: InMemoryStore) -> None:
    forged = LedgerTransaction(id=uuid.uuid4(), organization_id=ORG, idempotency_key="f", kind=EntryKind.ADJUSTMENT,
                               description="forged", reason=None, created_at=NOW,
                               postings=(Posting(Account.WALLET, 10), Posting(Account.REVENUE, -9)))
    before = snapshot(seeded)
    with InMemoryUnitOfWork(seeded) as uow:
        with pytest.raises(LedgerImbalance):
            uow.wallets.post(forged)
        uow.commit()
    assert snapshot(seeded) == before


def test_debit_is_idempotent_by_key(seeded: InMemoryStore) -> None:
    with InMemoryUnitOfWork(seeded) as uow:
        first = uow.wallets.debit(ORG, DOLLAR, NOW, usage_tx(ORG, DOLLAR, "evt-1"))
        replay = uow.wallets.debit(ORG, DOLLAR, NOW, usage_tx(ORG, DOLLAR, "evt-1"))
        uow.commit()
    assert first.decision.allowed and not first.replayed
    assert replay.replayed and replay.decision.allowed
    assert replay.transaction == first.transaction
    assert replay.wallet.balance_micros == first.wallet.balance_micros == 49 * DOLLAR
    with InMemoryUnitOfWork(seeded) as uow:
        w = uow.wallets.get(ORG)
    assert (w.balance_micros, w.spent_today_micros, w.spent_month_micros) == (49 * DOLLAR, DOLLAR, DOLLAR)


def test_a_denied_debit_stores_nothing_and_leaves_its_key_free(seeded: InMemoryStore) -> None:
    before = snapshot(seeded)
    with InMemoryUnitOfWork(seeded) as uow:
        denied = uow.wallets.debit(ORG, 51 * DOLLAR, NOW, usage_tx(ORG, 51 * DOLLAR, "big"))
        uow.commit()
    assert denied.decision.reason is DenialReason.INSUFFICIENT_CREDIT
    assert denied.transaction is None and not denied.replayed
    assert denied.wallet.balance_micros == 50 * DOLLAR
    assert snapshot(seeded) == before
    with InMemoryUnitOfWork(seeded) as uow:
        assert uow.wallets.debit(ORG, 50 * DOLLAR, NOW, usage_tx(ORG, 50 * DOLLAR, "big")).decision.allowed


def test_debit_checks_its_arguments(seeded: InMemoryStore) -> None:
    with InMemoryUnitOfWork(seeded) as uow:
        with pytest.raises(InvalidInput) as wrong_org:
            uow.wallets.debit(ORG, DOLLAR, NOW, usage_tx(OTHER_ORG, DOLLAR, "x"))
        assert wrong_org.value.field == "organization_id"
        with pytest.raises(InvalidInput) as wrong_amount:
            uow.wallets.debit(ORG, 2 * DOLLAR, NOW, usage_tx(ORG, DOLLAR, "x"))
        assert wrong_amount.value.field == "amount_micros"
        stranger = uuid.uuid4()
        with pytest.raises(NotFound):
            uow.wallets.debit(stranger, DOLLAR, NOW, usage_tx(stranger, DOLLAR, "x"))


def test_create_wallet_twice_keeps_the_first(seeded: InMemoryStore) -> None:
    with InMemoryUnitOfWork(seeded) as uow:
        uow.wallets.create(WalletAccount(organization_id=ORG, wallet_micros=999))
        assert uow.wallets.get(ORG).wallet_micros == 50 * DOLLAR


# --------------------------------------------------------------------------- organization scoping


def test_rows_of_another_organization_are_not_found(seeded: InMemoryStore) -> None:
    sub, paid, inv = plan_subscription(), payment(), invoice()
    method = PaymentMethod(id=uuid.uuid4(), organization_id=ORG, provider_payment_method_id="pm_1",
                           payment_type=PaymentType.CARD)
    product_sub = ProductSubscription(id=uuid.uuid4(), organization_id=ORG, project_id=None, product_id=PRODUCT,
                                      start_date=NOW)
    registration = TaxRegistration(id=uuid.uuid4(), organization_id=ORG, country="DE", description="VAT",
                                   value="DE123456789", status=TaxRegistrationStatus.UNVERIFIED, created_at=NOW)
    with InMemoryUnitOfWork(seeded) as uow:
        uow.plan_subscriptions.add(sub)
        uow.payments.add(paid)
        uow.invoices.add(inv)
        uow.payment_methods.add(method)
        uow.product_subscriptions.add(product_sub)
        uow.settings.add_tax_registration(registration)
        uow.commit()
    lookups: list[Callable[[InMemoryUnitOfWork], object]] = [
        lambda uow: uow.plan_subscriptions.get(OTHER_ORG, sub.id),
        lambda uow: uow.payments.get(OTHER_ORG, paid.id),
        lambda uow: uow.invoices.get(OTHER_ORG, inv.id),
        lambda uow: uow.payment_methods.get(OTHER_ORG, method.id),
        lambda uow: uow.payment_methods.remove(OTHER_ORG, method.id),
        lambda uow: uow.product_subscriptions.get(OTHER_ORG, product_sub.id),
        lambda uow: uow.settings.get_tax_registration(OTHER_ORG, registration.id),
        lambda uow: uow.settings.remove_tax_registration(OTHER_ORG, registration.id),
    ]
    with InMemoryUnitOfWork(seeded) as uow:
        for lookup in lookups:
            with pytest.raises(NotFound):
                lookup(uow)
        # Saving a row under another organization's id is refused the same way.
        stolen = copy.copy(sub)
        stolen.organization_id = OTHER_ORG
        with pytest.raises(NotFound):
            uow.plan_subscriptions.save(stolen)
        stolen_payment = copy.copy(paid)
        stolen_payment.organization_id = OTHER_ORG
        with pytest.raises(NotFound):
            uow.payments.save(stolen_payment)
        # Lists never cross organizations.
        assert uow.plan_subscriptions.current(OTHER_ORG) is None
        assert uow.payments.list(OTHER_ORG).items == []
        assert uow.invoices.list(OTHER_ORG).items == []
        assert uow.payment_methods.list(OTHER_ORG) == []
        assert uow.settings.tax_registrations(OTHER_ORG) == []
        assert uow.product_subscriptions.list(OTHER_ORG).items == []
        assert uow.ledger.list(OTHER_ORG).items == []
        assert uow.ledger.get_by_key(OTHER_ORG, "seed") is None
        assert uow.ledger.account_sums(OTHER_ORG)[Account.WALLET] == 0
        # ...and the owner still finds them.
        assert uow.plan_subscriptions.get(ORG, sub.id).id == sub.id
        assert uow.ledger.get_by_key(ORG, "seed") is not None


def test_unknown_ids_are_not_found() -> None:
    with InMemoryUnitOfWork(InMemoryStore()) as uow:
        with pytest.raises(NotFound):
            uow.organizations.get(ORG)
        with pytest.raises(NotFound):
            uow.wallets.get(ORG)
        with pytest.raises(NotFound):
            uow.checkouts.get(uuid.uuid4())
        with pytest.raises(NotFound):
            uow.outbox.save(new_message(organization_id=ORG, topic=OutboxTopic.EMAIL, payload={}, created_at=NOW,
                                        dedupe_key="nope"))


# --------------------------------------------------------------------------- copies and constraints


def test_stored_rows_are_copies(seeded: InMemoryStore) -> None:
    sub = plan_subscription()
    with InMemoryUnitOfWork(seeded) as uow:
        uow.plan_subscriptions.add(sub)
        sub.status = SubscriptionStatus.CANCELED  # the caller's object, not the stored row
        loaded = uow.plan_subscriptions.get(ORG, sub.id)
        assert loaded.status is SubscriptionStatus.ACTIVE
        loaded.status = SubscriptionStatus.PAUSED
        assert uow.plan_subscriptions.get(ORG, sub.id).status is SubscriptionStatus.ACTIVE
        wallet = uow.wallets.get(ORG)
        wallet.wallet_micros = 0
        assert uow.wallets.get(ORG).wallet_micros == 50 * DOLLAR
        message = new_message(organization_id=ORG, topic=OutboxTopic.EMAIL, payload={"to": ["a@acme.test"]},
                              created_at=NOW, dedupe_key="m")
        uow.outbox.add(message)
        message.payload["to"].append("eve@evil.test")
        assert uow.outbox.list()[0].payload == {"to": ["a@acme.test"]}


def test_duplicates_are_conflicts(seeded: InMemoryStore) -> None:
    with InMemoryUnitOfWork(seeded) as uow:
        with pytest.raises(Conflict):
            uow.organizations.add(org())
        sub = plan_subscription()
        uow.plan_subscriptions.add(sub)
        with pytest.raises(Conflict):
            uow.plan_subscriptions.add(sub)
        uow.invoices.add(invoice())
        with pytest.raises(Conflict) as same_period:
            uow.invoices.add(invoice())
        assert same_period.value.code == "duplicate_invoice"
        assert uow.outbox.add(new_message(organization_id=ORG, topic=OutboxTopic.EMAIL, payload={}, created_at=NOW,
                                          dedupe_key="once"))
        assert not uow.outbox.add(new_message(organization_id=ORG, topic=OutboxTopic.EMAIL, payload={},
                                              created_at=NOW, dedupe_key="once"))
        assert uow.inbox.remember("stripe", "evt_1", NOW)
        assert not uow.inbox.remember("stripe", "evt_1", NOW)


def test_optimistic_versions(seeded: InMemoryStore) -> None:
    with InMemoryUnitOfWork(seeded) as uow:
        sub = plan_subscription()
        uow.plan_subscriptions.add(sub)
        newer = uow.plan_subscriptions.get(ORG, sub.id)
        newer.transition(SubscriptionStatus.PAST_DUE, NOW)
        uow.plan_subscriptions.save(newer)
        stale = copy.copy(sub)  # version 0, loaded before the change
        with pytest.raises(Conflict) as info:
            uow.plan_subscriptions.save(stale)
        assert info.value.code == "concurrent_update"
        settings = uow.settings.get(ORG)
        uow.settings.save(settings)
        assert settings.version == 1
        with pytest.raises(Conflict):
            uow.settings.save(BillingSettings(organization_id=ORG))  # version 0 is stale now
