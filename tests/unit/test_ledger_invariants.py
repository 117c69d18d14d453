"""A state machine that drives the real use cases (top-up, usage, automatic refund, grant and expiry,
period close, days passing) against the fakes, checking the ledger invariants after every step.

The properties of money and of single transactions are in test_money_properties and
test_ledger_properties; the repository-level state machine is in test_wallet_state_machine."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from adapters.fakes import InMemoryBilling, in_memory_billing
from billing_core import Permission, SubscriptionStatus, services
from billing_core.billing_settings import SpendManagement
from billing_core.permissions import Actor
from tests.unit.domain_builders import DOLLAR


class WalletMachine(RuleBasedStateMachine):
    """Random life of one organization; every invariant is checked after every step."""

    billing: InMemoryBilling
    org: uuid.UUID
    owner: Actor
    platform: Actor

    @initialize(daily_budget=st.one_of(st.none(), st.integers(min_value=1, max_value=30).map(lambda d: d * DOLLAR)),
                plan=st.sampled_from(["starter", "pro"]))
    def setup(self, daily_budget: int | None, plan: str) -> None:
        self.billing = in_memory_billing(datetime(2026, 4, 1, 10, 0, tzinfo=UTC))
        ctx = self.billing.ctx
        org = services.organizations.create_organization(ctx, name="M", owner_user_id="o", owner_email="o@m.test")
        self.org = org.id
        _, secret = services.organizations.issue_token(ctx, organization_id=org.id, name="o", user_id="o")
        _, svc = services.organizations.issue_token(ctx, organization_id=org.id, name="s",
                                                    scopes=frozenset({Permission.USAGE_WRITE}))
        self.owner = services.organizations.authenticate(ctx, secret)
        self.platform = services.organizations.authenticate(ctx, svc)
        services.product_subscriptions.subscribe_product(ctx, self.owner, organization_id=org.id, product="compute",
                                                         project_id=None, start_date=datetime(2026, 1, 1, tzinfo=UTC))
        services.payment_methods.attach(ctx, self.owner, organization_id=org.id,
                                        provider_payment_method_id="pm_card_visa")
        session = services.checkout.start_checkout(ctx, self.owner, organization_id=org.id, plan=plan,
                                                   return_url="/x")
        assert session.provider_session_id is not None
        services.checkout.complete_checkout(ctx, provider_session_id=session.provider_session_id,
                                            provider_subscription_id="sub_m")
        if daily_budget is not None:
            services.settings.update_spend_management(
                ctx, self.owner, organization_id=org.id,
                spend=SpendManagement(enabled=True, daily_budget_micros=daily_budget))
        self.events: list[str] = []
        self.refunded: set[str] = set()
        self.keys_seen = 0

    @rule(dollars=st.integers(min_value=5, max_value=60))
    def top_up(self, dollars: int) -> None:
        services.payments.add_credits(self.billing.ctx, self.owner, organization_id=self.org,
                                      amount_micros=dollars * DOLLAR)

    @rule(quantity=st.integers(min_value=1, max_value=400), replay=st.booleans())
    def usage(self, quantity: int, replay: bool) -> None:
        event_id = self.events[-1] if replay and self.events else f"e{len(self.events)}-{quantity}"
        if event_id in self.events:
            # A retry is the same event (its id says its quantity); another quantity would be EventIdReused.
            quantity = int(event_id.rsplit("-", 1)[1])
        outcome = services.usage.report_usage(self.billing.ctx, self.platform, organization_id=self.org,
                                              event_id=event_id, product="compute", quantity=quantity)
        if outcome.allowed and not outcome.replayed:
            self.events.append(event_id)

    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        assume(self.events)
        event_id = data.draw(st.sampled_from(self.events))
        outcome = services.usage.refund_usage(self.billing.ctx, self.platform, organization_id=self.org,
                                              event_id=event_id)
        assert outcome.replayed == (event_id in self.refunded)
        self.refunded.add(event_id)

    @rule(dollars=st.integers(min_value=1, max_value=20))
    def grant(self, dollars: int) -> None:
        services.wallet.grant_credits(self.billing.ctx, organization_id=self.org, amount_micros=dollars * DOLLAR,
                                      description="Promotional credits", idempotency_key=f"grant-{uuid.uuid4()}")

    @rule()
    def trial_ends(self) -> None:
        ctx = self.billing.ctx
        with ctx.uow() as uow:
            sub = uow.plan_subscriptions.current(self.org)
        assume(sub is not None and sub.status == SubscriptionStatus.TRIALING)
        services.plan_subscriptions.set_status(ctx, organization_id=self.org, status=SubscriptionStatus.ACTIVE)

    @rule(hours=st.integers(min_value=1, max_value=72))
    def time_passes(self, hours: int) -> None:
        self.billing.clock.advance(timedelta(hours=hours))

    @rule()
    def close_last_month(self) -> None:
        now = self.billing.clock.now()
        last = (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
        services.invoicing.close_period(self.billing.ctx, period=last)

    @invariant()
    def ledger_reconciles(self) -> None:
        if not hasattr(self, "org"):
            return
        report = services.reconcile.reconcile(self.billing.ctx, organization_id=self.org)
        assert report.clean, report

    @invariant()
    def limits_hold(self) -> None:
        if not hasattr(self, "org"):
            return
        with self.billing.ctx.uow() as uow:
            wallet = uow.wallets.get(self.org)
        floor = wallet.limits.minimum_production_credit_micros - wallet.limits.credit_line_micros
        assert wallet.balance_micros >= floor
        if wallet.limits.daily_budget_micros is not None:
            assert wallet.spent_today_micros <= wallet.limits.daily_budget_micros

    @invariant()
    def every_key_applied_once(self) -> None:
        if not hasattr(self, "org"):
            return
        keys = [tx.idempotency_key for tx in self.billing.store.ledger.values()]
        assert len(keys) == len(set(keys))


TestWalletMachine = WalletMachine.TestCase
TestWalletMachine.settings = settings(max_examples=40, stateful_step_count=25, deadline=None,
                                      suppress_health_check=[HealthCheck.too_slow])
