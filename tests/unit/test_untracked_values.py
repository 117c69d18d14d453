"""Value structs kept in large numbers are not tracked by the cyclic GC (``gc=False``): their
fields are values, so no cycle can form, and tracking them made full collections rescan the
whole store on the usage hot path. A struct that gains a container field must drop the option."""

from __future__ import annotations

import gc
import uuid
from datetime import UTC, datetime

import msgspec

from billing_core.ledger import Account, EntryKind, transfer
from billing_core.money import Money
from billing_core.usage import HourlyUsage, UsageEvent, UsageLine
from billing_core.wallet import SpendLimits, SubscriptionGate, WalletAccount
from entrypoints.http.schemas import UsageLineOut

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ORG = uuid.UUID(int=7)


def test_hot_value_structs_are_untracked_and_still_copy_and_compare() -> None:
    tx = transfer(organization_id=ORG, idempotency_key="k", kind=EntryKind.USAGE, description="d", created_at=NOW,
                  source=Account.UNBILLED_USAGE, target=Account.REVENUE, amount_micros=5)
    bucket = HourlyUsage(organization_id=ORG, project_id=None, product_id=ORG, hour=NOW, quantity=1, amount_micros=5)
    values: list[msgspec.Struct] = [
        tx, *tx.postings, bucket, UsageLine(None, ORG, NOW, 1, 5), Money(5, "USD"), SpendLimits(), SubscriptionGate(),
        WalletAccount(organization_id=ORG),
        UsageEvent(event_id="e", organization_id=ORG, project_id=None, product_id=ORG, quantity=1, occurred_at=NOW,
                   amount_micros=5, unit_price_micros=5),
        UsageLineOut(NOW, None, ORG, "p", "P", "u", 1, 5, Money(0, "USD")),
    ]
    assert [type(v).__name__ for v in values if gc.is_tracked(v)] == []
    copied = msgspec.structs.replace(bucket, quantity=2)
    assert (copied.quantity, bucket.quantity) == (2, 1)
    assert msgspec.json.decode(msgspec.json.encode(tx), type=type(tx)) == tx
