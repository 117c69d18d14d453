"""Explicit mapping between table rows and the core's msgspec structs, both ways.

``<thing>_values(obj)`` gives the column values to write; ``<thing>_from_row(row)`` builds the
struct back. Enums are stored as their values, nested value objects either as columns (when they
hold money or are queried) or as msgspec JSON (when they are opaque to storage).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from adapters.sqlalchemy.base import AnyRow
from adapters.sqlalchemy.tables import NIL_UUID
from billing_core.billing_settings import (
    AutoRecharge,
    BillingSettings,
    InvoiceAddress,
    LowBalanceAlert,
    SpendManagement,
    TaxRegistration,
    TaxRegistrationStatus,
)
from billing_core.budgets import BudgetScope, ScopedBudget
from billing_core.catalog import PlanCode
from billing_core.checkout import CheckoutSession, CheckoutStatus
from billing_core.grants import Grant, GrantSource, GrantTerms
from billing_core.holds import Hold, HoldOverrun, HoldStatus
from billing_core.invoices import Invoice, InvoiceItem, InvoiceStatus
from billing_core.ledger import Account, EntryKind, LedgerTransaction, Posting
from billing_core.organization import ApiToken, Membership, Organization
from billing_core.outbox import OutboxMessage, OutboxStatus, OutboxTopic
from billing_core.payments import Payment, PaymentMethod, PaymentPurpose, PaymentStatus, PaymentType
from billing_core.permissions import Permission, Role
from billing_core.plan_change import PlanChange, PlanChangeStatus
from billing_core.plan_subscription import PlanSubscription, SubscriptionStatus
from billing_core.ports import StoredResponse
from billing_core.product_subscription import ProductSubscription
from billing_core.refund_policy import RefundDecision, RefundDecisionStatus, RefundDenial, RefundRequest, RefundStatus
from billing_core.spend_guard import DenialReason
from billing_core.tax import TaxLine, TaxTreatment
from billing_core.usage import HourlyUsage, UsageEvent
from billing_core.wallet import SpendLimits, SubscriptionGate, WalletAccount

Values = dict[str, Any]

_json_encoder = msgspec.json.Encoder()
_items_decoder = msgspec.json.Decoder(tuple[InvoiceItem, ...])
_address_decoder = msgspec.json.Decoder(InvoiceAddress)
_payload_decoder = msgspec.json.Decoder(dict[str, Any])
_scopes_decoder = msgspec.json.Decoder(list[str])


def to_json(value: object) -> str:
    return _json_encoder.encode(value).decode("utf-8")


# --------------------------------------------------------------------------- organizations


def organization_values(org: Organization) -> Values:
    return {"id": org.id, "name": org.name, "created_at": org.created_at, "currency_iso": org.currency_iso,
            "provider_customer_id": org.provider_customer_id, "webhook_secret": org.webhook_secret}


def organization_from_row(row: AnyRow) -> Organization:
    return Organization(id=row.id, name=row.name, created_at=row.created_at, currency_iso=row.currency_iso,
                        provider_customer_id=row.provider_customer_id, webhook_secret=row.webhook_secret)


def email_key(email: str) -> str:
    """The lookup form of an email: the same ``casefold`` the in-memory adapter compares with."""
    return email.casefold()


def membership_values(m: Membership) -> Values:
    return {"organization_id": m.organization_id, "user_id": m.user_id, "email": m.email,
            "email_key": email_key(m.email), "role": m.role.value, "email_verified": m.email_verified}


def membership_from_row(row: AnyRow) -> Membership:
    return Membership(organization_id=row.organization_id, user_id=row.user_id, email=row.email,
                      role=Role(row.role), email_verified=row.email_verified)


def token_values(t: ApiToken) -> Values:
    return {"id": t.id, "organization_id": t.organization_id, "token_hash": t.token_hash, "name": t.name,
            "created_at": t.created_at, "user_id": t.user_id,
            "scopes": to_json(sorted(p.value for p in t.scopes)),
            "expires_at": t.expires_at, "revoked_at": t.revoked_at}


def token_from_row(row: AnyRow) -> ApiToken:
    return ApiToken(id=row.id, organization_id=row.organization_id, token_hash=row.token_hash, name=row.name,
                    created_at=row.created_at, user_id=row.user_id,
                    scopes=frozenset(Permission(s) for s in _scopes_decoder.decode(row.scopes)),
                    expires_at=row.expires_at, revoked_at=row.revoked_at)


# --------------------------------------------------------------------------- wallet and ledger


def wallet_values(w: WalletAccount) -> Values:
    return {
        "organization_id": w.organization_id, "wallet_micros": w.wallet_micros,
        "unbilled_micros": w.unbilled_micros, **limits_values(w.limits), **gate_values(w.gate),
        "spend_day": w.spend_day, "spent_today_micros": w.spent_today_micros,
        "spent_yesterday_micros": w.spent_yesterday_micros, "spend_month": w.spend_month,
        "spent_month_micros": w.spent_month_micros, "spent_previous_month_micros": w.spent_previous_month_micros,
        "version": w.version, "held_micros": w.held_micros, "scoped_budgets": w.scoped_budgets,
    }


def limits_values(limits: SpendLimits) -> Values:
    return {"credit_line_micros": limits.credit_line_micros,
            "minimum_production_credit_micros": limits.minimum_production_credit_micros,
            "daily_budget_micros": limits.daily_budget_micros, "monthly_cap_micros": limits.monthly_cap_micros}


def gate_values(gate: SubscriptionGate) -> Values:
    return {"gate_status": gate.status, "gate_past_due_since": gate.past_due_since,
            "gate_grace_days": gate.grace_days}


def wallet_from_row(row: AnyRow) -> WalletAccount:
    return WalletAccount(
        organization_id=row.organization_id, wallet_micros=row.wallet_micros, unbilled_micros=row.unbilled_micros,
        limits=SpendLimits(credit_line_micros=row.credit_line_micros,
                           minimum_production_credit_micros=row.minimum_production_credit_micros,
                           daily_budget_micros=row.daily_budget_micros, monthly_cap_micros=row.monthly_cap_micros),
        gate=SubscriptionGate(status=row.gate_status, past_due_since=row.gate_past_due_since,
                              grace_days=row.gate_grace_days),
        spend_day=row.spend_day, spent_today_micros=row.spent_today_micros,
        spent_yesterday_micros=row.spent_yesterday_micros, spend_month=row.spend_month,
        spent_month_micros=row.spent_month_micros, spent_previous_month_micros=row.spent_previous_month_micros,
        version=row.version, held_micros=row.held_micros, scoped_budgets=row.scoped_budgets,
    )


def transaction_from_row(row: AnyRow, postings: Sequence[AnyRow]) -> LedgerTransaction:
    """``postings`` are the transaction's posting rows in ``line_no`` order."""
    return LedgerTransaction(
        id=row.id, organization_id=row.organization_id, idempotency_key=row.idempotency_key,
        kind=EntryKind(row.kind), description=row.description, reason=row.reason, created_at=row.created_at,
        postings=tuple(Posting(Account(p.account), p.amount_micros) for p in postings),
        reference=row.reference, wallet_balance_after=row.wallet_balance_after,
    )


# --------------------------------------------------------------------------- subscriptions


def plan_subscription_values(s: PlanSubscription) -> Values:
    return {"id": s.id, "organization_id": s.organization_id, "plan": s.plan.value, "status": s.status.value,
            "created_at": s.created_at, "current_period_start": s.current_period_start,
            "current_period_end": s.current_period_end, "trial_end": s.trial_end,
            "past_due_since": s.past_due_since, "canceled_at": s.canceled_at,
            "provider_subscription_id": s.provider_subscription_id, "provider_state_at": s.provider_state_at,
            "cancel_at_period_end": s.cancel_at_period_end, "version": s.version}


def plan_subscription_from_row(row: AnyRow) -> PlanSubscription:
    return PlanSubscription(
        id=row.id, organization_id=row.organization_id, plan=PlanCode(row.plan), status=SubscriptionStatus(row.status),
        created_at=row.created_at, current_period_start=row.current_period_start,
        current_period_end=row.current_period_end, trial_end=row.trial_end, past_due_since=row.past_due_since,
        canceled_at=row.canceled_at, provider_subscription_id=row.provider_subscription_id,
        provider_state_at=row.provider_state_at, cancel_at_period_end=bool(row.cancel_at_period_end),
        version=row.version,
    )


def product_subscription_values(s: ProductSubscription) -> Values:
    return {"id": s.id, "organization_id": s.organization_id, "project_id": s.project_id,
            "product_id": s.product_id, "start_date": s.start_date, "end_date": s.end_date}


def product_subscription_from_row(row: AnyRow) -> ProductSubscription:
    return ProductSubscription(id=row.id, organization_id=row.organization_id, project_id=row.project_id,
                               product_id=row.product_id, start_date=row.start_date, end_date=row.end_date)


# --------------------------------------------------------------------------- usage


def usage_event_from_row(row: AnyRow) -> UsageEvent:
    return UsageEvent(event_id=row.event_id, organization_id=row.organization_id, project_id=row.project_id,
                      product_id=row.product_id, quantity=row.quantity, occurred_at=row.occurred_at,
                      amount_micros=row.amount_micros, unit_price_micros=row.unit_price_micros,
                      token_id=row.token_id)


def project_key(project_id: uuid.UUID | None) -> uuid.UUID:
    return NIL_UUID if project_id is None else project_id


def bucket_from_row(row: AnyRow) -> HourlyUsage:
    return HourlyUsage(organization_id=row.organization_id, project_id=row.project_id, product_id=row.product_id,
                       hour=row.hour, quantity=row.quantity, amount_micros=row.amount_micros,
                       invoice_id=row.invoice_id)


# --------------------------------------------------------------------------- invoices


def invoice_values(i: Invoice) -> Values:
    return {
        "id": i.id, "organization_id": i.organization_id, "period_start": i.period_start,
        "period_end": i.period_end, "status": i.status.value, "currency_iso": i.currency_iso,
        "items": to_json(i.items), "usage_micros": i.usage_micros, "subtotal_cents": i.subtotal_cents,
        "credit_applied_cents": i.credit_applied_cents, "tax_treatment": i.tax.treatment.value,
        "tax_rate_basis_points": i.tax.rate_basis_points, "tax_cents": i.tax.tax_cents, "tax_note": i.tax.note,
        "created_at": i.created_at, "number": i.number, "finalized_at": i.finalized_at, "due_at": i.due_at,
        "paid_at": i.paid_at, "voided_at": i.voided_at, "hosted_invoice_url": i.hosted_invoice_url,
        "legal_document_id": i.legal_document_id, "includes_earlier_usage": i.includes_earlier_usage,
    }


def invoice_from_row(row: AnyRow) -> Invoice:
    return Invoice(
        id=row.id, organization_id=row.organization_id, period_start=row.period_start, period_end=row.period_end,
        status=InvoiceStatus(row.status), currency_iso=row.currency_iso, items=_items_decoder.decode(row.items),
        usage_micros=row.usage_micros, subtotal_cents=row.subtotal_cents,
        credit_applied_cents=row.credit_applied_cents,
        tax=TaxLine(TaxTreatment(row.tax_treatment), row.tax_rate_basis_points, row.tax_cents, row.tax_note),
        created_at=row.created_at, number=row.number, finalized_at=row.finalized_at, due_at=row.due_at,
        paid_at=row.paid_at, voided_at=row.voided_at, hosted_invoice_url=row.hosted_invoice_url,
        legal_document_id=row.legal_document_id, includes_earlier_usage=row.includes_earlier_usage,
    )


# --------------------------------------------------------------------------- payments


def payment_method_values(m: PaymentMethod) -> Values:
    return {"id": m.id, "organization_id": m.organization_id,
            "provider_payment_method_id": m.provider_payment_method_id, "payment_type": m.payment_type.value,
            "is_default": m.default, "brand": m.brand, "last4": m.last4, "exp_month": m.exp_month,
            "exp_year": m.exp_year, "iban_last4": m.iban_last4, "name": m.name, "created_at": m.created_at}


def payment_method_from_row(row: AnyRow) -> PaymentMethod:
    return PaymentMethod(id=row.id, organization_id=row.organization_id,
                         provider_payment_method_id=row.provider_payment_method_id,
                         payment_type=PaymentType(row.payment_type), default=row.is_default, brand=row.brand,
                         last4=row.last4, exp_month=row.exp_month, exp_year=row.exp_year,
                         iban_last4=row.iban_last4, name=row.name, created_at=row.created_at)


def payment_values(p: Payment) -> Values:
    return {"id": p.id, "organization_id": p.organization_id, "purpose": p.purpose.value,
            "amount_cents": p.amount_cents, "currency_iso": p.currency_iso, "credits_micros": p.credits_micros,
            "status": p.status.value, "created_at": p.created_at, "payment_type": p.payment_type.value,
            "payment_method_id": p.payment_method_id, "provider_payment_id": p.provider_payment_id,
            "client_secret": p.client_secret, "invoice_id": p.invoice_id, "failure_message": p.failure_message,
            "settled_at": p.settled_at, "refunded_cents": p.refunded_cents, "version": p.version}


def payment_from_row(row: AnyRow) -> Payment:
    return Payment(id=row.id, organization_id=row.organization_id, purpose=PaymentPurpose(row.purpose),
                   amount_cents=row.amount_cents, currency_iso=row.currency_iso, credits_micros=row.credits_micros,
                   status=PaymentStatus(row.status), created_at=row.created_at,
                   payment_type=PaymentType(row.payment_type), payment_method_id=row.payment_method_id,
                   provider_payment_id=row.provider_payment_id, client_secret=row.client_secret,
                   invoice_id=row.invoice_id, failure_message=row.failure_message, settled_at=row.settled_at,
                   refunded_cents=row.refunded_cents, version=row.version)


def refund_values(r: RefundRequest) -> Values:
    d = r.decision
    return {"id": r.id, "organization_id": r.organization_id, "payment_id": r.payment_id,
            "requested_by": r.requested_by, "reason": r.reason, "created_at": r.created_at,
            "decision_status": d.status.value, "decision_amount_cents": d.amount_cents,
            "decision_credits_micros": d.credits_micros,
            "decision_denial": d.denial.value if d.denial is not None else None,
            "decision_message": d.message, "decision_expected_by": d.expected_by,
            "provider_refund_id": r.provider_refund_id, "status": r.status.value,
            "failure_message": r.failure_message, "completed_at": r.completed_at}


def refund_from_row(row: AnyRow) -> RefundRequest:
    decision = RefundDecision(
        status=RefundDecisionStatus(row.decision_status), amount_cents=row.decision_amount_cents,
        credits_micros=row.decision_credits_micros,
        denial=RefundDenial(row.decision_denial) if row.decision_denial is not None else None,
        message=row.decision_message, expected_by=row.decision_expected_by)
    return RefundRequest(id=row.id, organization_id=row.organization_id, payment_id=row.payment_id,
                         requested_by=row.requested_by, reason=row.reason, created_at=row.created_at,
                         decision=decision, provider_refund_id=row.provider_refund_id,
                         status=RefundStatus(row.status), failure_message=row.failure_message,
                         completed_at=row.completed_at)


def plan_change_values(c: PlanChange) -> Values:
    return {"id": c.id, "organization_id": c.organization_id, "subscription_id": c.subscription_id,
            "subscription_version": c.subscription_version, "from_plan": c.from_plan.value,
            "to_plan": c.to_plan.value, "preview_at": c.preview_at, "period_end": c.period_end,
            "unused_credit_cents": c.unused_credit_cents, "new_plan_charge_cents": c.new_plan_charge_cents,
            "amount_due_cents": c.amount_due_cents, "currency_iso": c.currency_iso, "status": c.status.value,
            "created_at": c.created_at, "provider_invoice_id": c.provider_invoice_id,
            "hosted_invoice_url": c.hosted_invoice_url, "invoice_status": c.invoice_status,
            "completed_at": c.completed_at}


def plan_change_from_row(row: AnyRow) -> PlanChange:
    return PlanChange(
        id=row.id, organization_id=row.organization_id, subscription_id=row.subscription_id,
        subscription_version=row.subscription_version, from_plan=PlanCode(row.from_plan),
        to_plan=PlanCode(row.to_plan), preview_at=row.preview_at, period_end=row.period_end,
        unused_credit_cents=row.unused_credit_cents, new_plan_charge_cents=row.new_plan_charge_cents,
        amount_due_cents=row.amount_due_cents, currency_iso=row.currency_iso, status=PlanChangeStatus(row.status),
        created_at=row.created_at, provider_invoice_id=row.provider_invoice_id,
        hosted_invoice_url=row.hosted_invoice_url, invoice_status=row.invoice_status, completed_at=row.completed_at)


# --------------------------------------------------------------------------- settings


def settings_values(s: BillingSettings, version: int) -> Values:
    ar, sm, lb = s.auto_recharge, s.spend_management, s.low_balance_alert
    return {
        "organization_id": s.organization_id,
        "address": to_json(s.address) if s.address is not None else None,
        "billing_email": s.billing_email,
        "auto_recharge_enabled": ar.enabled, "auto_recharge_threshold_micros": ar.threshold_micros,
        "auto_recharge_amount_micros": ar.amount_micros, "auto_recharge_payment_method_id": ar.payment_method_id,
        "auto_recharge_consecutive_failures": ar.consecutive_failures, "auto_recharge_paused_at": ar.paused_at,
        "spend_enabled": sm.enabled, "spend_daily_budget_micros": sm.daily_budget_micros,
        "spend_daily_email_threshold_micros": sm.daily_email_threshold_micros,
        "spend_monthly_cap_micros": sm.monthly_cap_micros, "spend_webhook_url": sm.webhook_url,
        "low_balance_enabled": lb.enabled, "low_balance_threshold_micros": lb.threshold_micros,
        "version": version, "hold_overrun": s.hold_overrun,
    }


def settings_from_row(row: AnyRow) -> BillingSettings:
    return BillingSettings(
        organization_id=row.organization_id,
        address=_address_decoder.decode(row.address) if row.address is not None else None,
        billing_email=row.billing_email,
        auto_recharge=AutoRecharge(
            enabled=row.auto_recharge_enabled, threshold_micros=row.auto_recharge_threshold_micros,
            amount_micros=row.auto_recharge_amount_micros, payment_method_id=row.auto_recharge_payment_method_id,
            consecutive_failures=row.auto_recharge_consecutive_failures, paused_at=row.auto_recharge_paused_at),
        spend_management=SpendManagement(
            enabled=row.spend_enabled, daily_budget_micros=row.spend_daily_budget_micros,
            daily_email_threshold_micros=row.spend_daily_email_threshold_micros,
            monthly_cap_micros=row.spend_monthly_cap_micros, webhook_url=row.spend_webhook_url),
        low_balance_alert=LowBalanceAlert(enabled=row.low_balance_enabled,
                                          threshold_micros=row.low_balance_threshold_micros),
        version=row.version, hold_overrun=row.hold_overrun,
    )


def tax_registration_values(r: TaxRegistration) -> Values:
    return {"id": r.id, "organization_id": r.organization_id, "country": r.country, "description": r.description,
            "value": r.value, "status": r.status.value, "created_at": r.created_at, "verified_at": r.verified_at}


def tax_registration_from_row(row: AnyRow) -> TaxRegistration:
    return TaxRegistration(id=row.id, organization_id=row.organization_id, country=row.country,
                           description=row.description, value=row.value,
                           status=TaxRegistrationStatus(row.status), created_at=row.created_at,
                           verified_at=row.verified_at)


# --------------------------------------------------------------------------- checkout


def checkout_values(s: CheckoutSession) -> Values:
    return {"id": s.id, "organization_id": s.organization_id, "plan": s.plan.value, "trial": s.trial,
            "status": s.status.value, "client_secret": s.client_secret, "return_url": s.return_url,
            "created_at": s.created_at, "provider_session_id": s.provider_session_id, "guest_email": s.guest_email,
            "guest_email_key": email_key(s.guest_email) if s.guest_email is not None else None,
            "completed_at": s.completed_at, "claimed_at": s.claimed_at, "subscription_id": s.subscription_id,
            "provider_subscription_id": s.provider_subscription_id}


def checkout_from_row(row: AnyRow) -> CheckoutSession:
    return CheckoutSession(id=row.id, organization_id=row.organization_id, plan=PlanCode(row.plan), trial=row.trial,
                           status=CheckoutStatus(row.status), client_secret=row.client_secret,
                           return_url=row.return_url, created_at=row.created_at,
                           provider_session_id=row.provider_session_id, guest_email=row.guest_email,
                           completed_at=row.completed_at, claimed_at=row.claimed_at,
                           subscription_id=row.subscription_id, provider_subscription_id=row.provider_subscription_id)


# --------------------------------------------------------------------------- messaging


def outbox_values(m: OutboxMessage) -> Values:
    return {"id": m.id, "organization_id": m.organization_id, "topic": m.topic.value, "payload": to_json(m.payload),
            "created_at": m.created_at, "dedupe_key": m.dedupe_key, "status": m.status.value,
            "attempts": m.attempts, "next_attempt_at": m.next_attempt_at, "last_error": m.last_error,
            "sent_at": m.sent_at}


def outbox_from_row(row: AnyRow) -> OutboxMessage:
    return OutboxMessage(id=row.id, organization_id=row.organization_id, topic=OutboxTopic(row.topic),
                         payload=_payload_decoder.decode(row.payload), created_at=row.created_at,
                         dedupe_key=row.dedupe_key, status=OutboxStatus(row.status), attempts=row.attempts,
                         next_attempt_at=row.next_attempt_at, last_error=row.last_error, sent_at=row.sent_at)


def stored_response_values(r: StoredResponse) -> Values:
    return {"scope": r.scope, "key": r.key, "request_hash": r.request_hash, "status_code": r.status_code,
            "body": r.body, "content_type": r.content_type, "created_at": r.created_at}


def stored_response_from_row(row: AnyRow) -> StoredResponse:
    return StoredResponse(scope=row.scope, key=row.key, request_hash=row.request_hash, status_code=row.status_code,
                          body=bytes(row.body), content_type=row.content_type, created_at=row.created_at)


def hold_values(h: Hold) -> Values:
    return {"id": h.id, "organization_id": h.organization_id, "product_id": h.product_id,
            "project_id": h.project_id, "token_id": h.token_id, "max_quantity": h.max_quantity,
            "amount_micros": h.amount_micros,
            "created_at": h.created_at, "expires_at": h.expires_at, "status": h.status.value,
            "closed_at": h.closed_at, "event_id": h.event_id, "settled_quantity": h.settled_quantity,
            "charged_micros": h.charged_micros, "uncharged_micros": h.uncharged_micros,
            "overrun": h.overrun.value if h.overrun is not None else None,
            "overrun_denial": h.overrun_denial.value if h.overrun_denial is not None else None}


def hold_from_row(row: AnyRow) -> Hold:
    return Hold(id=row.id, organization_id=row.organization_id, product_id=row.product_id,
                project_id=row.project_id, token_id=row.token_id, max_quantity=row.max_quantity,
                amount_micros=row.amount_micros,
                created_at=row.created_at, expires_at=row.expires_at, status=HoldStatus(row.status),
                closed_at=row.closed_at, event_id=row.event_id, settled_quantity=row.settled_quantity,
                charged_micros=row.charged_micros, uncharged_micros=row.uncharged_micros,
                overrun=HoldOverrun(row.overrun) if row.overrun is not None else None,
                overrun_denial=DenialReason(row.overrun_denial) if row.overrun_denial is not None else None)


def grant_values(g: Grant) -> Values:
    return {"id": g.id, "organization_id": g.organization_id, "source": g.source.value,
            "amount_micros": g.amount_micros, "remaining_micros": g.remaining_micros, "created_at": g.created_at,
            "expires_at": g.expires_at, "priority": g.priority, "created_by": g.created_by,
            "reference": g.reference, "expired_by": g.expired_by}


def grant_from_row(row: AnyRow) -> Grant:
    return Grant(id=row.id, organization_id=row.organization_id, source=GrantSource(row.source),
                 amount_micros=int(row.amount_micros), remaining_micros=int(row.remaining_micros),
                 created_at=row.created_at, expires_at=row.expires_at, priority=int(row.priority),
                 created_by=row.created_by, reference=row.reference, expired_by=row.expired_by)


def grant_terms_from_row(row: AnyRow) -> GrantTerms:
    return GrantTerms(organization_id=row.organization_id, idempotency_key=row.idempotency_key,
                      source=GrantSource(row.source), expires_at=row.expires_at, priority=int(row.priority))


# --------------------------------------------------------------------------- scoped budgets (ADR 0017)


def budget_values(b: ScopedBudget) -> Values:
    return {"organization_id": b.organization_id, "scope": b.scope.value, "scope_id": b.scope_id,
            "daily_micros": b.daily_micros, "monthly_micros": b.monthly_micros, "spend_day": b.spend_day,
            "spent_today_micros": b.spent_today_micros, "spent_yesterday_micros": b.spent_yesterday_micros,
            "spend_month": b.spend_month, "spent_month_micros": b.spent_month_micros,
            "spent_previous_month_micros": b.spent_previous_month_micros, "held_micros": b.held_micros,
            "version": b.version}


def budget_from_row(row: AnyRow) -> ScopedBudget:
    return ScopedBudget(organization_id=row.organization_id, scope=BudgetScope(row.scope), scope_id=row.scope_id,
                        daily_micros=row.daily_micros, monthly_micros=row.monthly_micros, spend_day=row.spend_day,
                        spent_today_micros=row.spent_today_micros, spent_yesterday_micros=row.spent_yesterday_micros,
                        spend_month=row.spend_month, spent_month_micros=row.spent_month_micros,
                        spent_previous_month_micros=row.spent_previous_month_micros, held_micros=row.held_micros,
                        version=row.version)
