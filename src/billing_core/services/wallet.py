"""The wallet: promotional grants, and keeping its limits in step with the subscription and settings."""

from __future__ import annotations

import uuid

from billing_core.ledger import Account, EntryKind, transfer
from billing_core.services.context import BillingContext


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
