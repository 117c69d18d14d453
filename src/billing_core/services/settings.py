"""Billing settings: invoice address, billing email, tax registrations, auto-recharge, spend
management and low-balance alerts. Every change validates first and names the offending field."""

from __future__ import annotations

import uuid

import msgspec

from billing_core.billing_settings import (
    AutoRecharge,
    BillingSettings,
    InvoiceAddress,
    LowBalanceAlert,
    SpendManagement,
    TaxRegistration,
    TaxRegistrationStatus,
    check_address,
    check_email,
    check_limit,
    check_spend_management,
    new_tax_registration,
)
from billing_core.credit_packs import check_add_credits_amount
from billing_core.errors import InvalidInput
from billing_core.permissions import Action, Actor, require
from billing_core.services.context import BillingContext
from billing_core.services.wallet import sync_wallet


def get_settings(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID) -> BillingSettings:
    require(actor, Action.VIEW_BILLING, organization_id)
    with ctx.uow() as uow:
        uow.organizations.get(organization_id)
        return uow.settings.get(organization_id)


def update_address(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID,
                   address: InvoiceAddress) -> InvoiceAddress:
    require(actor, Action.UPDATE_BILLING, organization_id)
    checked = check_address(address)
    with ctx.uow() as uow:
        settings = uow.settings.get(organization_id)
        settings.address = checked
        uow.settings.save(settings)
        uow.commit()
    return checked


def update_billing_email(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, email: str) -> str:
    require(actor, Action.UPDATE_BILLING, organization_id)
    checked = check_email(email)
    with ctx.uow() as uow:
        settings = uow.settings.get(organization_id)
        settings.billing_email = checked
        uow.settings.save(settings)
        uow.commit()
    return checked


def update_auto_recharge(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, enabled: bool,
                         threshold_micros: int | None = None, amount_micros: int | None = None,
                         payment_method_id: uuid.UUID | None = None) -> AutoRecharge:
    """Turning auto-recharge on (again) also lifts a pause caused by failed charges. It charges a
    card without anyone clicking, so it is a purchase: primary-owner only."""
    require(actor, Action.MANAGE_AUTO_RECHARGE, organization_id)
    if type(enabled) is not bool:
        raise InvalidInput("enabled", "enabled must be true or false")
    with ctx.uow() as uow:
        settings = uow.settings.get(organization_id)
        current = settings.auto_recharge
        threshold = check_limit(threshold_micros, "threshold_micros") or current.threshold_micros
        amount = current.amount_micros if amount_micros is None else amount_micros
        try:
            check_add_credits_amount(ctx.catalog, amount)
        except InvalidInput as exc:
            raise InvalidInput("amount_micros", exc.message, code=exc.code) from None
        if payment_method_id is not None:
            uow.payment_methods.get(organization_id, payment_method_id)
        if enabled and payment_method_id is None and current.payment_method_id is None \
                and not any(m.default for m in uow.payment_methods.list(organization_id)):
            raise InvalidInput("payment_method_id", "add a payment method before enabling auto-recharge",
                               code="payment_method_required")
        updated = AutoRecharge(enabled=enabled, threshold_micros=threshold, amount_micros=amount,
                               payment_method_id=payment_method_id or current.payment_method_id,
                               consecutive_failures=0 if enabled else current.consecutive_failures,
                               paused_at=None if enabled else current.paused_at)
        settings.auto_recharge = updated
        uow.settings.save(settings)
        uow.commit()
    return updated


def update_spend_management(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID,
                            spend: SpendManagement) -> SpendManagement:
    """The daily budget, the email threshold and the alert webhook: primary-owner only."""
    require(actor, Action.MANAGE_SPEND_MANAGEMENT, organization_id)
    checked = check_spend_management(spend, allow_private_webhooks=ctx.policy.allow_private_webhook_urls,
                                     require_https=ctx.policy.require_https_webhooks)
    with ctx.uow() as uow:
        settings = uow.settings.get(organization_id)
        settings.spend_management = checked
        uow.settings.save(settings)
        sync_wallet(uow, ctx.catalog, organization_id)
        uow.commit()
    return checked


def update_low_balance_alert(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, enabled: bool,
                             threshold_micros: int) -> LowBalanceAlert:
    """Primary-owner only, as the seed's matrix says."""
    require(actor, Action.MANAGE_LOW_BALANCE_ALERTS, organization_id)
    if type(enabled) is not bool:
        raise InvalidInput("enabled", "enabled must be true or false")
    alert = LowBalanceAlert(enabled=enabled, threshold_micros=check_limit(threshold_micros, "threshold_micros")
                            or 0)
    with ctx.uow() as uow:
        settings = uow.settings.get(organization_id)
        settings.low_balance_alert = alert
        uow.settings.save(settings)
        uow.commit()
    return alert


def tax_registrations(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID) -> list[TaxRegistration]:
    require(actor, Action.VIEW_BILLING, organization_id)
    with ctx.uow() as uow:
        uow.organizations.get(organization_id)
        return uow.settings.tax_registrations(organization_id)


def add_tax_registration(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, country: str,
                         value: str, description: str | None = None) -> TaxRegistration:
    """Format-checked now; verified through the TaxIdVerifier port when one is configured."""
    require(actor, Action.UPDATE_BILLING, organization_id)
    registration = new_tax_registration(organization_id=organization_id, country=country, value=value,
                                        description=description, now=ctx.clock.now())
    with ctx.uow() as uow:
        uow.organizations.get(organization_id)
        uow.settings.add_tax_registration(registration)
        uow.commit()
    if ctx.tax_ids is not None:
        return verify_tax_registration(ctx, actor, organization_id=organization_id, registration_id=registration.id)
    return registration


def verify_tax_registration(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID,
                            registration_id: uuid.UUID) -> TaxRegistration:
    """Ask the verifier (outside any transaction); a confirmed id becomes verified."""
    require(actor, Action.UPDATE_BILLING, organization_id)
    with ctx.uow() as uow:
        registration = uow.settings.get_tax_registration(organization_id, registration_id)
    if ctx.tax_ids is None or registration.status == TaxRegistrationStatus.VERIFIED:
        return registration
    if not ctx.tax_ids.verify(registration.country, registration.value):
        return registration
    with ctx.uow() as uow:
        registration = uow.settings.get_tax_registration(organization_id, registration_id)
        registration = msgspec.structs.replace(registration, status=TaxRegistrationStatus.VERIFIED,
                                               verified_at=ctx.clock.now())
        uow.settings.save_tax_registration(registration)
        uow.commit()
    return registration


def remove_tax_registration(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID,
                            registration_id: uuid.UUID) -> None:
    require(actor, Action.UPDATE_BILLING, organization_id)
    with ctx.uow() as uow:
        uow.settings.remove_tax_registration(organization_id, registration_id)
        uow.commit()
