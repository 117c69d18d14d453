"""Value structs kept or made in large numbers are not tracked by the cyclic GC (``gc=False``):
their fields are values, so no cycle can form. Tracking them made full collections rescan the
whole store on the usage hot path, and the per-event structs of a batch (its requests, decisions,
outcomes and answers) made it collect several times a batch. A struct that gains a container
field must drop the option: the last test finds any that did."""

from __future__ import annotations

import gc
import importlib
import pkgutil
import types
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

import msgspec
import pytest

import billing_core
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


def _untracked_structs() -> list[type[msgspec.Struct]]:
    modules = [importlib.import_module(m.name)
               for m in pkgutil.walk_packages(billing_core.__path__, "billing_core.")]
    modules.append(importlib.import_module("entrypoints.http.schemas"))
    found = {value for module in modules for value in vars(module).values()
             if isinstance(value, type) and issubclass(value, msgspec.Struct) and value is not msgspec.Struct
             and value.__struct_config__.gc is False}
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


_VALUES = (bool, int, float, str, bytes, datetime, date, time, timedelta, Decimal, uuid.UUID, type(None), Enum)


def _containers(annotation: Any, where: str) -> list[str]:
    """Where ``annotation`` could hold something a cycle could run through (a list, a dict, a
    tracked struct, anything at all)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _containers(args[0], where)
    if origin in (Union, types.UnionType, tuple, frozenset):
        return [found for arg in args if arg is not Ellipsis for found in _containers(arg, where)]
    if origin is Literal or (isinstance(annotation, type) and issubclass(annotation, _VALUES)):
        return []
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return [] if annotation.__struct_config__.gc is False else [f"{where}: {annotation.__qualname__}"]
    return [f"{where}: {annotation!r}"]


UNTRACKED = _untracked_structs()


def test_the_batch_paths_structs_are_among_the_untracked() -> None:
    names = {cls.__qualname__ for cls in UNTRACKED}
    assert {"DebitRequest", "DebitOutcome", "Decision", "BudgetBreach", "UsageEventInput", "UsageOutcome",
            "UsageEventBody", "UsageOutcomeOut", "Credits"} <= names


@pytest.mark.parametrize("cls", UNTRACKED, ids=lambda cls: cls.__qualname__)
def test_an_untracked_struct_holds_only_values(cls: type[msgspec.Struct]) -> None:
    hints = get_type_hints(cls, include_extras=True)
    assert [found for name in cls.__struct_fields__ for found in _containers(hints[name], name)] == []
