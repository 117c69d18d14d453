"""Domain objects → response bodies. One function per shape; no business rule lives here."""

from __future__ import annotations

import uuid
from decimal import Decimal

from billing_core.billing_settings import (
    AutoRecharge,
    InvoiceAddress,
    LowBalanceAlert,
    SpendManagement,
    TaxRegistration,
)
from billing_core.catalog import Catalog
from billing_core.checkout import CheckoutSession, PlanChoice
from billing_core.credit_packs import PackOffer
from billing_core.errors import NotFound
from billing_core.feed import FeedEntry
from billing_core.invoices import Invoice
from billing_core.money import MICROS_PER_DOLLAR, Money, format_credits, micros_to_cents
from billing_core.organization import TokenSummary
from billing_core.payments import Payment, PaymentMethod
from billing_core.permissions import ACTION_PERMISSION, DENIAL_MESSAGES, Action, Actor, allows
from billing_core.plan_change import PlanChangePreview
from billing_core.product_subscription import ProductSubscription
from billing_core.refund_policy import RefundRequest
from billing_core.services.overview import BillingOverview
from billing_core.services.plan_changes import PlanChangeResult
from billing_core.services.plan_subscriptions import SubscriptionSummary
from billing_core.services.usage import UsageOutcome
from billing_core.services.usage_explain import ExplainedGrantDraw, UsageExplanation
from billing_core.spend_guard import Decision
from billing_core.usage_report import UsageReport
from billing_core.wallet import SpendCounters
from entrypoints.http import schemas as s


def credits(micros: int) -> s.Credits:
    return s.Credits(micros=micros, display=format_credits(micros))


def optional_credits(micros: int | None) -> s.Credits | None:
    return None if micros is None else credits(micros)


def micros_money(micros: int, currency_iso: str) -> Money:
    """Credits shown as invoice money: rounded to cents by the core's one rounding function."""
    return Money(micros_to_cents(micros), currency_iso)


def exact_dollars(micros: int) -> str:
    """``40_000`` → ``"0.04"``: exact, at least two decimals, no trailing zeros beyond them."""
    text = format(Decimal(micros) / MICROS_PER_DOLLAR, "f")
    whole, _, part = text.partition(".")
    part = part.rstrip("0").ljust(2, "0")
    return f"{whole}.{part}"


def masked_iban(last4: str | None) -> str | None:
    return None if not last4 else f"****{last4[-4:]}"


# --------------------------------------------------------------------------- usage


def usage_report(report: UsageReport, catalog: Catalog) -> s.UsageReportOut:
    """The core's report and totals (:mod:`billing_core.usage_report`), with product names."""
    currency = report.currency_iso
    names: dict[uuid.UUID, tuple[str, str, str]] = {}
    amounts: dict[int, Money] = {}  # Money is frozen: one per distinct amount of this report
    lines = []
    line_out, money = s.UsageLineOut, micros_money
    for line in report.lines:
        product_id, micros = line.product_id, line.amount_micros
        product = names.get(product_id)
        if product is None:
            product = names[product_id] = _product(catalog, product_id)
        amount = amounts.get(micros)
        if amount is None:
            amount = amounts[micros] = money(micros, currency)
        lines.append(line_out(line.hour, line.project_id, product_id, product[0], product[1], product[2],
                              line.quantity, micros, amount))
    by_product = []
    for total in report.by_product:
        code, name, unit = names[total.product_id]
        by_product.append(s.UsageProductTotalOut(product_id=total.product_id, product=code, product_name=name,
                                                 unit=unit, quantity=total.quantity, amount_micros=total.amount_micros,
                                                 amount=micros_money(total.amount_micros, currency)))
    by_project = [s.UsageProjectTotalOut(project_id=total.project_id, amount_micros=total.amount_micros,
                                         amount=micros_money(total.amount_micros, currency))
                  for total in report.by_project]
    items = [s.UsageItemOut(product_id=i.product_id, product=names[i.product_id][0], product_name=i.product,
                            project_id=i.project_id, quantity=i.quantity, amount_micros=i.amount_micros,
                            amount=i.amount) for i in report.items]
    return s.UsageReportOut(organization_id=report.organization_id, start=report.start, end=report.end,
                            currency_iso=currency, lines=lines, by_product=by_product, by_project=by_project,
                            total_micros=report.total_micros, total=micros_money(report.total_micros, currency),
                            items=items, invoice_total=report.invoice_total)


def _product(catalog: Catalog, product_id: uuid.UUID) -> tuple[str, str, str]:
    try:
        product = catalog.product(product_id)
    except NotFound:
        return str(product_id), str(product_id), "unit"
    return product.code, product.name, product.unit


def decision(value: Decision) -> s.DecisionOut:
    return s.DecisionOut(allowed=value.allowed, reason=value.reason, message=value.message, retry_at=value.retry_at,
                         warning=value.warning, grace_ends_at=value.grace_ends_at)


def usage_outcome(outcome: UsageOutcome) -> s.UsageOutcomeOut:
    return s.UsageOutcomeOut(event_id=outcome.event_id, allowed=outcome.allowed, replayed=outcome.replayed,
                             amount_micros=outcome.amount_micros, balance=credits(outcome.balance_micros),
                             warning=outcome.warning, grace_ends_at=outcome.grace_ends_at,
                             reason=outcome.reason.value if outcome.reason else None, retry_at=outcome.retry_at)


# --------------------------------------------------------------------------- subscriptions


def product_subscription(sub: ProductSubscription) -> s.ProductSubscriptionOut:
    return s.ProductSubscriptionOut(id=sub.id, organization_id=sub.organization_id, project_id=sub.project_id,
                                    product_id=sub.product_id, start_date=sub.start_date, end_date=sub.end_date)


def plan_choice(choice: PlanChoice) -> s.PlanChoiceOut:
    return s.PlanChoiceOut(plan=choice.code.value, name=choice.name, description=choice.description,
                           price=Money(choice.price_cents, choice.currency_iso), interval=choice.interval,
                           features=list(choice.features), action=choice.action, action_label=choice.action_label,
                           enabled=choice.enabled, disabled_reason=choice.disabled_reason)


def plan_subscription(summary: SubscriptionSummary | None) -> s.SubscriptionView:
    if summary is None:
        return s.SubscriptionView(subscription=None)
    return s.SubscriptionView(subscription=s.PlanSubscriptionOut(
        id=summary.id, tier=summary.tier, plan=summary.plan.value, status=summary.status,
        status_label=summary.status_label, color=summary.color, message=summary.message,
        description=summary.description, price=summary.price, interval=summary.interval,
        features=list(summary.features), current_period_start=summary.current_period_start,
        current_period_end=summary.current_period_end, trial_end=summary.trial_end,
        has_billing_record=summary.has_billing_record, cancel_at_period_end=summary.cancel_at_period_end))


def checkout_session(session: CheckoutSession, return_url: str | None = None) -> s.CheckoutSessionOut:
    return s.CheckoutSessionOut(id=session.id, plan=session.plan.value, trial=session.trial, status=session.status,
                                client_secret=session.client_secret, return_url=return_url or session.return_url,
                                created_at=session.created_at, completed_at=session.completed_at,
                                subscription_id=session.subscription_id)


def plan_change_preview(preview: PlanChangePreview) -> s.PlanChangePreviewOut:
    currency = preview.currency_iso
    return s.PlanChangePreviewOut(from_plan=preview.from_plan.value, to_plan=preview.to_plan.value, at=preview.at,
                                  period_end=preview.period_end,
                                  unused_credit=Money(preview.unused_credit_cents, currency),
                                  new_plan_charge=Money(preview.new_plan_charge_cents, currency),
                                  amount_due=Money(preview.amount_due_cents, currency))


def plan_change(result: PlanChangeResult) -> s.PlanChangeOut:
    hosted = result.hosted_invoice
    return s.PlanChangeOut(
        subscription_id=result.subscription_id, preview=plan_change_preview(result.preview),
        hosted_invoice=None if hosted is None else s.HostedInvoiceOut(
            provider_invoice_id=hosted.provider_invoice_id, hosted_invoice_url=hosted.hosted_invoice_url,
            status=hosted.status))


# --------------------------------------------------------------------------- invoices


def _period(invoice: Invoice) -> s.PeriodOut:
    return s.PeriodOut(start=invoice.period_start, end=invoice.period_end)


def invoice(value: Invoice) -> s.InvoiceOut:
    currency = value.currency_iso
    items = [s.InvoiceItemOut(product=item.product, product_id=item.product_id, project=item.project_id,
                              quantity=item.quantity, unit=item.unit, unit_price=exact_dollars(item.unit_price_micros),
                              unit_price_micros=item.unit_price_micros, amount=item.amount,
                              amount_micros=item.amount_micros)
             for item in value.items]
    return s.InvoiceOut(
        id=value.id, number=value.number, status=value.status, period=_period(value), total=value.total,
        subtotal=Money(value.subtotal_cents, currency), credit_applied=Money(value.credit_applied_cents, currency),
        tax=s.TaxOut(treatment=value.tax.treatment, rate_basis_points=value.tax.rate_basis_points,
                     amount=Money(value.tax.tax_cents, currency), note=value.tax.note),
        amount_due=value.amount_due, created_at=value.created_at, finalized_at=value.finalized_at,
        due_at=value.due_at, paid_at=value.paid_at, includes_earlier_usage=value.includes_earlier_usage,
        hosted_invoice_url=value.hosted_invoice_url, items=items)


def legal_invoice(value: Invoice) -> s.LegalInvoiceOut:
    available = value.legal_document_id is not None
    pdf_url = (f"/organizations/{value.organization_id}/invoices/download?invoice_id={value.id}"
               if available else None)
    return s.LegalInvoiceOut(
        id=value.id, number=value.number, status=value.status, invoice_date=value.finalized_at,
        due_date=value.due_at, payment_date=value.paid_at, period=_period(value), total=value.total,
        amount_due=value.amount_due, document_id=value.legal_document_id, pdf_available=available,
        pdf_url=pdf_url, hosted_invoice_url=value.hosted_invoice_url)


# --------------------------------------------------------------------------- payments


def payment_method(method: PaymentMethod) -> s.PaymentMethodOut:
    return s.PaymentMethodOut(id=method.id, payment_type=method.payment_type, default=method.default,
                              brand=method.brand, last4=method.last4, exp_month=method.exp_month,
                              exp_year=method.exp_year, iban=masked_iban(method.iban_last4), name=method.name,
                              created_at=method.created_at)


def payment(value: Payment) -> s.PaymentOut:
    return s.PaymentOut(id=value.id, purpose=value.purpose, status=value.status, payment_type=value.payment_type,
                        amount=Money(value.amount_cents, value.currency_iso), credits=credits(value.credits_micros),
                        refunded=Money(value.refunded_cents, value.currency_iso), created_at=value.created_at,
                        settled_at=value.settled_at, failure_message=value.failure_message,
                        client_secret=value.client_secret)


def refund(request: RefundRequest, currency_iso: str) -> s.RefundOut:
    d = request.decision
    return s.RefundOut(
        id=request.id, payment_id=request.payment_id, requested_by=request.requested_by, reason=request.reason,
        created_at=request.created_at, provider_refund_id=request.provider_refund_id, status=request.status,
        failure_message=request.failure_message, completed_at=request.completed_at,
        decision=s.RefundDecisionOut(status=d.status, amount=Money(d.amount_cents, currency_iso),
                                     credits_micros=d.credits_micros, denial=d.denial, message=d.message,
                                     expected_by=d.expected_by))


# --------------------------------------------------------------------------- wallet and settings


def pack_offer(offer: PackOffer, currency_iso: str) -> s.CreditPackOfferOut:
    return s.CreditPackOfferOut(
        state=offer.state, message=offer.message, enabled=offer.enabled,
        packs=[s.CreditPackOut(price_dollars=p.price_dollars, price=Money(p.price_dollars * 100, currency_iso),
                               credits=credits(p.credits_micros), label=p.label) for p in offer.packs])


def feed_entry(entry: FeedEntry) -> s.FeedEntryOut:
    return s.FeedEntryOut(id=entry.id, kind=entry.kind, description=entry.description, reason=entry.reason,
                          created_at=entry.created_at, amount_micros=entry.amount_micros,
                          amount_display=entry.amount_display, sign=entry.sign, tone=entry.tone,
                          balance_after=optional_credits(entry.balance_after_micros), reference=entry.reference,
                          purpose=entry.purpose, reverses=entry.reverses)


def address(value: InvoiceAddress | None) -> s.InvoiceAddressOut:
    if value is None:
        return s.InvoiceAddressOut()
    return s.InvoiceAddressOut(company_name=value.company_name, address_1=value.address_1,
                               address_2=value.address_2, city=value.city, postal_code=value.postal_code,
                               region=value.region, country=value.country, po_number=value.po_number)


def auto_recharge(value: AutoRecharge) -> s.AutoRechargeOut:
    # The seed's two words: a recharge paused after failed charges is still "Enabled" (paused_at
    # and consecutive_failures say why it does not charge now).
    return s.AutoRechargeOut(enabled=value.enabled, state="Enabled" if value.enabled else "Disabled",
                             threshold=credits(value.threshold_micros), amount=credits(value.amount_micros),
                             payment_method_id=value.payment_method_id,
                             consecutive_failures=value.consecutive_failures, paused_at=value.paused_at)


def spend_management(value: SpendManagement, counters: SpendCounters) -> s.SpendManagementOut:
    return s.SpendManagementOut(
        enabled=value.enabled, state="Enabled" if value.enabled else "Disabled",
        daily_budget=optional_credits(value.daily_budget_micros),
        daily_email_threshold=optional_credits(value.daily_email_threshold_micros),
        monthly_cap=optional_credits(value.monthly_cap_micros), webhook_url=value.webhook_url,
        consumed_today=credits(counters.today), consumed_yesterday=credits(counters.yesterday))


def overview(value: BillingOverview) -> s.OverviewOut:
    w = value.wallet
    counters = SpendCounters(today=w.consumed_today, yesterday=w.consumed_yesterday, month=0)
    return s.OverviewOut(
        organization_id=value.organization_id, credit_balance=credits(value.credit_balance_micros),
        wallet=s.WalletFiguresOut(
            total_credits=credits(w.total_credits), usage_this_period=credits(w.usage_this_period),
            remaining_credits=credits(w.remaining_credits), overage_protection=credits(w.overage_protection),
            daily_hard_limit_used=credits(w.daily_hard_limit_used),
            daily_hard_limit=optional_credits(w.daily_hard_limit), available_to_use=credits(w.available_to_use),
            held=credits(w.held)),
        address=None if value.address is None else address(value.address), billing_email=value.billing_email,
        auto_recharge=auto_recharge(value.auto_recharge),
        spend_management=spend_management(value.spend_management, counters),
        production_health=value.production_health,
        grace_window=s.GraceWindowOut(state=value.grace_window.state, started_at=value.grace_window.started_at,
                                      ends_at=value.grace_window.ends_at),
        banners=[s.BannerOut(kind=b.kind.value, message=b.message) for b in value.banners])


def tax_registration(value: TaxRegistration) -> s.TaxRegistrationOut:
    return s.TaxRegistrationOut(id=value.id, country=value.country, description=value.description, value=value.value,
                                status=value.status.value, created_at=value.created_at,
                                verified_at=value.verified_at)


def low_balance_alert(value: LowBalanceAlert) -> s.LowBalanceAlertOut:
    return s.LowBalanceAlertOut(enabled=value.enabled, threshold=credits(value.threshold_micros))


def actions(actor: Actor) -> list[s.ActionOut]:
    """Every action of the matrix for ``actor``: what the console enables, hides or explains."""
    out = []
    for action in Action:
        allowed = allows(actor, action)
        out.append(s.ActionOut(key=action.key, label=action.value, permission=ACTION_PERMISSION[action].value,
                               allowed=allowed, message=None if allowed else DENIAL_MESSAGES.get(action)))
    return out


def usage_explanation(value: UsageExplanation) -> s.UsageExplanationOut:
    event, price, debit, hold, line = value.event, value.price, value.debit, value.hold, value.invoice_line
    return s.UsageExplanationOut(
        event=s.ExplainedEventOut(event_id=event.event_id, product_id=event.product_id, product=event.product_code,
                                  product_name=event.product_name, quantity=event.quantity,
                                  project_id=event.project_id, occurred_at=event.occurred_at,
                                  recorded_at=event.recorded_at, refund_of=event.refund_of),
        price=s.ExplainedPriceOut(unit_price=credits(price.unit_price_micros), unit=price.unit,
                                  priced=credits(price.priced_micros), amount=credits(price.amount_micros),
                                  uncharged=credits(price.uncharged_micros)),
        debit=None if debit is None else s.ExplainedDebitOut(
            transaction_id=debit.transaction_id, idempotency_key=debit.idempotency_key,
            description=debit.description, amount=credits(debit.amount_micros),
            balance_after=optional_credits(debit.balance_after_micros), created_at=debit.created_at),
        grants=[_grant_draw(d) for d in value.grants], credit_line=credits(value.credit_line_micros),
        hold=None if hold is None else s.ExplainedHoldOut(
            hold_id=hold.hold_id, status=hold.status, held=credits(hold.held_micros), max_quantity=hold.max_quantity,
            settled_quantity=hold.settled_quantity, charged=credits(hold.charged_micros),
            uncharged=credits(hold.uncharged_micros), overrun_rule=hold.overrun_rule,
            overrun_denied_reason=hold.overrun_denied_reason, created_at=hold.created_at,
            expires_at=hold.expires_at, closed_at=hold.closed_at),
        invoice_line=None if line is None else s.ExplainedInvoiceLineOut(
            invoice_id=line.invoice_id, number=line.number, status=line.status, period_start=line.period_start,
            period_end=line.period_end, product_id=line.product_id, product_name=line.product,
            project_id=line.project_id, quantity=line.quantity, unit=line.unit,
            unit_price=credits(line.unit_price_micros), usage=credits(line.amount_micros), amount=line.amount),
        refunds=[s.ExplainedRefundOut(transaction_id=r.transaction_id, idempotency_key=r.idempotency_key,
                                      reason=r.reason, amount=credits(r.amount_micros),
                                      balance_after=optional_credits(r.balance_after_micros),
                                      created_at=r.created_at, grants=[_grant_draw(d) for d in r.grants])
                 for r in value.refunds],
    )


def _grant_draw(draw: ExplainedGrantDraw) -> s.ExplainedGrantDrawOut:
    return s.ExplainedGrantDrawOut(grant_id=draw.grant_id, source=draw.source.value, amount=credits(draw.amount_micros))


# --------------------------------------------------------------------------- API tokens


def api_token(token: TokenSummary) -> s.ApiTokenOut:
    return s.ApiTokenOut(id=token.id, name=token.name, kind="service" if token.user_id is None else "member",
                         user_id=token.user_id, scopes=sorted(p.value for p in token.scopes),
                         created_at=token.created_at, expires_at=token.expires_at, revoked_at=token.revoked_at,
                         status=token.status)
