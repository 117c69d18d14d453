"""A host application embedding billing-core with the in-memory adapters.

Run it with ``python examples/embedded.py``: it creates an organization, subscribes it to a plan,
meters usage through the spend guard, closes the month and prints what happened.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.fakes import in_memory_billing
from billing_core import Permission, format_credits, services


def main() -> list[str]:
    billing = in_memory_billing(datetime(2026, 5, 3, 9, 0, tzinfo=UTC))
    ctx = billing.ctx
    lines: list[str] = []

    org = services.organizations.create_organization(ctx, name="Host Co", owner_user_id="owner-1",
                                                     owner_email="owner@host.test")
    _, owner_secret = services.organizations.issue_token(ctx, organization_id=org.id, name="owner",
                                                         user_id="owner-1")
    owner = services.organizations.authenticate(ctx, owner_secret)
    _, service_secret = services.organizations.issue_token(ctx, organization_id=org.id, name="api-gateway",
                                                           scopes=frozenset({Permission.USAGE_WRITE}))
    gateway = services.organizations.authenticate(ctx, service_secret)

    session = services.checkout.start_checkout(ctx, owner, organization_id=org.id, plan="starter",
                                               return_url="https://host.test/billing")
    assert session.provider_session_id is not None
    services.checkout.complete_checkout(ctx, provider_session_id=session.provider_session_id,
                                        provider_subscription_id="sub_host")
    services.product_subscriptions.subscribe_product(ctx, owner, organization_id=org.id, product="inference",
                                                     project_id=None)
    balance = services.overview.overview(ctx, owner, organization_id=org.id).credit_balance_display
    lines.append(f"trial started, balance {balance}")

    for n in range(3):
        outcome = services.usage.report_usage(ctx, gateway, organization_id=org.id, event_id=f"req-{n}",
                                              product="inference", quantity=250)
        lines.append(f"call {n}: allowed={outcome.allowed} balance={format_credits(outcome.balance_micros)}")

    billing.clock.advance(timedelta(days=30))
    report = services.invoicing.close_period(ctx, period="2026-05")
    invoice = services.invoicing.get_invoice(ctx, owner, organization_id=org.id, invoice_id=report.invoice_ids[0])
    lines.append(f"invoice {invoice.number}: total {invoice.total.format()}, due {invoice.amount_due.format()}")
    delivered = services.dispatch.dispatch(ctx, billing.deliverers)
    lines.append(f"outbox delivered {delivered.sent} message(s)")
    return lines


if __name__ == "__main__":
    for line in main():
        print(line)
