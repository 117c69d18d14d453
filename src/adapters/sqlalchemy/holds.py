"""Holds (ADR 0011): their own table, and the wallet's ``held_micros`` that sums the active ones.

Every write runs under the wallet lock the use case took first (ADR 0009). Closing is a
conditional ``UPDATE … WHERE status = 'active'`` whose row count decides; a settle's charge is
appended through the same driver statements as the debit hot path (ADR 0007), without a second
spend-guard decision (the hold was the decision).
"""

from __future__ import annotations

import copy
import uuid
from datetime import datetime

from sqlalchemy import select, update

from adapters.sqlalchemy import rows
from adapters.sqlalchemy.base import SqlAlchemyRepository
from adapters.sqlalchemy.tables import holds, ledger_transactions, wallets
from billing_core.errors import Conflict, InvalidInput, NotFound
from billing_core.holds import Hold, HoldStatus
from billing_core.ledger import LedgerTransaction, check_balanced
from billing_core.wallet import WalletAccount, apply_spend, apply_transaction, check_debit

_h, _w, _t = holds.c, wallets.c, ledger_transactions.c


class SqlAlchemyHoldRepository(SqlAlchemyRepository):
    def _lock(self, organization_id: uuid.UUID) -> WalletAccount:
        wallet = self._uow.driver.lock_wallet(organization_id)
        if wallet is None:
            raise NotFound("wallet", organization_id)
        return wallet

    def _move_held(self, organization_id: uuid.UUID, delta: int) -> None:
        self._execute(update(wallets).where(_w.organization_id == organization_id)
                      .values(held_micros=_w.held_micros + delta, version=_w.version + 1))

    def add(self, hold: Hold) -> bool:
        self._lock(hold.organization_id)
        with self._guarded():
            inserted = self._execute(self._insert(holds).on_conflict_do_nothing(index_elements=["id"]),
                                     rows.hold_values(hold)).rowcount
        if not inserted:
            return False
        self._move_held(hold.organization_id, hold.amount_micros)
        return True

    def find(self, organization_id: uuid.UUID, hold_id: uuid.UUID) -> Hold | None:
        row = self._execute(select(holds).where(_h.id == hold_id, _h.organization_id == organization_id)).first()
        return None if row is None else rows.hold_from_row(row)

    def get(self, organization_id: uuid.UUID, hold_id: uuid.UUID) -> Hold:
        hold = self.find(organization_id, hold_id)
        if hold is None:
            raise NotFound("hold", hold_id)
        return hold

    def close(self, hold: Hold, *, now: datetime, charge: LedgerTransaction | None = None) -> bool:
        org = hold.organization_id
        if charge is not None:
            if charge.organization_id != org:
                raise InvalidInput("organization_id", "transaction belongs to another organization")
            check_balanced(charge)
            check_debit(-charge.balance_delta, charge)
        wallet = self._lock(org)
        values = rows.hold_values(hold)
        for key in ("id", "organization_id", "product_id", "project_id", "max_quantity", "amount_micros",
                    "created_at", "expires_at"):
            del values[key]
        stored = self._execute(select(_h.amount_micros).where(_h.id == hold.id, _h.organization_id == org,
                                                              _h.status == HoldStatus.ACTIVE.value)).first()
        if stored is None:
            return False
        if charge is not None:
            taken = self._execute(select(_t.seq).where(_t.organization_id == org,
                                                       _t.idempotency_key == charge.idempotency_key)).first()
            if taken is not None:
                raise Conflict("the usage event id is in the ledger already", code="event_id_reused")
        closed = self._execute(update(holds).where(_h.id == hold.id, _h.organization_id == org,
                                                   _h.status == HoldStatus.ACTIVE.value).values(values))
        if closed.rowcount != 1:  # pragma: no cover - the wallet lock serializes closes
            return False
        if charge is not None:
            version = wallet.version
            spent = copy.copy(wallet)
            apply_spend(spent, -charge.balance_delta, now)
            stamped = apply_transaction(spent, charge)
            if self._uow.driver.write(stamped, spent, version) is None:  # pragma: no cover - checked above
                raise Conflict("the usage event id is in the ledger already", code="event_id_reused")
        self._move_held(org, -int(stored[0]))
        return True

    def due(self, now: datetime, limit: int = 100) -> list[Hold]:
        query = (select(holds).where(_h.status == HoldStatus.ACTIVE.value, _h.expires_at <= now)
                 .order_by(_h.expires_at, _h.id).limit(limit))
        return [rows.hold_from_row(row) for row in self._execute(query)]

    def active(self, organization_id: uuid.UUID) -> list[Hold]:
        query = (select(holds).where(_h.organization_id == organization_id, _h.status == HoldStatus.ACTIVE.value)
                 .order_by(_h.created_at, _h.id))
        return [rows.hold_from_row(row) for row in self._execute(query)]

    def settled_by_event(self, organization_id: uuid.UUID, event_id: str) -> Hold | None:
        # Served by ix_holds_organization_id_status: the organization's settled holds, then the event.
        row = self._execute(select(holds).where(_h.organization_id == organization_id,
                                                _h.status == HoldStatus.SETTLED.value,
                                                _h.event_id == event_id).limit(1)).first()
        return None if row is None else rows.hold_from_row(row)
