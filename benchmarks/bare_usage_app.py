"""The HTTP baseline of ``bench_usage_http``: a bare Litestar app on the same uvicorn, whose
``POST /organizations/{id}/usage/events`` handler does the debit in raw SQL (the same conditional
wallet ``UPDATE``, ledger ``INSERT`` and postings as ``bench_usage_path``'s baseline, then
``COMMIT``) on a per-thread bare driver connection, and answers 201 with a small JSON body. No
authentication, no spend guard in Python, no usage event or bucket, no notices.

Served as ``uvicorn benchmarks.bare_usage_app:create --factory``; configured by
``BENCH_BARE_DATABASE`` (a ``postgresql://`` DSN or a SQLite file path), ``BENCH_BARE_SCHEMA`` and
``BENCH_BARE_UNIT_PRICE``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from litestar import Litestar, Request, Response, post

from benchmarks.bench_usage_path import _CONDITIONAL_UPDATE, _INSERT_POSTING, _INSERT_TX

_local = threading.local()


def _connection() -> tuple[Any, bool]:
    found = getattr(_local, "connection", None)
    if found is not None:
        return found  # type: ignore[no-any-return]
    database = os.environ["BENCH_BARE_DATABASE"]
    if database.startswith("postgresql://"):
        import psycopg

        schema = os.environ.get("BENCH_BARE_SCHEMA")
        raw: Any = psycopg.connect(database, options=f"-csearch_path={schema}" if schema else "")
        postgres = True
    else:
        raw = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
            raw.execute(f"PRAGMA {pragma}")
        postgres = False
    _local.connection = (raw, postgres)
    return raw, postgres


def _debit(organization_id: str, event_id: str, amount: int) -> int:
    raw, postgres = _connection()
    p = "%s" if postgres else "?"
    named = "%({})s" if postgres else ":{}"
    update_sql = _CONDITIONAL_UPDATE.format(**{n: named.format(n) for n in ("a", "day", "month", "org")})
    now = datetime.now(UTC)
    org = uuid.UUID(organization_id)
    if postgres:
        cursor = raw.cursor()
        org_value: Any = org
        day: Any = now.date()
        created: Any = now
        tx_id: Any = uuid.uuid4()
    else:
        cursor = raw
        cursor.execute("BEGIN IMMEDIATE")
        org_value, day = org.hex, now.date().isoformat()
        created = now.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        tx_id = uuid.uuid4().hex
    try:
        balance = cursor.execute(update_sql, {"a": amount, "day": day, "month": now.strftime("%Y-%m"),
                                              "org": org_value}).fetchone()
        if balance is None:
            raise LookupError("denied")
        seq = cursor.execute(_INSERT_TX.format(p=p), (tx_id, org_value, f"usage:{event_id}", event_id, created,
                                                      balance[0])).fetchone()
        assert seq is not None
        cursor.executemany(_INSERT_POSTING.format(p=p), [(seq[0], 0, org_value, "unbilled_usage", -amount),
                                                         (seq[0], 1, org_value, "revenue", amount)])
    except BaseException:
        raw.rollback() if postgres else raw.execute("ROLLBACK")
        raise
    raw.commit() if postgres else raw.execute("COMMIT")
    return int(balance[0])


@post("/organizations/{organization_id:str}/usage/events", sync_to_thread=True)
def report(organization_id: str, request: Request[Any, Any, Any], data: dict[str, Any]) -> Response[bytes]:
    amount = int(os.environ.get("BENCH_BARE_UNIT_PRICE", "1")) * int(data["quantity"])
    balance = _debit(organization_id, str(data["event_id"]), amount)
    body = json.dumps({"event_id": data["event_id"], "allowed": True, "replayed": False, "amount_micros": amount,
                       "balance_micros": balance}).encode()
    return Response(body, status_code=201, media_type="application/json")


def create() -> Litestar:
    return Litestar([report], debug=False)
