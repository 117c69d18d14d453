"""The spend-control state machine (issue 21): random sequences of the operations of
:mod:`tests.support.spend_control` (top-ups, usage, refunds, grants with expiries, holds placed,
settled under every over-hold rule, released and expired, worker cycles, days passing), each
delivered once or twice, through the public use cases, with the books checked after every step.

It runs on the in-memory adapter here and on SQLite with fewer examples (a fresh copy of a
migrated database per example); the SIGKILL soak (``tests/reliability/test_soak_kill_postgres.py``)
runs the same registry on PostgreSQL. The wallet-level machine is ``test_wallet_state_machine.py``.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from sqlalchemy import Engine

from adapters.fakes import FixedClock, in_memory_billing
from adapters.fakes.bundle import InMemoryBilling
from adapters.sqlalchemy import sqlalchemy_uow_factory
from adapters.testing.storage import copy_sqlite, migrated_sqlite_template
from billing_core.catalog import load_catalog
from billing_core.services.context import BillingContext
from tests.support.spend_control import (
    REGISTRY,
    T0,
    BookKeeping,
    Model,
    World,
    apply_step,
    check_books,
    make_step,
    record,
    setup_org,
)

ORGS = 4
"""One organization of each profile (no plan; budgets; pro plan; pro plan and budget)."""


class SpendControlMachine(RuleBasedStateMachine):
    """Over memory; :class:`SqliteSpendControlMachine` over SQLite."""

    def __init__(self) -> None:
        super().__init__()
        self.fakes = in_memory_billing(T0)
        self.world = self.make_world(self.fakes)
        self.world.orgs = [setup_org(self.world.ctx, i) for i in range(ORGS)]
        self.model = Model(orgs=ORGS)
        self.kept = BookKeeping()

    def make_world(self, fakes: InMemoryBilling) -> World:
        return World(ctx=fakes.ctx, clock=fakes.clock, orgs=[], deliverers=fakes.deliverers)

    @rule(op=st.sampled_from(sorted(REGISTRY)), rng=st.randoms(use_true_random=False))
    def step(self, op: str, rng: random.Random) -> None:
        step = make_step(self.model, rng, op=op, dup_rate=0.3)
        if step is None:
            return
        record(self.model, step, apply_step(self.world, step))

    @invariant()
    def books(self) -> None:
        check_books(self.world.ctx, self.world.orgs, self.model, kept=self.kept)

    def teardown(self) -> None:
        check_books(self.world.ctx, self.world.orgs, self.model, kept=self.kept, every_transaction=True)


TestSpendControlMachine = SpendControlMachine.TestCase
TestSpendControlMachine.settings = settings(max_examples=40, stateful_step_count=40, deadline=None,
                                            suppress_health_check=[HealthCheck.too_slow])

_TEMPLATE: list[Path] = []


def _sqlite_template() -> Path:
    if not _TEMPLATE:
        _TEMPLATE.append(migrated_sqlite_template(Path(tempfile.mkdtemp(prefix="spend-control-"))))
    return _TEMPLATE[0]


class SqliteSpendControlMachine(SpendControlMachine):
    engine: Engine

    def make_world(self, fakes: InMemoryBilling) -> World:
        template = _sqlite_template()
        self.engine = copy_sqlite(template, template.with_name(f"example-{random.getrandbits(64):x}.db"))
        clock = FixedClock(T0)
        ctx = BillingContext(uow=sqlalchemy_uow_factory(self.engine), clock=clock, catalog=load_catalog(),
                             payments=fakes.payments)
        return World(ctx=ctx, clock=clock, orgs=[], deliverers=fakes.deliverers)

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            self.engine.dispose()
            Path(str(self.engine.url.database)).unlink(missing_ok=True)


TestSqliteSpendControlMachine = SqliteSpendControlMachine.TestCase
TestSqliteSpendControlMachine.settings = settings(max_examples=6, stateful_step_count=30, deadline=None,
                                                  suppress_health_check=[HealthCheck.too_slow])
