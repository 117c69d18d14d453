"""The shipped Alembic migrations create exactly the schema of ``adapters.sqlalchemy.tables``."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import main as alembic_main
from alembic.runtime.migration import MigrationContext
from sqlalchemy import BigInteger, Column, Engine, MetaData, inspect, text

from adapters.sqlalchemy import make_engine, migrate
from adapters.sqlalchemy.schema import (
    MIGRATIONS,
    alembic_config,
    current_revision,
    declared_for,
    downgrade,
    head_revision,
)
from adapters.sqlalchemy.tables import metadata
from adapters.testing.storage import migrated_engine

ALEMBIC_INI = MIGRATIONS.parent / "alembic.ini"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine(request.param, tmp_path)


def _diffs(engine: Engine, target: MetaData) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "compare_type": True, "compare_server_default": True,
            "include_object": declared_for(engine.dialect.name)})
        return list(compare_metadata(context, target))


def test_the_migrated_schema_has_no_drift_from_the_tables(engine: Engine) -> None:
    assert _diffs(engine, metadata) == []
    assert current_revision(engine) == head_revision()


def test_the_drift_check_would_notice_a_change(engine: Engine) -> None:
    changed = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        copy = table.to_metadata(changed)
        conditional = {c.name: c._ddl_if for c in table.constraints if c._ddl_if is not None}
        for constraint in copy.constraints:  # to_metadata drops ddl_if
            constraint._ddl_if = conditional.get(str(constraint.name), constraint._ddl_if)
    changed.tables["wallets"].append_column(Column("surprise_micros", BigInteger, nullable=True))
    diffs = _diffs(engine, changed)
    assert len(diffs) == 1 and "surprise_micros" in str(diffs[0])


def test_migrate_is_idempotent_and_downgrade_round_trips(engine: Engine) -> None:
    migrate(engine)
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    assert current_revision(engine) is None
    migrate(engine)
    assert _diffs(engine, metadata) == []


def test_open_usage_buckets_are_unique_only_while_uninvoiced(engine: Engine) -> None:
    indexes = {ix["name"]: ix for ix in inspect(engine).get_indexes("usage_buckets")}
    open_bucket = indexes["uq_usage_buckets_open"]
    assert open_bucket["unique"]
    assert open_bucket["column_names"] == ["organization_id", "project_key", "product_id", "hour"]
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            definition = connection.execute(text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_usage_buckets_open' "
                "AND schemaname = current_schema()")).scalar_one()
        else:
            definition = connection.execute(text(
                "SELECT sql FROM sqlite_master WHERE name = 'uq_usage_buckets_open'")).scalar_one()
    assert "WHERE" in definition and "invoice_id IS NULL" in definition


def test_money_columns_are_64_bit_integers(engine: Engine) -> None:
    inspector = inspect(engine)
    for table in ("wallets", "ledger_postings", "invoices", "payments", "usage_buckets"):
        for column in inspector.get_columns(table):
            if column["name"].endswith(("_micros", "_cents")):
                assert str(column["type"]).upper() == "BIGINT", (table, column)


def test_the_url_form_and_the_cli_ini_migrate_a_sqlite_file(tmp_path: Path) -> None:
    by_url = f"sqlite:///{tmp_path / 'by-url.db'}"
    migrate(by_url)
    assert current_revision(by_url) == head_revision()
    by_cli = f"sqlite:///{tmp_path / 'by-cli.db'}"
    alembic_main(["-c", str(ALEMBIC_INI), "-x", f"url={by_cli}", "upgrade", "head"])
    cli_engine = make_engine(by_cli)
    try:
        assert _diffs(cli_engine, metadata) == []
    finally:
        cli_engine.dispose()


def test_offline_mode_renders_postgresql_ddl() -> None:
    buffer = io.StringIO()
    config = alembic_config()
    config.output_buffer = buffer
    config.set_main_option("sqlalchemy.url", "postgresql+psycopg://localhost/offline")
    command.upgrade(config, "head", sql=True)
    ddl = buffer.getvalue()
    assert "CREATE TABLE wallets" in ddl
    assert "CREATE UNIQUE INDEX uq_usage_buckets_open" in ddl and "WHERE invoice_id IS NULL" in ddl
    assert "TIMESTAMP WITH TIME ZONE" in ddl and "BIGSERIAL" in ddl


def test_0002_keeps_existing_wallets_and_starts_their_previous_month_at_zero(engine: Engine) -> None:
    downgrade(engine, "0001")
    org = "00000000000040008000000000000042" if engine.dialect.name == "sqlite" else \
        "00000000-0000-4000-8000-000000000042"
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO organizations (id, name, created_at, currency_iso) "
                                "VALUES (:id, 'Acme', '2026-03-01 00:00:00+00:00', 'USD')"), {"id": org})
        connection.execute(text(
            "INSERT INTO wallets (organization_id, wallet_micros, unbilled_micros, credit_line_micros, "
            "minimum_production_credit_micros, gate_grace_days, spent_today_micros, spent_yesterday_micros, "
            "spend_month, spent_month_micros, version) VALUES (:id, 5, 0, 0, 0, 0, 0, 0, '2026-03', 7, 2)"),
            {"id": org})
    migrate(engine)
    with engine.connect() as connection:
        row = connection.execute(text("SELECT wallet_micros, spent_month_micros, spent_previous_month_micros, "
                                      "version FROM wallets")).one()
    assert tuple(row) == (5, 7, 0, 2)
    assert _diffs(engine, metadata) == []


def _uuid(engine: Engine, n: int) -> str:
    value = f"00000000-0000-4000-8000-{n:012d}"
    return value.replace("-", "") if engine.dialect.name == "sqlite" else value


def _org_with_customer(engine: Engine, n: int, customer: str | None) -> str:
    org = _uuid(engine, n)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO organizations (id, name, created_at, currency_iso, provider_customer_id) "
                                "VALUES (:id, 'Acme', '2026-03-01 00:00:00+00:00', 'USD', :customer)"),
                           {"id": org, "customer": customer})
    return org


def test_0010_keeps_the_newest_default_method_of_each_organization(engine: Engine) -> None:
    downgrade(engine, "0009")
    org = _org_with_customer(engine, 1, "cus_1")
    with engine.begin() as connection:
        for n, created in enumerate(("2026-03-01", "2026-03-03", "2026-03-02")):
            connection.execute(text(
                "INSERT INTO payment_methods (id, organization_id, provider_payment_method_id, payment_type, "
                "is_default, created_at) VALUES (:id, :org, :pm, 'card', :yes, :created)"),
                {"id": _uuid(engine, 100 + n), "org": org, "pm": f"pm_{n}", "yes": True,
                 "created": f"{created} 00:00:00+00:00"})
    migrate(engine)
    with engine.connect() as connection:
        defaults = connection.execute(text("SELECT provider_payment_method_id FROM payment_methods "
                                           "WHERE is_default")).scalars().all()
    assert defaults == ["pm_1"]
    assert _diffs(engine, metadata) == []


def test_0010_refuses_a_provider_customer_shared_by_two_organizations(engine: Engine) -> None:
    downgrade(engine, "0009")
    _org_with_customer(engine, 1, "cus_shared")
    _org_with_customer(engine, 2, "cus_shared")
    _org_with_customer(engine, 3, None)
    _org_with_customer(engine, 4, None)
    with pytest.raises(RuntimeError, match="cus_shared"):
        migrate(engine)
    assert current_revision(engine) == "0009"
