"""The HTTP baseline of ``bench_usage_http``: a bare Litestar app on the same uvicorn, whose
``POST /organizations/{id}/usage/events`` handler does the debit in raw SQL (:func:`benchmarks.raw_debit.raw_debit`,
as ``bench_usage_path``'s baseline) on a per-thread bare driver connection, and answers 201 with a small JSON body. No
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

from benchmarks.raw_debit import raw_debit

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
    balance = raw_debit(raw, postgres=postgres, organization_id=uuid.UUID(organization_id), amount_micros=amount,
                        key=f"usage:{event_id}", now=datetime.now(UTC))
    if balance is None:
        raise LookupError("denied")
    return balance


@post("/organizations/{organization_id:str}/usage/events", sync_to_thread=True)
def report(organization_id: str, request: Request[Any, Any, Any], data: dict[str, Any]) -> Response[bytes]:
    amount = int(os.environ.get("BENCH_BARE_UNIT_PRICE", "1")) * int(data["quantity"])
    balance = _debit(organization_id, str(data["event_id"]), amount)
    body = json.dumps({"event_id": data["event_id"], "allowed": True, "replayed": False, "amount_micros": amount,
                       "balance_micros": balance}).encode()
    return Response(body, status_code=201, media_type="application/json")


def create() -> Litestar:
    return Litestar([report], debug=False)
