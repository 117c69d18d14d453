"""The wallet: promotional grants, and keeping its limits in step with the subscription and settings."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from billing_core.catalog import Catalog
from billing_core.errors import InvalidInput
from billing_core.grants import GrantSource
from billing_core.ledger import Account, EntryKind, transfer
from billing_core.permissions import Action, Actor, require
from billing_core.ports import UnitOfWork
from billing_core.services.context import BillingContext
from billing_core.services.grants import (
    GrantView,
    catch_up,
    check_grant_amount,
    grant_status,
    grant_terms,
    movements_of,
)
from billing_core.spend_guard import gate_for, limits_for

PROMOTIONAL_GRANT_SOURCES = frozenset({GrantSource.PROMOTION, GrantSource.TRIAL})
"""The sources :func:`grant_credits` posts (plan credits and purchases come from their own use cases)."""


def grant_credits(ctx: BillingContext, *, organization_id: uuid.UUID, amount_micros: int, description: str,
                  idempotency_key: str, reason: str | None = None, source: GrantSource = GrantSource.PROMOTION,
                  expires_at: datetime | None = None, priority: int = 0) -> bool:
    """Promotional credits ("Free Trial Credits"), once per key: a grant of ``source`` (promotion or
    trial) that expires at ``expires_at`` (None: never) and is drawn by ``priority`` (lower first)
    among grants of equal expiry (ADR 0016). The terms are stored with the entry, in one unit of
    work. Whether this call posted it (False: the key was used before, nothing changed)."""
    check_grant_amount(amount_micros)
    if source not in PROMOTIONAL_GRANT_SOURCES:
        raise InvalidInput("source", "source must be promotion or trial")
    now = ctx.clock.now()
    if expires_at is not None and (expires_at.tzinfo is None or expires_at <= now):
        raise InvalidInput("expires_at", "expires_at must be a UTC datetime in the future")
    with ctx.uow() as uow:
        uow.wallets.lock(organization_id)
        grant_terms(uow, organization_id=organization_id, idempotency_key=idempotency_key, source=source,
                    expires_at=expires_at, priority=priority)
        posted = uow.wallets.post(transfer(
            organization_id=organization_id, idempotency_key=idempotency_key, kind=EntryKind.GRANT,
            description=description, reason=reason, created_at=ctx.clock.now(),
            source=Account.PROMOTIONAL_GRANTS, target=Account.WALLET, amount_micros=amount_micros))
        uow.commit()
    return not posted.replayed


class GrantCreated(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`create_grant` made: the grant (None when the credit all went to uncovered
    usage), what paid uncovered usage first, and whether the request had been made before."""

    grant: GrantView | None
    paid_uncovered_micros: int
    replayed: bool


PROMOTION_KEY = "promotion"
"""Ledger key prefix of a promotional grant made through :func:`create_grant`: ``promotion:<grant request id>``."""


def create_grant(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, amount_micros: int,
                 description: str, request_id: uuid.UUID | None = None, source: GrantSource = GrantSource.PROMOTION,
                 expires_at: datetime | None = None, priority: int = 0, reason: str | None = None) -> GrantCreated:
    """Grant promotional credits (``credits:grant``: the platform's tokens, no role): the entry,
    its terms and the grant it makes, in one unit of work under the wallet lock. ``request_id``
    names the grant request (over HTTP the ``Idempotency-Key`` maps to it): asking again with it
    answers the grant made the first time. Returns the grant as allocated: credit first pays the
    usage no grant covered (credit-line debt), so the grant may be smaller than the amount, or
    none at all."""
    require(actor, Action.GRANT_CREDITS, organization_id)
    description = (description or "").strip()
    if not 1 <= len(description) <= 200:
        raise InvalidInput("description", "description must be 1 to 200 characters")
    key = f"{PROMOTION_KEY}:{request_id or uuid.uuid4()}"
    posted = grant_credits(ctx, organization_id=organization_id, amount_micros=amount_micros, description=description,
                  idempotency_key=key, reason=reason, source=source, expires_at=expires_at, priority=priority)
    with ctx.uow() as uow:
        uow.wallets.lock(organization_id)
        catch_up(uow, organization_id)
        tx = uow.ledger.get_by_key(organization_id, key)
        assert tx is not None
        movements = movements_of(uow, organization_id, tx.id)
        uow.commit()
        made = uow.grants.get_many(organization_id, [m.grant_id for m in movements if m.grant_id is not None])
    paid = sum(m.amount_micros for m in movements if m.grant_id is None)
    view = GrantView(grant=made[0], status=grant_status(made[0], ctx.clock.now())) if made else None
    return GrantCreated(grant=view, paid_uncovered_micros=paid, replayed=not posted)


def sync_wallet(uow: UnitOfWork, catalog: Catalog, organization_id: uuid.UUID) -> None:
    """Keep the wallet's copy of limits and subscription gate in step with plan and settings.

    The hot path reads only the wallet record, so whenever the plan subscription or the spend
    settings change, the use case that changed them calls this in the same unit of work."""
    subscription = uow.plan_subscriptions.current(organization_id)
    settings = uow.settings.get(organization_id)
    uow.wallets.set_limits(organization_id, limits_for(catalog, subscription, settings))
    uow.wallets.set_gate(organization_id, gate_for(catalog, subscription))
