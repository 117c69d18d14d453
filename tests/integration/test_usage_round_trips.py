"""Round trips per usage event, counted at the driver (issue 16): what ``report_usage`` and
``report_usage_batch`` send to the database, on SQLite and PostgreSQL. Deterministic: no timings.

* PostgreSQL: libpq's own protocol trace of the pooled connection (``PGconn.trace``); a round trip
  is the client sending messages and then reading the server's answer, so each switch from
  messages sent (``F``) to messages received (``B``) counts one (a pipeline of several statements
  sent together is one round trip, as on the wire).
* SQLite: ``sqlite3``'s trace callback, one call per statement run (``BEGIN IMMEDIATE`` and
  ``COMMIT`` included): SQLite has no network, so this counts the statements.

Both see everything on the connection, whether SQLAlchemy or the driver-level hot path
(``adapters.sqlalchemy.driver``) sent it. The pool never pings during the test
(``ping_after_idle_s`` is an hour), so the count is that of the use case alone. The limits below
are the numbers reached; a change that adds a round trip to the hot path fails here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from adapters.fakes import FixedClock, InMemoryPaymentProvider
from adapters.sqlalchemy import driver, sqlalchemy_uow_factory
from adapters.sqlalchemy.tokens import SqlAlchemyTokenReader
from adapters.testing.storage import SqlKind, migrated_engine
from billing_core import Permission, services
from billing_core.catalog import load_catalog
from billing_core.services.context import BillingContext
from billing_core.services.usage import MAX_BATCH, WRITE_PART, UsageEventInput
from tests.e2e.conftest import START
from tests.support.customers import Customer, sign_up

# Round trips per event of report_usage, allowed and debited, after the first (warm) call.
# On PostgreSQL the unit of work's BEGIN goes with its first statement (``begin_with``): 4 -> 3.
SINGLE_LIMIT = {"sqlite": 8, "postgresql": 3}
# Round trips for a whole batch of BATCH events (they do not grow with the batch). The first event's
# lock_for_event answers its subscription check and the settings read (PostgreSQL 11 -> 10, SQLite 110 -> 109),
# and debit_many decides on the wallet it locked instead of locking it again (10 -> 9, 109 -> 108);
# on PostgreSQL the ledger transactions and their postings go in one statement (9 -> 8); the
# replays are read with the lock, the wallet update goes with the ledger rows and the bucket upserts
# with the events (8 -> 5), the ledger rows with the events (5 -> 4), and BEGIN with the lock
# (4 -> 3: BEGIN, lock and used keys; the write; COMMIT).
BATCH = 50
BATCH_LIMIT = {"sqlite": 108, "postgresql": 3}
# Authenticating a request (its token and the member's role): one statement outside any transaction.
# In a unit of work it was BEGIN, the token, the membership, ROLLBACK (3-4 round trips on PostgreSQL).
AUTH_LIMIT = {"sqlite": 1, "postgresql": 1}


class Tracer:
    """Counts what the driver sends on every connection the engine opens from now on."""

    def __init__(self, engine: Engine, kind: str) -> None:
        self.kind = kind
        self.statements: list[str] = []
        self._pg: list[tuple[Any, Path]] = []
        self._files = 0
        self._dir = tempfile.mkdtemp(prefix="billing-trace-")
        engine.dispose()  # connections opened from now on are traced
        event.listen(engine, "connect", self._on_connect)

    def _on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        if self.kind == "sqlite":
            dbapi_connection.set_trace_callback(self.statements.append)
            return
        from psycopg import pq

        dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        self._pg.append((dbapi_connection, self._trace_to_new_file(dbapi_connection)))

    def _trace_to_new_file(self, dbapi_connection: Any) -> Path:
        self._files += 1
        path = Path(self._dir) / f"trace-{self._files}.txt"
        dbapi_connection.pgconn.trace(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        return path

    def mark(self) -> int:
        """The round trips so far."""
        if self.kind == "sqlite":
            return len(self.statements)
        count = 0
        sent: set[str] = set()
        for direction, message in self._pg_messages():
            if direction == "F":
                sent.add(message)
            elif sent:
                # The client sent, then waited for the server: one round trip. Not counted: a
                # block of Parse + Sync alone, psycopg preparing a statement at its 5th use with
                # a given set of parameter types (once per connection and statement).
                count += sent != {"Parse", "Sync"}
                sent = set()
        return count

    def syncs(self) -> int:
        """PostgreSQL: the points so far where the client asked for every answer to what it sent
        (``Sync`` in pipeline mode, or a simple ``Query``). Unlike :meth:`mark`, this does not
        depend on when answers happen to arrive while the client is still sending."""
        return sum(1 for direction, message in self._pg_messages()
                   if direction == "F" and message in ("Sync", "Query"))

    def _pg_messages(self) -> Iterator[tuple[str, str]]:
        """(``F`` or ``B``, message type) of everything traced so far, file by file."""
        for index, (connection, _path) in enumerate(self._pg):
            if not connection.closed:
                connection.pgconn.untrace()  # flushes libpq's stream; the rest goes to a new file
                self._pg[index] = (connection, self._trace_to_new_file(connection))
        for path in Path(self._dir).iterdir():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                parts = line.split("\t")
                if parts and parts[0] not in ("F", "B"):
                    parts = parts[1:]  # a timestamp
                if len(parts) > 2 and parts[0] in ("F", "B"):
                    yield parts[0], parts[2].split(" ")[0]
                elif parts and parts[0] == "B":
                    yield "B", ""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def traced(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[BillingContext, Customer, Tracer]]:
    kind: SqlKind = request.param
    for engine in migrated_engine(kind, tmp_path, pool_size=1, max_overflow=0, ping_after_idle_s=3600.0):
        ctx = BillingContext(uow=sqlalchemy_uow_factory(engine), clock=FixedClock(START), catalog=load_catalog(),
                             payments=InMemoryPaymentProvider(), tokens=SqlAlchemyTokenReader(engine))
        customer = sign_up(ctx, name="Trips", products=("inference",))
        services.wallet.grant_credits(ctx, organization_id=customer.organization_id, amount_micros=10**12,
                                      description="grant", idempotency_key="grant")
        tracer = Tracer(engine, kind)
        yield ctx, customer, tracer


def _report(ctx: BillingContext, customer: Customer, event_id: str) -> None:
    outcome = services.usage.report_usage(ctx, customer.platform, organization_id=customer.organization_id,
                                             event_id=event_id, product="inference", quantity=2)
    assert outcome.allowed and not outcome.replayed


def test_one_usage_event_costs_at_most_the_round_trips_reached(
        traced: tuple[BillingContext, Customer, Tracer]) -> None:
    ctx, customer, tracer = traced
    _report(ctx, customer, "warm")
    counts = []
    for n in range(8):
        before = tracer.mark()
        _report(ctx, customer, f"e-{n}")
        counts.append(tracer.mark() - before)
    assert max(counts) <= SINGLE_LIMIT[tracer.kind], (counts, tracer.statements[-12:])


def test_a_batch_costs_the_same_round_trips_whatever_its_size(
        traced: tuple[BillingContext, Customer, Tracer]) -> None:
    ctx, customer, tracer = traced
    _report(ctx, customer, "warm")
    before = tracer.mark()
    outcomes = services.usage.report_usage_batch(
        ctx, customer.platform, organization_id=customer.organization_id,
        events=[UsageEventInput(event_id=f"b-{n}", product="inference", quantity=1) for n in range(BATCH)])
    assert all(o.allowed and not o.replayed for o in outcomes)
    trips = tracer.mark() - before
    assert trips <= BATCH_LIMIT[tracer.kind], (trips, tracer.statements[-20:])


def test_a_full_batch_is_written_in_parts_in_one_pipeline(
        traced: tuple[BillingContext, Customer, Tracer]) -> None:
    """A batch of 1,000 events is written in parts (``WRITE_PART`` events each), all sent before
    the client waits: still BEGIN with the lock, the write, COMMIT."""
    ctx, customer, tracer = traced
    if tracer.kind != "postgresql":
        pytest.skip("pipeline mode is PostgreSQL's")
    _report(ctx, customer, "warm")
    before, parts_before = tracer.syncs(), _sent(tracer, "Execute")
    outcomes = services.usage.report_usage_batch(
        ctx, customer.platform, organization_id=customer.organization_id,
        events=[UsageEventInput(event_id=f"f-{n}", product="inference", quantity=1) for n in range(MAX_BATCH)])
    assert all(o.allowed and not o.replayed for o in outcomes)
    assert tracer.syncs() - before == BATCH_LIMIT["postgresql"]
    # BEGIN, the lock, the used keys, then one statement per part; COMMIT is a simple query.
    assert _sent(tracer, "Execute") - parts_before == 3 + MAX_BATCH // WRITE_PART


def _sent(tracer: Tracer, message: str) -> int:
    return sum(1 for direction, sent in tracer._pg_messages() if direction == "F" and sent == message)


def test_without_pipeline_mode_a_batch_costs_two_round_trips_more(
        traced: tuple[BillingContext, Customer, Tracer], monkeypatch: pytest.MonkeyPatch) -> None:
    """A libpq older than 14 has no pipeline mode: psycopg's own BEGIN, then the lock and the read
    of used keys one after the other (two round trips more), with the same answers (a replay
    among them)."""
    ctx, customer, tracer = traced
    if tracer.kind != "postgresql":
        pytest.skip("pipeline mode is PostgreSQL's")
    monkeypatch.setattr(driver, "pipeline_supported", lambda: False)
    _report(ctx, customer, "warm")
    before = tracer.mark()
    outcomes = services.usage.report_usage_batch(
        ctx, customer.platform, organization_id=customer.organization_id,
        events=[UsageEventInput(event_id=f"b-{n}", product="inference", quantity=1) for n in range(BATCH)])
    trips = tracer.mark() - before
    assert all(o.allowed and not o.replayed for o in outcomes)
    assert trips == BATCH_LIMIT["postgresql"] + 2, (trips, tracer.statements[-8:])
    outcomes = services.usage.report_usage_batch(
        ctx, customer.platform, organization_id=customer.organization_id,
        events=[UsageEventInput(event_id=event_id, product="inference", quantity=2 if event_id == "warm" else 1)
                for event_id in ("c-0", "warm", "b-1", "c-1")])
    assert [(o.allowed, o.replayed) for o in outcomes] == [(True, False), (True, True), (True, True), (True, False)]


def test_authentication_costs_one_round_trip(traced: tuple[BillingContext, Customer, Tracer]) -> None:
    ctx, customer, tracer = traced
    _, service = services.organizations.issue_token(ctx, organization_id=customer.organization_id, name="svc",
                                                    scopes=frozenset({Permission.USAGE_WRITE}))
    _, member = services.organizations.issue_token(ctx, organization_id=customer.organization_id, name="ada",
                                                   user_id="ada")
    services.organizations.authenticate(ctx, service)  # warm
    for secret in (service, member, service, member):
        before = tracer.mark()
        actor = services.organizations.authenticate(ctx, secret)
        trips = tracer.mark() - before
        assert actor.organization_id == customer.organization_id
        assert trips <= AUTH_LIMIT[tracer.kind], (trips, tracer.statements[-4:])


# With a token budget (ADR 0017): the budgets of the call are read and stored under the wallet lock,
# one more round trip each (only for an organization that has scoped budgets: the count on the
# wallet row keeps the cases above unchanged).
SINGLE_WITH_TOKEN_BUDGET_LIMIT = {"sqlite": 10, "postgresql": 5}


def test_one_usage_event_with_a_token_budget_costs_two_round_trips_more(
        traced: tuple[BillingContext, Customer, Tracer]) -> None:
    ctx, customer, tracer = traced
    assert customer.platform.token_id is not None
    services.budgets.put_budget(ctx, customer.owner, organization_id=customer.organization_id, scope="token",
                                scope_id=customer.platform.token_id, daily_micros=10**11)
    _report(ctx, customer, "warm")
    counts = []
    for n in range(8):
        before = tracer.mark()
        _report(ctx, customer, f"b-{n}")
        counts.append(tracer.mark() - before)
    assert max(counts) <= SINGLE_WITH_TOKEN_BUDGET_LIMIT[tracer.kind], (counts, tracer.statements[-12:])
    with ctx.uow() as uow:
        assert uow.budgets.list(customer.organization_id)[0].spent_today_micros > 0
