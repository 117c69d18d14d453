"""The `billing` command line over a real SQLite file: help, migrate, demo, close-period, dispatch,
reconcile, grant, grants."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from entrypoints.cli.main import app

COMMANDS = ["run", "serve", "migrate", "demo", "close-period", "dispatch", "reconcile", "grant", "grants"]


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


def test_operator_grants_credits_once_and_lists_them(env: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    demo = runner.invoke(app, ["demo"])
    org = next(line.split(": ")[1] for line in demo.output.splitlines() if line.startswith("organization: "))
    request = "7f1d3a52-93a8-4c4e-9d0b-0d6f3c1e2a11"

    made = runner.invoke(app, ["grant", org, "12.50", "--description", "Launch week", "--expires-at",
                               "2099-01-31", "--priority", "3", "--request-id", request, "--reason", "promo"])
    assert made.exit_code == 0, made.output
    assert "$12.500 promotion expires 2099-01-31T00:00:00+00:00 (active)" in made.output
    grant_id = made.output.split("grant ")[1].split(":")[0]

    again = runner.invoke(app, ["grant", org, "12.50", "--request-id", request])
    assert again.exit_code == 0, again.output
    assert "already granted" in again.output
    assert grant_id in again.output

    listed = runner.invoke(app, ["grants", org])
    assert listed.exit_code == 0, listed.output
    ours = [line for line in listed.output.splitlines() if line.startswith(grant_id)]
    assert len(ours) == 1 and "$12.500 of $12.500" in ours[0] and ours[0].endswith("active")
    reconciled = runner.invoke(app, ["reconcile", "--organization", org])
    assert reconciled.exit_code == 0, reconciled.output


@pytest.mark.parametrize(("args", "code"), [
    (["grant", "not-a-uuid", "5"], "invalid_input"),
    (["grant", "00000000-0000-4000-8000-000000000000", "5"], "not_found"),
    (["grants", "00000000-0000-4000-8000-000000000000"], "not_found"),
    (["grant", "{org}", "5.1234567"], "invalid_amount"),
    (["grant", "{org}", "5,00"], "invalid_amount"),
    (["grant", "{org}", "5", "--expires-at", "2001-01-01"], "invalid_input"),
    (["grant", "{org}", "5", "--source", "purchase"], "invalid_input"),
    (["grant", "{org}", "5", "--request-id", "nope"], "invalid_input"),
])
def test_grant_refuses_bad_input_and_changes_nothing(env: Path, args: list[str], code: str) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    demo = runner.invoke(app, ["demo"])
    org = next(line.split(": ")[1] for line in demo.output.splitlines() if line.startswith("organization: "))
    before = runner.invoke(app, ["grants", org]).output
    refused = runner.invoke(app, [a.format(org=org) for a in args])
    assert refused.exit_code == 2, refused.output
    assert f"[{code}]" in refused.output
    assert runner.invoke(app, ["grants", org]).output == before
