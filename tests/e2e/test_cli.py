"""The `billing` command line over a real SQLite file: help, migrate, demo, close-period, dispatch,
reconcile."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from entrypoints.cli.main import app

COMMANDS = ["run", "serve", "migrate", "demo", "close-period", "dispatch", "reconcile"]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BILLING_DATABASE_URL", f"sqlite:///{tmp_path / 'billing.db'}")
    monkeypatch.setenv("BILLING_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("BILLING_STORAGE", "sqlalchemy")
    return tmp_path


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_migrate_demo_close_dispatch_reconcile(env: Path) -> None:
    runner = CliRunner()
    migrated = runner.invoke(app, ["migrate"])
    assert migrated.exit_code == 0, migrated.output
    assert "latest schema" in migrated.output
    demo = runner.invoke(app, ["demo"])
    assert demo.exit_code == 0, demo.output
    tokens = [line.split(": ")[1] for line in demo.output.splitlines() if "token:" in line]
    assert len(tokens) == 4
    assert all(t.startswith("bc_") for t in tokens)
    again = runner.invoke(app, ["demo"])
    assert again.exit_code == 0
    assert set(tokens).isdisjoint(line.split(": ")[1] for line in again.output.splitlines() if "token:" in line)

    closed = runner.invoke(app, ["close-period"])
    assert closed.exit_code == 0, closed.output
    assert "period " in closed.output
    assert "0 invoice(s) created" in closed.output  # the demo closed its months already
    bad = runner.invoke(app, ["close-period", "--period", "2026-13"])
    assert bad.exit_code == 2
    assert "invalid_period" in bad.output

    dispatched = runner.invoke(app, ["dispatch"])
    assert dispatched.exit_code == 0
    assert "dead-lettered 0" in dispatched.output
    assert list((env / "var").rglob("*.pdf"))
    requeued = runner.invoke(app, ["dispatch", "--requeue", "all"])
    assert requeued.exit_code == 0, requeued.output
    assert "requeued 0 dead letter(s)" in requeued.output
    not_an_id = runner.invoke(app, ["dispatch", "--requeue", "nope"])
    assert not_an_id.exit_code == 2 and "message ids" in not_an_id.output

    reconciled = runner.invoke(app, ["reconcile"])
    assert reconciled.exit_code == 0, reconciled.output
    assert "1/1 organizations reconcile" in reconciled.output
