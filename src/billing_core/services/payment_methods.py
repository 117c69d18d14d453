"""Payment methods on file: list, setup intent, attach, set default, remove."""

from __future__ import annotations

import uuid

import msgspec

from billing_core.errors import InvalidInput
from billing_core.payments import PaymentMethod
from billing_core.permissions import Action, Actor, require
from billing_core.ports import UnitOfWork
from billing_core.services.context import BillingContext
from billing_core.services.customers import ensure_customer


def list_methods(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID) -> list[PaymentMethod]:
    require(actor, Action.VIEW_BILLING, organization_id)
    with ctx.uow() as uow:
        uow.organizations.get(organization_id)
        return uow.payment_methods.list(organization_id)


def setup_intent(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID,
                 request_id: uuid.UUID | None = None) -> str:
    """The client secret (``seti_..._secret_...``) for collecting a method with the provider's UI.

    ``request_id`` names the request (over HTTP: derived from its ``Idempotency-Key``); the
    provider key ``setup-intent:<organization>:<request id>`` is derived from it, so a retry or a
    concurrent copy of one request gets the same setup intent back. Without one, each call is a
    new request and opens a new intent."""
    require(actor, Action.UPDATE_BILLING, organization_id)
    customer_id = ensure_customer(ctx, organization_id)
    return ctx.payments.create_setup_intent(customer_id=customer_id,
                                            idempotency_key=setup_intent_key(organization_id,
                                                                             request_id or uuid.uuid4()))


def setup_intent_key(organization_id: uuid.UUID, request_id: uuid.UUID) -> str:
    """The provider idempotency key of the setup intent a request opens: one intent per request."""
    return f"setup-intent:{organization_id}:{request_id}"


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
        first = not any(m.default for m in uow.payment_methods.list(organization_id))
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
    """Make the method the organization's default: decided and recorded under the organization's
    lock (ADR 0009), the old default cleared before the new one is set (the database allows one
    default per organization), and only then told to the provider (setting a default there is
    idempotent: the same call again changes nothing)."""
    require(actor, Action.UPDATE_BILLING, organization_id)
    with ctx.uow() as uow:
        uow.wallets.lock(organization_id)
        target = uow.payment_methods.get(organization_id, payment_method_id)
        _make_default(uow, organization_id, target)
        uow.commit()
    customer_id = ensure_customer(ctx, organization_id)
    ctx.payments.set_default_payment_method(customer_id=customer_id,
                                            provider_payment_method_id=target.provider_payment_method_id)
    return target


def _make_default(uow: UnitOfWork, organization_id: uuid.UUID, target: PaymentMethod) -> None:
    """Under the caller's lock: every other method stops being the default first, then the target
    becomes it (one default per organization holds after each statement)."""
    for method in uow.payment_methods.list(organization_id):
        if method.id != target.id and method.default:
            method.default = False
            uow.payment_methods.save(method)
    if not target.default:
        target.default = True
        uow.payment_methods.save(target)


def remove(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, payment_method_id: uuid.UUID) -> None:
    """Forget a method and detach it at the provider. Removing the default promotes the newest
    remaining one. Decided and recorded under the organization's lock before the provider is asked
    (ADR 0009): of concurrent removals one removes it and the others find it gone (NotFound); the
    provider's detach and set-default are idempotent, so a retry after a provider failure repeats
    them harmlessly."""
    require(actor, Action.UPDATE_BILLING, organization_id)
    with ctx.uow() as uow:
        uow.wallets.lock(organization_id)
        target = uow.payment_methods.get(organization_id, payment_method_id)
        uow.payment_methods.remove(organization_id, payment_method_id)
        rest = uow.payment_methods.list(organization_id)
        promoted = None
        if target.default and rest:
            promoted = max(rest, key=lambda m: (m.created_at.timestamp() if m.created_at else 0, str(m.id)))
            _make_default(uow, organization_id, promoted)
        settings = uow.settings.get(organization_id)
        if settings.auto_recharge.payment_method_id == payment_method_id:
            settings.auto_recharge = msgspec.structs.replace(settings.auto_recharge, payment_method_id=None)
            uow.settings.save(settings)
        uow.commit()
    ctx.payments.detach_payment_method(provider_payment_method_id=target.provider_payment_method_id)
    if promoted is not None:
        customer_id = ensure_customer(ctx, organization_id)
        ctx.payments.set_default_payment_method(customer_id=customer_id,
                                                provider_payment_method_id=promoted.provider_payment_method_id)
