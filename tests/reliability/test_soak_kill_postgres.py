"""The spend-control soak: random steps of the registry against PostgreSQL in a child process that
is SIGKILLed before and after COMMIT and on a random timer, restarted, and given the step in flight
again; the books are checked after every restart and at the end (``soak_support``).

``make test`` runs a short soak (BILLING_SOAK_STEPS unset: 500 steps, 8 organizations, a high kill
rate); ``make soak`` runs the long one (BILLING_SOAK_STEPS, default 100000; BILLING_SOAK_ORGS,
default 100; BILLING_SOAK_SEED, default 2026) and prints its numbers. Skipped, loudly, without
PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.testing.storage import migrated_database
from tests.reliability.soak_support import Soak

LONG = "BILLING_SOAK_STEPS" in os.environ
STEPS = int(os.environ.get("BILLING_SOAK_STEPS", "500"))
ORGS = int(os.environ.get("BILLING_SOAK_ORGS", "100" if LONG else "8"))
SEED = int(os.environ.get("BILLING_SOAK_SEED", "2026"))
KILL_RATE = float(os.environ.get("BILLING_SOAK_KILL_RATE", "0.007" if LONG else "0.04"))

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(0 if LONG else 300)]


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, str]]:
    with migrated_database("postgresql", tmp_path) as database:
        yield database


def test_spend_control_survives_sigkill_at_commit_points(database: tuple[str, str]) -> None:
    url, schema = database
    report = Soak(url, schema, orgs=ORGS, seed=SEED, kill_rate=KILL_RATE).run(STEPS)
    print(f"\nsoak: {report.steps} steps, seed {SEED}, {ORGS} orgs, {report.sigkills} SIGKILLs {report.kills}, "
          f"{report.restarts} restarts, {report.redeliveries} redeliveries, {report.book_checks} book checks, "
          f"{report.seconds:.0f} s\ncounts: {report.counts}")
    assert report.steps == STEPS
    assert report.kills["before"] > 0 and report.kills["after"] > 0, report
    assert report.counts.get("holds_settled", 0) > 0 and report.counts.get("grant_expiries", 0) > 0, report
