"""The raw-SQL debit every storage baseline runs (``bench_storage_debit``, ``bench_usage_path``,
``bare_usage_app``): one place, so the baselines cannot drift apart or from the spend guard's rules.

One debit on the bare driver (``sqlite3`` with ``isolation_level=None`` / ``psycopg``):

1. one conditional ``UPDATE`` of the wallet row that decides in SQL what ``spend_guard.decide``
   decides for an active subscription: the budgets by today's rule (``spend_guard.budget_reached``:
   denied once what was already used today / this month, plus what holds reserve, reaches the
   budget; the call's own amount plays no part, so the call that crosses a budget runs), then the
   balance (less what holds reserve, after the debit, plus the credit line, at least the minimum
   production credit); it rolls the day and month counters over and returns the balance after;
2. the ledger transaction, ``INSERT ... ON CONFLICT DO NOTHING RETURNING seq``;
3. its two postings; 4. ``COMMIT`` (SQLite: inside ``BEGIN IMMEDIATE``).

What it leaves out, and the project does: the subscription gate and grace window, the product
subscription check, the usage event and its hourly bucket, replays, notices.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

_UPDATE = """
UPDATE wallets SET
    unbilled_micros = unbilled_micros - {a},
    spent_today_micros = CASE WHEN spend_day = {day} THEN spent_today_micros + {a} ELSE {a} END,
    spent_month_micros = CASE WHEN spend_month = {month} THEN spent_month_micros + {a} ELSE {a} END,
    spend_day = {day}, spend_month = {month}, version = version + 1
WHERE organization_id = {org}
  AND (daily_budget_micros IS NULL
       OR (CASE WHEN spend_day = {day} THEN spent_today_micros ELSE 0 END) + held_micros < daily_budget_micros)
  AND (monthly_cap_micros IS NULL
       OR (CASE WHEN spend_month = {month} THEN spent_month_micros ELSE 0 END) + held_micros < monthly_cap_micros)
  AND wallet_micros + unbilled_micros - held_micros - {a} + credit_line_micros >= minimum_production_credit_micros
RETURNING wallet_micros + unbilled_micros
"""
_INSERT_TX = """
INSERT INTO ledger_transactions (id, organization_id, idempotency_key, kind, description, reason, reference,
                                 created_at, wallet_balance_after)
VALUES ({p}, {p}, {p}, 'usage', {p}, NULL, {p}, {p}, {p})
ON CONFLICT (organization_id, idempotency_key) DO NOTHING RETURNING seq
"""
_INSERT_POSTING = """
INSERT INTO ledger_postings (transaction_seq, line_no, organization_id, account, amount_micros)
VALUES ({p}, {p}, {p}, {p}, {p})
"""
_NAMES = ("a", "day", "month", "org")
_SQL = {
    True: (_UPDATE.format(**{n: f"%({n})s" for n in _NAMES}), _INSERT_TX.format(p="%s"),
           _INSERT_POSTING.format(p="%s")),
    False: (_UPDATE.format(**{n: f":{n}" for n in _NAMES}), _INSERT_TX.format(p="?"), _INSERT_POSTING.format(p="?")),
}


def raw_debit(connection: Any, *, postgres: bool, organization_id: uuid.UUID, amount_micros: int, key: str,
              now: datetime, description: str = "usage") -> int | None:
    """Debit ``amount_micros`` as one transaction on ``connection``; the balance after it, or None
    when the wallet refused (nothing written). ``key`` is the ledger idempotency key and reference."""
    update, insert_tx, insert_posting = _SQL[postgres]
    if postgres:
        org: Any = organization_id
        day: Any = now.date()
        created: Any = now
        tx_id: Any = uuid.uuid4()
        cursor = connection.cursor()
    else:
        org, day = organization_id.hex, now.date().isoformat()
        created = now.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        tx_id = uuid.uuid4().hex
        cursor = connection
        cursor.execute("BEGIN IMMEDIATE")
    try:
        balance = cursor.execute(update, {"a": amount_micros, "day": day, "month": now.strftime("%Y-%m"),
                                          "org": org}).fetchone()
        if balance is None:
            connection.rollback() if postgres else cursor.execute("ROLLBACK")
            return None
        seq = cursor.execute(insert_tx, (tx_id, org, key, description, key, created, balance[0])).fetchone()
        assert seq is not None, "the bench never repeats a key"
        cursor.executemany(insert_posting, [(seq[0], 0, org, "unbilled_usage", -amount_micros),
                                            (seq[0], 1, org, "revenue", amount_micros)])
    except BaseException:
        connection.rollback() if postgres else cursor.execute("ROLLBACK")
        raise
    connection.commit() if postgres else cursor.execute("COMMIT")
    return int(balance[0])
