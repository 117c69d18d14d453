"""PostgreSQL checks the usage path's references once per statement; the ledger is append-only there.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

PostgreSQL only (ADR 0019); SQLite keeps its declared foreign keys. Three foreign keys become
statement-level triggers over the inserted rows (transition tables):

* ``ledger_postings.transaction_seq`` → ``ledger_transactions.seq``: every inserted posting names
  a transaction that exists;
* ``ledger_transactions.organization_id`` and ``usage_events.organization_id`` →
  ``organizations.id``: every inserted (or updated) row names an organization that exists, and
  each organization named is locked ``FOR KEY SHARE`` until commit, as the foreign key locked it,
  so it cannot be deleted under the writer; deleting an organization (or changing its id) that
  has ledger transactions or usage events is refused, as the foreign key refused it.

A foreign key also stops a referenced row from disappearing: ``ledger_transactions`` and
``ledger_postings`` refuse ``UPDATE`` and ``TRUNCATE`` always, and ``DELETE`` unless the session
says ``SET billing.ledger_maintenance = 'on'`` (a test kit's reset, a retention job); a correction
is a compensating transaction (ADR 0002). Even then a transaction is not deleted while a posting
names it. The violations raise the SQLSTATE and constraint names the foreign keys raised
(``23503``), so storage translates them as before; a change of the ledger raises ``23001``
(``restrict_violation``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEDGER_MAINTENANCE = "billing.ledger_maintenance"
"""The setting that lets a session delete ledger rows (``SET LOCAL billing.ledger_maintenance = 'on'``)."""

# (table, column, referred table, referred column, ON DELETE) of each foreign key replaced.
_REPLACED = (
    ("ledger_postings", "transaction_seq", "ledger_transactions", "seq", "CASCADE"),
    ("ledger_transactions", "organization_id", "organizations", "id", None),
    ("usage_events", "organization_id", "organizations", "id", None),
)


def _statements(s: str) -> list[str]:
    """The functions and triggers, the tables the functions read qualified by ``s`` (``"schema".``):
    a trigger reads the tables of its own schema, whatever the search path of the session that
    fires it (a ``SET search_path`` on each function cost ~15 µs per call, ~45 µs per event).

    Each check probes the referenced table's key once per distinct reference (a scalar subquery,
    or an ``EXISTS`` with a row lock, which the planner does not turn into a join): as a join, the
    plan cached on the first call may hash the whole referenced table, which grows."""
    return [statement.replace("{s}", s) for statement in _TEMPLATES]


_TEMPLATES = ["""
CREATE FUNCTION billing_postings_have_transactions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM (SELECT DISTINCT transaction_seq FROM inserted_rows) p
               WHERE (SELECT t.seq FROM {s}ledger_transactions t WHERE t.seq = p.transaction_seq) IS NULL) THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'a ledger posting names no ledger transaction',
            TABLE = 'ledger_postings',
            CONSTRAINT = 'fk_ledger_postings_transaction_seq_ledger_transactions';
    END IF;
    RETURN NULL;
END $$""", """
CREATE TRIGGER billing_postings_have_transactions AFTER INSERT ON ledger_postings
REFERENCING NEW TABLE AS inserted_rows FOR EACH STATEMENT
EXECUTE FUNCTION billing_postings_have_transactions()""", """
CREATE FUNCTION billing_rows_have_organizations() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The lock the foreign key took once per row, taken once per organization named.
    IF EXISTS (SELECT 1 FROM (SELECT DISTINCT organization_id FROM inserted_rows) n
               WHERE NOT EXISTS (SELECT 1 FROM {s}organizations o WHERE o.id = n.organization_id
                                 FOR KEY SHARE OF o)) THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('a row of %s names no organization', TG_TABLE_NAME),
            TABLE = TG_TABLE_NAME,
            CONSTRAINT = format('fk_%s_organization_id_organizations', TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END $$""", *(f"""
CREATE TRIGGER billing_{table}_have_organizations_on_{event.lower()} AFTER {event} ON {table}
REFERENCING NEW TABLE AS inserted_rows FOR EACH STATEMENT
EXECUTE FUNCTION billing_rows_have_organizations()"""
                 for table, events in (("ledger_transactions", ("INSERT",)), ("usage_events", ("INSERT", "UPDATE")))
                 for event in events), """
CREATE FUNCTION billing_organizations_keep_their_rows() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    referring text;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id THEN
        RETURN NEW;
    END IF;
    IF EXISTS (SELECT 1 FROM {s}ledger_transactions WHERE organization_id = OLD.id) THEN
        referring := 'ledger_transactions';
    ELSIF EXISTS (SELECT 1 FROM {s}usage_events WHERE organization_id = OLD.id) THEN
        referring := 'usage_events';
    END IF;
    IF referring IS NOT NULL THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('organization %s still has %s', OLD.id, referring),
            TABLE = referring,
            CONSTRAINT = format('fk_%s_organization_id_organizations', referring);
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$""", """
CREATE TRIGGER billing_organizations_keep_their_rows BEFORE DELETE OR UPDATE OF id ON organizations
FOR EACH ROW EXECUTE FUNCTION billing_organizations_keep_their_rows()""", f"""
CREATE FUNCTION billing_ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('{LEDGER_MAINTENANCE}', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE restrict_violation USING
        MESSAGE = format('%s is append-only: correct an entry with a compensating transaction', TG_TABLE_NAME),
        TABLE = TG_TABLE_NAME;
END $$""", *(f"""
CREATE TRIGGER billing_{table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table}
FOR EACH STATEMENT EXECUTE FUNCTION billing_ledger_is_append_only()"""
                 for table in ("ledger_transactions", "ledger_postings")), """
CREATE FUNCTION billing_transactions_keep_their_postings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM deleted_rows d
               WHERE (SELECT p.line_no FROM {s}ledger_postings p
                      WHERE p.transaction_seq = d.seq LIMIT 1) IS NOT NULL) THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'a deleted ledger transaction still has postings',
            TABLE = 'ledger_postings',
            CONSTRAINT = 'fk_ledger_postings_transaction_seq_ledger_transactions';
    END IF;
    RETURN NULL;
END $$""", """
CREATE TRIGGER billing_transactions_keep_their_postings AFTER DELETE ON ledger_transactions
REFERENCING OLD TABLE AS deleted_rows FOR EACH STATEMENT
EXECUTE FUNCTION billing_transactions_keep_their_postings()"""]
"""The functions and triggers; ``{s}`` stands for the schema qualification."""


_TRIGGERS = (
    ("billing_postings_have_transactions", "ledger_postings"),
    ("billing_ledger_transactions_have_organizations_on_insert", "ledger_transactions"),
    ("billing_usage_events_have_organizations_on_insert", "usage_events"),
    ("billing_usage_events_have_organizations_on_update", "usage_events"),
    ("billing_organizations_keep_their_rows", "organizations"),
    ("billing_ledger_transactions_append_only", "ledger_transactions"),
    ("billing_ledger_postings_append_only", "ledger_postings"),
    ("billing_transactions_keep_their_postings", "ledger_transactions"),
)
_FUNCTIONS = ("billing_postings_have_transactions", "billing_rows_have_organizations",
              "billing_organizations_keep_their_rows", "billing_ledger_is_append_only",
              "billing_transactions_keep_their_postings")


def _fk_name(table: str, column: str, referred: str) -> str:
    return f"fk_{table}_{column}_{referred}"


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for table, column, referred, _, _ in _REPLACED:
        op.drop_constraint(_fk_name(table, column, referred), table, type_="foreignkey")
    context = op.get_context()
    schema = "" if context.as_sql else str(op.get_bind().execute(sa.text("SELECT current_schema()")).scalar_one())
    for statement in _statements('"' + schema.replace('"', '""') + '".' if schema else ""):
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for trigger, table in _TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    for function in _FUNCTIONS:
        op.execute(f"DROP FUNCTION {function}()")
    for table, column, referred, referred_column, ondelete in _REPLACED:
        op.create_foreign_key(_fk_name(table, column, referred), table, referred, [column], [referred_column],
                              ondelete=ondelete)
