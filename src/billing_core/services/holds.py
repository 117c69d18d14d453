"""Holds for calls whose cost is known only at the end (issue 21, ADR 0011).

``place_hold`` reserves credits within every cap at once; ``settle_hold`` debits the actual usage
and releases the rest in one unit of work; ``release_hold`` gives the whole hold back; the
background worker's :func:`expire_holds` releases holds past their expiry. Every one takes the
organization's wallet lock first (ADR 0009) and decides on the locked wallet; a hold closes once
(a conditional write), so settle and release answer a retry with the recorded outcome.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from billing_core import budgets as scoped
from billing_core import holds as core
from billing_core.budgets import ScopedBudget
from billing_core.catalog import Product
from billing_core.errors import (
    ConcurrentUpdate,
    Conflict,
    EventIdReused,
    HoldSettled,
    IdempotencyKeyReused,
    InvalidInput,
    NotFound,
    ProductNotSubscribed,
    SettleExceedsHold,
)
from billing_core.holds import Hold, HoldOverrun, HoldStatus
from billing_core.ledger import Account, EntryKind, transfer
from billing_core.permissions import Action, Actor, require
from billing_core.ports import UnitOfWork
from billing_core.services.context import BillingContext
from billing_core.services.usage import _after_debit as after_debit
from billing_core.spend_guard import Decision, decide
from billing_core.usage import check_event_id, price_event
from billing_core.wallet import WalletAccount


class HoldOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """A hold as the platform sees it after a request, with the spend guard's answer when placing it."""

    hold: Hold | None
    decision: Decision
    replayed: bool = False
    balance_micros: int
    held_micros: int


def _product(ctx: BillingContext, product: str | uuid.UUID) -> Product:
    try:
        return ctx.catalog.product(product if isinstance(product, uuid.UUID) else uuid.UUID(product))
    except (ValueError, NotFound):
        if isinstance(product, uuid.UUID):
            raise InvalidInput("product", f"unknown product {product}", code="unknown_product") from None
        return ctx.catalog.product_by_code(product)


def _budgets_of(uow: UnitOfWork, wallet: WalletAccount, project_id: uuid.UUID | None,
                token_id: uuid.UUID | None) -> list[ScopedBudget]:
    """The project and token budgets a hold counts in, read under the wallet lock; none (and no
    read) when the organization has no scoped budgets."""
    if not wallet.scoped_budgets or (project_id is None and token_id is None):
        return []
    return uow.budgets.for_call(wallet.organization_id, project_id, token_id)


def _close_in_budgets(uow: UnitOfWork, budgets: list[ScopedBudget], hold: Hold, charged_micros: int,
                      now: datetime) -> None:
    """A hold closed: its amount leaves each scope's held; a settle's charge counts as spend there."""
    if not budgets:
        return
    scoped.release(budgets, hold.amount_micros)
    if charged_micros:
        scoped.apply_to(budgets, charged_micros, now)
    uow.budgets.save(budgets)


def place_hold(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, product: str | uuid.UUID,
               max_quantity: int | None = None, amount_micros: int | None = None,
               project_id: uuid.UUID | None = None, ttl_seconds: int | None = None,
               hold_id: uuid.UUID | None = None) -> HoldOutcome:
    """Reserve ``amount_micros`` (or the price of ``max_quantity``) if the spend guard allows it with
    every active hold counted as spent. ``hold_id`` (derived from the HTTP Idempotency-Key) makes a
    retry answer the first hold; the same id for another request is ``IdempotencyKeyReused``.
    The hold names the actor's API token; the project's and the token's budgets (ADR 0017) must
    fit it too, and count it as held until it closes."""
    require(actor, Action.REPORT_USAGE, organization_id)
    now = ctx.clock.now()
    metered = _product(ctx, product)
    requested = core.new_hold(hold_id=hold_id or uuid.uuid4(), organization_id=organization_id, product=metered,
                              project_id=project_id, max_quantity=max_quantity, amount_micros=amount_micros,
                              ttl=core.check_ttl(ttl_seconds), now=now, token_id=actor.token_id)
    with ctx.uow() as uow:
        wallet = uow.wallets.lock(organization_id)
        stored = uow.holds.find(organization_id, requested.id)
        if stored is not None:
            if not core.same_request(stored, requested):
                raise IdempotencyKeyReused(str(requested.id))
            return HoldOutcome(hold=stored, decision=Decision(allowed=True), replayed=True,
                               balance_micros=wallet.balance_micros, held_micros=wallet.held_micros)
        if not uow.product_subscriptions.active_for(organization_id, project_id, metered.id, now):
            raise ProductNotSubscribed("the project has no active subscription to this product", field="product")
        budgets = _budgets_of(uow, wallet, project_id, requested.token_id)
        decision = decide(wallet, requested.amount_micros, now, reserve=True, budgets=budgets)
        if not decision.allowed:
            return HoldOutcome(hold=None, decision=decision, balance_micros=wallet.balance_micros,
                               held_micros=wallet.held_micros)
        if not uow.holds.add(requested):
            # Only another organization's hold can hold this id here (ours was looked up under the
            # wallet lock), and retrying would never free it: the caller reused an id.
            raise IdempotencyKeyReused(str(requested.id))
        if budgets:
            scoped.reserve(budgets, requested.amount_micros)
            uow.budgets.save(budgets)
        uow.commit()
    return HoldOutcome(hold=requested, decision=decision, balance_micros=wallet.balance_micros,
                       held_micros=wallet.held_micros + requested.amount_micros)


def get_hold(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, hold_id: uuid.UUID) -> HoldOutcome:
    """One hold and its status, with the organization's balance and held total as they are now."""
    require(actor, Action.REPORT_USAGE, organization_id)
    with ctx.uow() as uow:
        hold = uow.holds.get(organization_id, hold_id)
        wallet = uow.wallets.get(organization_id)
    return HoldOutcome(hold=hold, decision=Decision(allowed=True), balance_micros=wallet.balance_micros,
                       held_micros=wallet.held_micros)


def _expired_conflict(hold: Hold) -> Conflict:
    return Conflict(f"the hold is {hold.status.value}; place a new one", code=f"hold_{hold.status.value}",
                    field="hold_id")


def settle_hold(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, hold_id: uuid.UUID,
                event_id: str, quantity: int) -> HoldOutcome:
    """Debit ``quantity`` of the hold's product as usage event ``event_id`` and release the rest of
    the hold, in one unit of work. Above the hold, the organization's ``hold_overrun`` rule decides
    (stated in the answer). Settling a settled hold again with the same event and quantity answers
    the recorded settlement (``replayed``) and charges nothing; another event or quantity is a
    409 ``hold_settled``. A released or expired hold is a 409 (``hold_released``/``hold_expired``);
    an active hold past its expiry is expired by this call."""
    require(actor, Action.REPORT_USAGE, organization_id)
    check_event_id(event_id)
    now = ctx.clock.now()
    with ctx.uow() as uow:
        wallet = uow.wallets.lock(organization_id)
        hold = uow.holds.get(organization_id, hold_id)
        if hold.status == HoldStatus.SETTLED:
            if (hold.event_id, hold.settled_quantity) != (event_id, quantity):
                raise HoldSettled("the hold was settled with another event or quantity",
                                  field="hold_id")
            # The first answer again: the balance its charge left (the current one if it charged nothing).
            first = uow.ledger.get_by_key(organization_id, f"usage:{event_id}") if hold.charged_micros else None
            balance = first.wallet_balance_after if first is not None and first.wallet_balance_after is not None \
                else wallet.balance_micros
            return HoldOutcome(hold=hold, decision=Decision(allowed=True, reason=hold.overrun_denial), replayed=True,
                               balance_micros=balance, held_micros=wallet.held_micros)
        if not hold.active:
            raise _expired_conflict(hold)
        budgets = _budgets_of(uow, wallet, hold.project_id, hold.token_id)
        if hold.expires_at <= now:
            uow.holds.close(core.closed(hold, HoldStatus.EXPIRED, now), now=now)
            _close_in_budgets(uow, budgets, hold, 0, now)
            uow.commit()
            raise _expired_conflict(msgspec.structs.replace(hold, status=HoldStatus.EXPIRED))
        metered = ctx.catalog.product(hold.product_id)
        event = price_event(event_id=event_id, organization_id=organization_id, project_id=hold.project_id,
                            product=metered, quantity=quantity, occurred_at=now, now=now, token_id=hold.token_id)
        if uow.usage.get_event(organization_id, event_id) is not None:
            raise EventIdReused(event_id)
        rule = HoldOverrun(uow.settings.get(organization_id).hold_overrun)
        settlement = core.settle(wallet, hold, event.amount_micros, rule, now, budgets)
        if settlement.rejected:
            raise SettleExceedsHold(
                f"the actual amount exceeds the hold by {settlement.uncharged_micros} micro-dollars "
                "and the organization's rule is reject; settle at most the held amount or release", field="quantity")
        charged = msgspec.structs.replace(event, amount_micros=settlement.charge_micros)
        charge = None
        if settlement.charge_micros > 0:
            charge = transfer(organization_id=organization_id, idempotency_key=f"usage:{event_id}",
                              kind=EntryKind.USAGE, description=f"{metered.name}: {quantity} {metered.unit} (hold)",
                              created_at=now, source=Account.UNBILLED_USAGE, target=Account.REVENUE,
                              amount_micros=settlement.charge_micros, reference=event_id)
        settled = core.closed(hold, HoldStatus.SETTLED, now, event_id=event_id, quantity=quantity,
                              settlement=settlement)
        if not uow.holds.close(settled, now=now, charge=charge):  # pragma: no cover - under the wallet lock
            raise ConcurrentUpdate("the hold changed meanwhile; retry")
        _close_in_budgets(uow, budgets, hold, settlement.charge_micros, now)
        after = uow.wallets.get(organization_id)
        if charge is not None:
            uow.usage.record(charged)
            # The thresholds the debit path queues (daily email, budget reached, auto-recharge, low balance).
            after_debit(ctx, uow, after, Decision(allowed=True), now, budgets=budgets)
        uow.commit()
    return HoldOutcome(hold=settled, decision=Decision(allowed=True, reason=settlement.denial),
                       balance_micros=after.balance_micros, held_micros=after.held_micros)


def release_hold(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, hold_id: uuid.UUID) -> HoldOutcome:
    """Give the whole hold back. Releasing a released or expired hold answers it again
    (``replayed``); a settled hold is a 409 ``hold_settled``."""
    require(actor, Action.REPORT_USAGE, organization_id)
    now = ctx.clock.now()
    with ctx.uow() as uow:
        wallet = uow.wallets.lock(organization_id)
        hold = uow.holds.get(organization_id, hold_id)
        if hold.status == HoldStatus.SETTLED:
            raise HoldSettled("the hold is settled", field="hold_id")
        if not hold.active:
            return HoldOutcome(hold=hold, decision=Decision(allowed=True), replayed=True,
                               balance_micros=wallet.balance_micros, held_micros=wallet.held_micros)
        released = core.closed(hold, HoldStatus.EXPIRED if hold.expires_at <= now else HoldStatus.RELEASED, now)
        uow.holds.close(released, now=now)
        _close_in_budgets(uow, _budgets_of(uow, wallet, hold.project_id, hold.token_id), hold, 0, now)
        uow.commit()
    return HoldOutcome(hold=released, decision=Decision(allowed=True), balance_micros=wallet.balance_micros,
                       held_micros=wallet.held_micros - hold.amount_micros)


def expire_holds(ctx: BillingContext, *, limit: int = 100) -> int:
    """Release every active hold past its expiry (at most ``limit``); how many this call expired.
    Each closes under its organization's wallet lock by a conditional write, so any number of
    workers may run this at once and each hold expires once."""
    now = ctx.clock.now()
    with ctx.uow() as uow:
        due = uow.holds.due(now, limit)
    expired = 0
    for hold in due:
        with ctx.uow() as uow:
            wallet = uow.wallets.lock(hold.organization_id)
            current = uow.holds.find(hold.organization_id, hold.id)
            if current is None or not current.active or current.expires_at > now:
                continue
            if uow.holds.close(core.closed(current, HoldStatus.EXPIRED, now), now=now):
                _close_in_budgets(uow, _budgets_of(uow, wallet, current.project_id, current.token_id), current, 0,
                                  now)
                uow.commit()
                expired += 1
    return expired


def hold_overrun(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID) -> HoldOverrun:
    require(actor, Action.VIEW_BILLING, organization_id)
    with ctx.uow() as uow:
        return HoldOverrun(uow.settings.get(organization_id).hold_overrun)


def set_hold_overrun(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, rule: str) -> HoldOverrun:
    """Choose what settling above a hold does (primary owner, as spend management)."""
    require(actor, Action.MANAGE_SPEND_MANAGEMENT, organization_id)
    try:
        chosen = HoldOverrun(rule)
    except ValueError:
        raise InvalidInput("hold_overrun", "hold_overrun must be reject, cap_at_hold or allow_within_credit_line",
                           code="invalid_hold_overrun") from None
    with ctx.uow() as uow:
        # The organization's lock first, as every settings save (ADR 0009): concurrent saves
        # queue and the last one wins whole, instead of answering 409 on the version check.
        uow.wallets.lock(organization_id)
        settings = uow.settings.get(organization_id)
        settings.hold_overrun = chosen.value
        uow.settings.save(settings)
        uow.commit()
    return chosen


def active_holds(ctx: BillingContext, organization_id: uuid.UUID) -> list[Hold]:
    """The organization's active holds (reconcile and tests)."""
    with ctx.uow() as uow:
        return uow.holds.active(organization_id)
