"""Payment methods on file: list, setup intent, attach, set default, remove."""

from __future__ import annotations

import uuid

import msgspec

from billing_core.errors import InvalidInput
from billing_core.payments import PaymentMethod
from billing_core.permissions import Action, Actor, require
from billing_core.services.context import BillingContext
from billing_core.services.customers import ensure_customer


def list_methods(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID) -> list[PaymentMethod]:
    require(actor, Action.VIEW_BILLING, organization_id)
    with ctx.uow() as uow:
        uow.organizations.get(organization_id)
        return uow.payment_methods.list(organization_id)


def setup_intent(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID) -> str:
    """The client secret (``seti_..._secret_...``) for collecting a method with the provider's UI."""
    require(actor, Action.UPDATE_BILLING, organization_id)
    customer_id = ensure_customer(ctx, organization_id)
    return ctx.payments.create_setup_intent(customer_id=customer_id,
                                            idempotency_key=f"setup-intent:{organization_id}:{uuid.uuid4()}")


def attach(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID,
           provider_payment_method_id: str) -> PaymentMethod:
    """Attach a provider method (an id of the provider's, such as Stripe's ``pm_...``). The first
    method becomes the default. Attaching the same method again returns it unchanged. An id of
    another shape than the provider's is refused before the provider is asked."""
    require(actor, Action.UPDATE_BILLING, organization_id)
    if not isinstance(provider_payment_method_id, str) or not ctx.payments.is_payment_method_id(
            provider_payment_method_id):
        raise InvalidInput("payment_method_id", "payment_method_id is not a payment method id of the provider",
                           code="invalid_payment_method")
    with ctx.uow() as uow:
        existing = uow.payment_methods.by_provider_id(organization_id, provider_payment_method_id)
    if existing is not None:
        return existing
    customer_id = ensure_customer(ctx, organization_id)
    described = ctx.payments.attach_payment_method(customer_id=customer_id,
                                                   provider_payment_method_id=provider_payment_method_id)
    with ctx.uow() as uow:
        # Decided under the organization's lock (ADR 0009): of concurrent attaches, one stores the
        # method and exactly one method becomes the default.
        uow.wallets.lock(organization_id)
        existing = uow.payment_methods.by_provider_id(organization_id, provider_payment_method_id)
        if existing is not None:
            return existing
        first = not uow.payment_methods.list(organization_id)
        method = PaymentMethod(
            id=uuid.uuid4(), organization_id=organization_id,
            provider_payment_method_id=described.provider_payment_method_id, payment_type=described.payment_type,
            default=first, brand=described.brand, last4=described.last4, exp_month=described.exp_month,
            exp_year=described.exp_year, iban_last4=described.iban_last4, name=described.name,
            created_at=ctx.clock.now())
        uow.payment_methods.add(method)
        uow.commit()
    if first:
        ctx.payments.set_default_payment_method(customer_id=customer_id,
                                                provider_payment_method_id=method.provider_payment_method_id)
    return method


def set_default(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID,
                payment_method_id: uuid.UUID) -> PaymentMethod:
    require(actor, Action.UPDATE_BILLING, organization_id)
    with ctx.uow() as uow:
        target = uow.payment_methods.get(organization_id, payment_method_id)
    customer_id = ensure_customer(ctx, organization_id)
    ctx.payments.set_default_payment_method(customer_id=customer_id,
                                            provider_payment_method_id=target.provider_payment_method_id)
    with ctx.uow() as uow:
        uow.wallets.lock(organization_id)
        for method in uow.payment_methods.list(organization_id):
            should = method.id == payment_method_id
            if method.default != should:
                method.default = should
                uow.payment_methods.save(method)
        uow.commit()
        return uow.payment_methods.get(organization_id, payment_method_id)


def remove(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, payment_method_id: uuid.UUID) -> None:
    """Detach and forget a method. Removing the default promotes the newest remaining one."""
    require(actor, Action.UPDATE_BILLING, organization_id)
    with ctx.uow() as uow:
        target = uow.payment_methods.get(organization_id, payment_method_id)
    ctx.payments.detach_payment_method(provider_payment_method_id=target.provider_payment_method_id)
    with ctx.uow() as uow:
        uow.wallets.lock(organization_id)
        uow.payment_methods.remove(organization_id, payment_method_id)
        rest = uow.payment_methods.list(organization_id)
        promoted = None
        if target.default and rest:
            promoted = max(rest, key=lambda m: (m.created_at.timestamp() if m.created_at else 0, str(m.id)))
            promoted.default = True
            uow.payment_methods.save(promoted)
        settings = uow.settings.get(organization_id)
        if settings.auto_recharge.payment_method_id == payment_method_id:
            settings.auto_recharge = msgspec.structs.replace(settings.auto_recharge, payment_method_id=None)
            uow.settings.save(settings)
        uow.commit()
    if promoted is not None:
        customer_id = ensure_customer(ctx, organization_id)
        ctx.payments.set_default_payment_method(customer_id=customer_id,
                                                provider_payment_method_id=promoted.provider_payment_method_id)
