"""No read or write crosses organizations: another organization's rows are NotFound (or absent
from lists), on every backend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from adapters.testing.builders import (
    NOW,
    PRODUCT,
    fund,
    invoice,
    new_org,
    payment,
    payment_method,
    plan_subscription,
    product_subscription,
    refund_request,
    tax_registration,
    usage_event,
    usage_tx,
)
from adapters.testing.storage import StorageBackend
from billing_core.errors import InvalidInput, NotFound
from billing_core.ledger import Account
from billing_core.organization import ApiToken, Membership
from billing_core.permissions import Role
from billing_core.wallet import SpendLimits, SubscriptionGate


class IsolationContract:
    """No read or write crosses organizations, on the ``storage`` under test."""

    def test_one_organization_cannot_read_or_change_anothers_rows(self, storage: StorageBackend) -> None:
        alice, mallory = new_org(storage, name="Alice"), new_org(storage, name="Mallory")
        fund(storage, alice.id, 10_000)
        sub = plan_subscription(alice.id)
        product = product_subscription(alice.id)
        inv = invoice(alice.id, datetime(2026, 2, 1, tzinfo=UTC))
        method = payment_method(alice.id, "pm_alice")
        registration = tax_registration(alice.id)
        pay = payment(alice.id, provider_id="pi_alice")
        token = ApiToken(id=payment(alice.id).id, organization_id=alice.id, token_hash="t" * 64, name="t",
                         created_at=NOW, user_id="alice")
        with storage.uow() as uow:
            uow.wallets.debit(alice.id, 100, NOW, usage_tx(alice.id, 100, "u-1"))
            uow.plan_subscriptions.add(sub)
            uow.product_subscriptions.add(product)
            uow.usage.record(usage_event(alice.id, "e-1"))
            uow.invoices.add(inv)
            uow.payment_methods.add(method)
            uow.settings.add_tax_registration(registration)
            uow.payments.add(pay)
            uow.refunds.add(refund_request(alice.id, pay.id))
            uow.organizations.add_membership(Membership(organization_id=alice.id, user_id="alice",
                                                        email="alice@example.test", role=Role.PRIMARY_OWNER))
            uow.organizations.add_token(token)
            uow.commit()

        m = mallory.id
        with storage.uow() as uow:
            # reads by id with the wrong organization
            reads: list[Callable[[], object]] = [
                lambda: uow.plan_subscriptions.get(m, sub.id),
                lambda: uow.product_subscriptions.get(m, product.id),
                lambda: uow.invoices.get(m, inv.id),
                lambda: uow.payment_methods.get(m, method.id),
                lambda: uow.settings.get_tax_registration(m, registration.id),
                lambda: uow.payments.get(m, pay.id)]
            for read in reads:
                with pytest.raises(NotFound):
                    read()
            # lookups and lists scoped to the organization come back empty
            assert uow.ledger.get_by_key(m, "u-1") is None
            assert uow.ledger.list(m).items == []
            assert dict(uow.ledger.account_sums(m)) == dict.fromkeys(Account, 0)
            assert uow.plan_subscriptions.current(m) is None
            assert uow.product_subscriptions.list(m).items == []
            assert not uow.product_subscriptions.active_for(m, None, PRODUCT, NOW)
            assert uow.usage.get_event(m, "e-1") is None
            assert uow.usage.uninvoiced(m, NOW + timedelta(days=1)) == []
            assert uow.usage.buckets(m, NOW - timedelta(days=1), NOW + timedelta(days=1)) == []
            assert uow.invoices.for_period(m, inv.period_start) is None
            assert uow.invoices.list(m).items == []
            assert uow.payment_methods.list(m) == []
            assert uow.payment_methods.by_provider_id(m, "pm_alice") is None
            assert uow.settings.tax_registrations(m) == []
            assert uow.payments.list(m).items == []
            assert uow.refunds.list(m) == []
            assert uow.organizations.membership(m, "alice") is None

            # writes aimed at another organization's rows are NotFound and change nothing
            writes: list[Callable[[], object]] = [
                lambda: uow.plan_subscriptions.save(msgspec.structs.replace(sub, organization_id=m)),
                lambda: uow.product_subscriptions.save(msgspec.structs.replace(product, organization_id=m)),
                lambda: uow.invoices.save(msgspec.structs.replace(inv, organization_id=m)),
                lambda: uow.payment_methods.save(msgspec.structs.replace(method, organization_id=m)),
                lambda: uow.payment_methods.remove(m, method.id),
                lambda: uow.settings.save_tax_registration(msgspec.structs.replace(registration, organization_id=m)),
                lambda: uow.settings.remove_tax_registration(m, registration.id),
                lambda: uow.payments.save(msgspec.structs.replace(pay, organization_id=m)),
                lambda: uow.organizations.save_token(msgspec.structs.replace(token, organization_id=m))]
            for write in writes:
                with pytest.raises(NotFound):
                    write()
            # a debit of another organization's transaction is refused outright
            with pytest.raises(InvalidInput):
                uow.wallets.debit(m, 100, NOW, usage_tx(alice.id, 100, "u-2"))
            assert uow.usage.mark_invoiced(m, NOW + timedelta(days=1), inv.id) == 0
            uow.wallets.set_limits(m, SpendLimits(daily_budget_micros=1))
            uow.wallets.set_gate(m, SubscriptionGate(status="canceled"))
            uow.commit()

        with storage.uow() as uow:
            wallet = uow.wallets.get(alice.id)
            assert (wallet.balance_micros, wallet.limits, wallet.gate) == (9_900, SpendLimits(), SubscriptionGate())
            assert uow.plan_subscriptions.get(alice.id, sub.id) == sub
            assert uow.product_subscriptions.get(alice.id, product.id) == product
            assert uow.invoices.get(alice.id, inv.id) == inv
            assert uow.payment_methods.list(alice.id) == [method]
            assert uow.settings.tax_registrations(alice.id) == [registration]
            assert uow.payments.get(alice.id, pay.id) == pay
            assert uow.organizations.token_by_hash(token.token_hash) == token
            assert [b.invoice_id for b in uow.usage.uninvoiced(alice.id, NOW + timedelta(days=1))] == [None]
            assert uow.ledger.get_by_key(alice.id, "u-1") is not None
