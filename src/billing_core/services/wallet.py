"""The wallet: promotional grants, and keeping its limits in step with the subscription and settings."""

from __future__ import annotations

import uuid

from billing_core.catalog import Catalog
from billing_core.ledger import Account, EntryKind, transfer
from billing_core.ports import UnitOfWork
from billing_core.services.context import BillingContext
from billing_core.spend_guard import gate_for, limits_for


def grant_credits(ctx: BillingContext, *, organization_id: uuid.UUID, amount_micros: int, description: str,
                  idempotency_key: str, reason: str | None = None) -> None:
    """Promotional credits ("Free Trial Credits"), once per key."""
    with ctx.uow() as uow:
        uow.wallets.lock(organization_id)
        uow.wallets.post(transfer(
            organization_id=organization_id, idempotency_key=idempotency_key, kind=EntryKind.GRANT,
            description=description, reason=reason, created_at=ctx.clock.now(),
            source=Account.PROMOTIONAL_GRANTS, target=Account.WALLET, amount_micros=amount_micros))
        uow.commit()


def sync_wallet(uow: UnitOfWork, catalog: Catalog, organization_id: uuid.UUID) -> None:
    """Keep the wallet's copy of limits and subscription gate in step with plan and settings.

    The hot path reads only the wallet record, so whenever the plan subscription or the spend
    settings change, the use case that changed them calls this in the same unit of work."""
    subscription = uow.plan_subscriptions.current(organization_id)
    settings = uow.settings.get(organization_id)
    uow.wallets.set_limits(organization_id, limits_for(catalog, subscription, settings))
    uow.wallets.set_gate(organization_id, gate_for(catalog, subscription))
