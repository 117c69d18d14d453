"""The schema as SQLAlchemy Core tables on one :data:`metadata`.

No ORM: rows are mapped to the core's msgspec structs by hand in :mod:`adapters.sqlalchemy.rows`.
Money and counters are ``BIGINT``; times are :class:`~adapters.sqlalchemy.types.UtcDateTime`;
ids are ``Uuid``; structured values with no query need (invoice items, an address, an outbox
payload) are msgspec-encoded JSON text. Every organization-owned table carries ``organization_id``
with a foreign key, so no row exists without its organization. On PostgreSQL the three references
the usage path writes a thousand times per batch (a ledger transaction's and a usage event's
organization, a posting's transaction) are checked once per statement by triggers instead
(:data:`ROW_CHECKED_ON_SQLITE_ONLY`, migration ``0015``, ADR 0019).

The migrations in ``migrations/versions`` create exactly this schema; a test compares the two.
"""

from __future__ import annotations

import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    text,
)

from adapters.sqlalchemy.types import Sequence64, UtcDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

NIL_UUID = uuid.UUID(int=0)
"""``usage_buckets.project_key`` for organization-level usage (``project_id IS NULL``), so the
unique index over open buckets treats "no project" as one value."""


def _org_fk(nullable: bool = False) -> Column[uuid.UUID]:
    return Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=nullable)


ROW_CHECKED_ON_SQLITE_ONLY = "sqlite"
"""The dialect whose database enforces the hot path's references as declared foreign keys. On
PostgreSQL a foreign key is a trigger per inserted row (an index probe and a row lock on the
referenced row: 40 % of a 1,000-event batch's statement); there migration ``0015`` replaces
them with one check per statement over the inserted rows, and makes the ledger append-only so a
checked reference cannot be removed (ADR 0019)."""


def _sqlite_fk(column: str, referred: str, ondelete: str | None = None) -> ForeignKeyConstraint:
    """A foreign key that PostgreSQL checks per statement instead (:data:`ROW_CHECKED_ON_SQLITE_ONLY`)."""
    return ForeignKeyConstraint([column], [referred], ondelete=ondelete).ddl_if(dialect=ROW_CHECKED_ON_SQLITE_ONLY)


organizations = Table(
    "organizations", metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("currency_iso", String(3), nullable=False),
    Column("provider_customer_id", Text, nullable=True, index=True, unique=True),
    Column("webhook_secret", Text, nullable=True),
)

memberships = Table(
    "memberships", metadata,
    Column("organization_id", Uuid, ForeignKey("organizations.id"), primary_key=True),
    Column("user_id", Text, primary_key=True),
    Column("email", Text, nullable=False),
    Column("email_key", Text, nullable=False, index=True, comment="casefolded email for lookups"),
    Column("role", Text, nullable=False),
    Column("email_verified", Boolean, nullable=False),
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Uuid, primary_key=True),
    _org_fk(),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("user_id", Text, nullable=True),
    Column("scopes", Text, nullable=False, comment="JSON list of permissions"),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    Index("ix_api_tokens_organization_id", "organization_id"),
)

wallets = Table(
    "wallets", metadata,
    Column("organization_id", Uuid, ForeignKey("organizations.id"), primary_key=True),
    Column("wallet_micros", BigInteger, nullable=False),
    Column("unbilled_micros", BigInteger, nullable=False),
    Column("credit_line_micros", BigInteger, nullable=False),
    Column("minimum_production_credit_micros", BigInteger, nullable=False),
    Column("daily_budget_micros", BigInteger, nullable=True),
    Column("monthly_cap_micros", BigInteger, nullable=True),
    Column("gate_status", Text, nullable=True),
    Column("gate_past_due_since", UtcDateTime, nullable=True),
    Column("gate_grace_days", Integer, nullable=False),
    Column("spend_day", Date, nullable=True),
    Column("spent_today_micros", BigInteger, nullable=False),
    Column("spent_yesterday_micros", BigInteger, nullable=False),
    Column("spend_month", String(7), nullable=True),
    Column("spent_month_micros", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("spent_previous_month_micros", BigInteger, nullable=False),
    Column("held_micros", BigInteger, nullable=False, server_default="0",
           comment="sum of the active holds' amounts (ADR 0011)"),
    Column("scoped_budgets", Integer, nullable=False, server_default="0",
           comment="how many spend_budgets rows the organization has (ADR 0017)"),
    CheckConstraint("held_micros >= 0", name="held_micros_not_negative"),
    CheckConstraint("scoped_budgets >= 0", name="scoped_budgets_not_negative"),
)

spend_budgets = Table(
    "spend_budgets", metadata,
    Column("organization_id", Uuid, ForeignKey("organizations.id"), primary_key=True),
    Column("scope", Text, primary_key=True, comment="project or token (ADR 0017)"),
    Column("scope_id", Uuid, primary_key=True),
    Column("daily_micros", BigInteger, nullable=True),
    Column("monthly_micros", BigInteger, nullable=True),
    Column("spend_day", Date, nullable=True),
    Column("spent_today_micros", BigInteger, nullable=False),
    Column("spent_yesterday_micros", BigInteger, nullable=False),
    Column("spend_month", String(7), nullable=True),
    Column("spent_month_micros", BigInteger, nullable=False),
    Column("spent_previous_month_micros", BigInteger, nullable=False),
    Column("held_micros", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    CheckConstraint("scope IN ('project', 'token')", name="budget_scope_known"),
    CheckConstraint("held_micros >= 0", name="budget_held_not_negative"),
)

holds = Table(
    "holds", metadata,
    Column("id", Uuid, primary_key=True),
    _org_fk(),
    Column("product_id", Uuid, nullable=False),
    Column("project_id", Uuid, nullable=True),
    Column("token_id", Uuid, nullable=True),
    Column("max_quantity", BigInteger, nullable=True),
    Column("amount_micros", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("status", Text, nullable=False),
    Column("closed_at", UtcDateTime, nullable=True),
    Column("event_id", Text, nullable=True),
    Column("settled_quantity", BigInteger, nullable=True),
    Column("charged_micros", BigInteger, nullable=False),
    Column("uncharged_micros", BigInteger, nullable=False),
    Column("overrun", Text, nullable=True),
    Column("overrun_denial", Text, nullable=True),
    CheckConstraint("amount_micros > 0", name="hold_amount_positive"),
    CheckConstraint("charged_micros >= 0", name="hold_charge_not_negative"),
    Index("ix_holds_organization_id_status", "organization_id", "status"),
    Index("ix_holds_active_expiry", "expires_at", sqlite_where=text("status = 'active'"),
          postgresql_where=text("status = 'active'")),
)

grants = Table(
    "grants", metadata,
    Column("id", Uuid, primary_key=True),
    _org_fk(),
    Column("source", Text, nullable=False),
    Column("amount_micros", BigInteger, nullable=False),
    Column("remaining_micros", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("priority", Integer, nullable=False),
    Column("created_by", Uuid, nullable=True, comment="the ledger transaction that created the grant"),
    Column("reference", Text, nullable=True),
    Column("expired_by", Uuid, nullable=True, comment="the grant_expiry transaction that took its remaining"),
    CheckConstraint("amount_micros > 0", name="grant_amount_positive"),
    CheckConstraint("remaining_micros >= 0 AND remaining_micros <= amount_micros", name="grant_remaining_in_range"),
    Index("ix_grants_organization_id_created_at", "organization_id", "created_at"),
    Index("ix_grants_open_expiry", "expires_at",
          sqlite_where=text("expired_by IS NULL AND remaining_micros > 0 AND expires_at IS NOT NULL"),
          postgresql_where=text("expired_by IS NULL AND remaining_micros > 0 AND expires_at IS NOT NULL")),
)
"""Credit grants, the projection of the ledger (ADR 0016)."""

grant_movements = Table(
    "grant_movements", metadata,
    Column("seq", Sequence64, primary_key=True, autoincrement=True, comment="allocation order"),
    _org_fk(),
    Column("transaction_id", Uuid, nullable=False, comment="the (first) transaction the span covers"),
    Column("grant_id", Uuid, nullable=True, comment="NULL: the credit line (usage no grant paid)"),
    Column("amount_micros", BigInteger, nullable=False),
    Column("first_sequence", BigInteger, nullable=False, comment="ledger_transactions.seq the span starts at"),
    Column("last_sequence", BigInteger, nullable=False,
           comment="where it ends: greater for a run of draws from one grant"),
    CheckConstraint("first_sequence <= last_sequence", name="grant_movement_span_in_order"),
    Index("ix_grant_movements_organization_id_last_sequence", "organization_id", "last_sequence"),
)
"""Movements as :class:`billing_core.grants.MovementSpan` rows: a transaction's own, or one row for a
run of consecutive single-grant draws (ADR 0016)."""

grant_cursors = Table(
    "grant_cursors", metadata,
    Column("organization_id", Uuid, ForeignKey("organizations.id"), primary_key=True),
    Column("sequence", BigInteger, nullable=False, comment="last allocated ledger_transactions.seq"),
    Column("uncovered_micros", BigInteger, nullable=False),
    CheckConstraint("uncovered_micros >= 0", name="grant_uncovered_not_negative"),
)

grant_terms = Table(
    "grant_terms", metadata,
    Column("organization_id", Uuid, ForeignKey("organizations.id"), primary_key=True),
    Column("idempotency_key", Text, primary_key=True, comment="the crediting ledger transaction's key"),
    Column("source", Text, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("priority", Integer, nullable=False),
)

ledger_transactions = Table(
    "ledger_transactions", metadata,
    Column("seq", Sequence64, primary_key=True, autoincrement=True, comment="append order"),
    Column("id", Uuid, nullable=False, unique=True),
    Column("organization_id", Uuid, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("reason", Text, nullable=True),
    Column("reference", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("wallet_balance_after", BigInteger, nullable=False),
    UniqueConstraint("organization_id", "idempotency_key"),
    Index("ix_ledger_transactions_organization_id_seq", "organization_id", "seq"),
    _sqlite_fk("organization_id", "organizations.id"),
)

ledger_postings = Table(
    "ledger_postings", metadata,
    Column("transaction_seq", Sequence64, primary_key=True),
    Column("line_no", SmallInteger, primary_key=True),
    Column("organization_id", Uuid, nullable=False),
    Column("account", Text, nullable=False),
    Column("amount_micros", BigInteger, nullable=False),
    CheckConstraint("amount_micros <> 0", name="nonzero_amount"),
    Index("ix_ledger_postings_organization_id_account", "organization_id", "account"),
    _sqlite_fk("transaction_seq", "ledger_transactions.seq", ondelete="CASCADE"),
)

plan_subscriptions = Table(
    "plan_subscriptions", metadata,
    Column("id", Uuid, primary_key=True),
    _org_fk(),
    Column("plan", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("current_period_start", UtcDateTime, nullable=False),
    Column("current_period_end", UtcDateTime, nullable=False),
    Column("trial_end", UtcDateTime, nullable=True),
    Column("past_due_since", UtcDateTime, nullable=True),
    Column("canceled_at", UtcDateTime, nullable=True),
    # One plan subscription per provider subscription (ADR 0009); NULLs (none yet) are not equal.
    Column("provider_subscription_id", Text, nullable=True, index=True, unique=True),
    Column("version", BigInteger, nullable=False),
    Column("provider_state_at", UtcDateTime, nullable=True),
    Column("cancel_at_period_end", Boolean, nullable=False, server_default=false()),
    Index("ix_plan_subscriptions_organization_id_created_at", "organization_id", "created_at"),
)

product_subscriptions = Table(
    "product_subscriptions", metadata,
    Column("id", Uuid, primary_key=True),
    _org_fk(),
    Column("project_id", Uuid, nullable=True),
    Column("product_id", Uuid, nullable=False),
    Column("start_date", UtcDateTime, nullable=False),
    Column("end_date", UtcDateTime, nullable=True),
    Index("ix_product_subscriptions_organization_id_product_id", "organization_id", "product_id"),
)

usage_events = Table(
    "usage_events", metadata,
    Column("organization_id", Uuid, primary_key=True),
    Column("event_id", Text, primary_key=True),
    Column("project_id", Uuid, nullable=True),
    Column("product_id", Uuid, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("amount_micros", BigInteger, nullable=False),
    Column("unit_price_micros", BigInteger, nullable=False),
    Column("token_id", Uuid, nullable=True, comment="the API token that reported it (ADR 0017)"),
    _sqlite_fk("organization_id", "organizations.id"),
)

usage_buckets = Table(
    "usage_buckets", metadata,
    Column("id", Sequence64, primary_key=True, autoincrement=True),
    _org_fk(),
    Column("project_id", Uuid, nullable=True),
    Column("project_key", Uuid, nullable=False, comment="project_id, or the nil UUID for org-level usage"),
    Column("product_id", Uuid, nullable=False),
    Column("hour", UtcDateTime, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("amount_micros", BigInteger, nullable=False),
    Column("invoice_id", Uuid, nullable=True),
    Index("ix_usage_buckets_organization_id_hour", "organization_id", "hour"),
)
# One open (uninvoiced) bucket per organization, project, product and hour; invoiced buckets are
# frozen, so late usage for an invoiced hour opens a new open bucket beside them.
OPEN_BUCKET_KEY = ("organization_id", "project_key", "product_id", "hour")
open_bucket_where = usage_buckets.c.invoice_id.is_(None)
Index("uq_usage_buckets_open", *(usage_buckets.c[name] for name in OPEN_BUCKET_KEY), unique=True,
      postgresql_where=open_bucket_where, sqlite_where=open_bucket_where)

invoices = Table(
    "invoices", metadata,
    Column("id", Uuid, primary_key=True),
    _org_fk(),
    Column("period_start", UtcDateTime, nullable=False),
    Column("period_end", UtcDateTime, nullable=False),
    Column("status", Text, nullable=False),
    Column("currency_iso", String(3), nullable=False),
    Column("items", Text, nullable=False, comment="JSON list of invoice items"),
    Column("usage_micros", BigInteger, nullable=False),
    Column("subtotal_cents", BigInteger, nullable=False),
    Column("credit_applied_cents", BigInteger, nullable=False),
    Column("tax_treatment", Text, nullable=False),
    Column("tax_rate_basis_points", Integer, nullable=False),
    Column("tax_cents", BigInteger, nullable=False),
    Column("tax_note", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("number", Text, nullable=True, unique=True),
    Column("finalized_at", UtcDateTime, nullable=True),
    Column("due_at", UtcDateTime, nullable=True),
    Column("paid_at", UtcDateTime, nullable=True),
    Column("voided_at", UtcDateTime, nullable=True),
    Column("hosted_invoice_url", Text, nullable=True),
    Column("legal_document_id", Text, nullable=True),
    Column("includes_earlier_usage", Boolean, nullable=False),
    UniqueConstraint("organization_id", "period_start"),
)

issued_einvoices = Table(
    "issued_einvoices", metadata,
    Column("invoice_id", Uuid, ForeignKey("invoices.id"), primary_key=True),
    _org_fk(),
    Column("terms", Text, nullable=False, comment="JSON: the EN 16931 terms as the legal invoice was issued"),
)

invoice_counters = Table(
    "invoice_counters", metadata,
    Column("prefix", Text, primary_key=True),
    Column("last_number", BigInteger, nullable=False),
)

payment_methods = Table(
    "payment_methods", metadata,
    Column("id", Uuid, primary_key=True),
    _org_fk(),
    Column("provider_payment_method_id", Text, nullable=False),
    Column("payment_type", Text, nullable=False),
    Column("is_default", Boolean, nullable=False),
    Column("brand", Text, nullable=True),
    Column("last4", Text, nullable=True),
    Column("exp_month", Integer, nullable=True),
    Column("exp_year", Integer, nullable=True),
    Column("iban_last4", Text, nullable=True),
    Column("name", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=True),
    UniqueConstraint("organization_id", "provider_payment_method_id"),
)
# One default payment method per organization (ADR 0009): a missed lock cannot leave two.
default_method_where = payment_methods.c.is_default.is_(True)
Index("uq_payment_methods_default", payment_methods.c.organization_id, unique=True,
      postgresql_where=default_method_where, sqlite_where=default_method_where)

billing_settings = Table(
    "billing_settings", metadata,
    Column("organization_id", Uuid, ForeignKey("organizations.id"), primary_key=True),
    Column("address", Text, nullable=True, comment="JSON invoice address"),
    Column("billing_email", Text, nullable=True),
    Column("auto_recharge_enabled", Boolean, nullable=False),
    Column("auto_recharge_threshold_micros", BigInteger, nullable=False),
    Column("auto_recharge_amount_micros", BigInteger, nullable=False),
    Column("auto_recharge_payment_method_id", Uuid, nullable=True),
    Column("auto_recharge_consecutive_failures", Integer, nullable=False),
    Column("auto_recharge_paused_at", UtcDateTime, nullable=True),
    Column("spend_enabled", Boolean, nullable=False),
    Column("spend_daily_budget_micros", BigInteger, nullable=True),
    Column("spend_daily_email_threshold_micros", BigInteger, nullable=True),
    Column("spend_monthly_cap_micros", BigInteger, nullable=True),
    Column("spend_webhook_url", Text, nullable=True),
    Column("low_balance_enabled", Boolean, nullable=False),
    Column("low_balance_threshold_micros", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("hold_overrun", Text, nullable=False, server_default="cap_at_hold"),
)

tax_registrations = Table(
    "tax_registrations", metadata,
    Column("id", Uuid, primary_key=True),
    _org_fk(),
    Column("country", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("value", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("verified_at", UtcDateTime, nullable=True),
    UniqueConstraint("organization_id", "country", "value"),
)

payments = Table(
    "payments", metadata,
    Column("id", Uuid, primary_key=True),
    _org_fk(),
    Column("purpose", Text, nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency_iso", String(3), nullable=False),
    Column("credits_micros", BigInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("payment_type", Text, nullable=False),
    Column("payment_method_id", Uuid, nullable=True),
    Column("provider_payment_id", Text, nullable=True, index=True),
    Column("client_secret", Text, nullable=True),
    Column("invoice_id", Uuid, nullable=True),
    Column("failure_message", Text, nullable=True),
    Column("settled_at", UtcDateTime, nullable=True),
    Column("refunded_cents", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    # Refunded never exceeds paid (ADR 0009), whatever a caller forgot to lock.
    CheckConstraint("refunded_cents >= 0 AND refunded_cents <= amount_cents", name="refunded_within_amount"),
    Index("ix_payments_organization_id_created_at", "organization_id", "created_at"),
)

refund_requests = Table(
    "refund_requests", metadata,
    Column("id", Uuid, primary_key=True),
    _org_fk(),
    Column("payment_id", Uuid, nullable=False),
    Column("requested_by", Text, nullable=False),
    Column("reason", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("decision_status", Text, nullable=False),
    Column("decision_amount_cents", BigInteger, nullable=False),
    Column("decision_credits_micros", BigInteger, nullable=False),
    Column("decision_denial", Text, nullable=True),
    Column("decision_message", Text, nullable=False),
    Column("decision_expected_by", UtcDateTime, nullable=True),
    Column("provider_refund_id", Text, nullable=True),
    Column("status", Text, nullable=False),
    Column("failure_message", Text, nullable=True),
    Column("completed_at", UtcDateTime, nullable=True),
    Index("ix_refund_requests_organization_id_created_at", "organization_id", "created_at"),
    Index("ix_refund_requests_payment_id", "payment_id"),
)

plan_changes = Table(
    "plan_changes", metadata,
    Column("id", Uuid, primary_key=True),
    _org_fk(),
    Column("subscription_id", Uuid, ForeignKey("plan_subscriptions.id"), nullable=False),
    Column("subscription_version", BigInteger, nullable=False),
    Column("from_plan", Text, nullable=False),
    Column("to_plan", Text, nullable=False),
    Column("preview_at", UtcDateTime, nullable=False),
    Column("period_end", UtcDateTime, nullable=False),
    Column("unused_credit_cents", BigInteger, nullable=False),
    Column("new_plan_charge_cents", BigInteger, nullable=False),
    Column("amount_due_cents", BigInteger, nullable=False),
    Column("currency_iso", String(3), nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("provider_invoice_id", Text, nullable=True),
    Column("hosted_invoice_url", Text, nullable=True),
    Column("invoice_status", Text, nullable=True),
    Column("completed_at", UtcDateTime, nullable=True),
    # One plan change, so one plan-change invoice, per subscription version (ADR 0009).
    UniqueConstraint("subscription_id", "subscription_version"),
    CheckConstraint("amount_due_cents >= 0", name="amount_due_not_negative"),
    Index("ix_plan_changes_organization_id_created_at", "organization_id", "created_at"),
)

checkout_sessions = Table(
    "checkout_sessions", metadata,
    Column("id", Uuid, primary_key=True),
    _org_fk(nullable=True),
    Column("plan", Text, nullable=False),
    Column("trial", Boolean, nullable=False),
    Column("status", Text, nullable=False),
    Column("client_secret", Text, nullable=False),
    Column("return_url", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("provider_session_id", Text, nullable=True, index=True),
    Column("guest_email", Text, nullable=True),
    Column("guest_email_key", Text, nullable=True, index=True, comment="casefolded guest email"),
    Column("completed_at", UtcDateTime, nullable=True),
    Column("claimed_at", UtcDateTime, nullable=True),
    Column("subscription_id", Uuid, nullable=True),
    Column("provider_subscription_id", Text, nullable=True),
)

outbox_messages = Table(
    "outbox_messages", metadata,
    Column("id", Uuid, primary_key=True),
    _org_fk(),
    Column("topic", Text, nullable=False),
    Column("payload", Text, nullable=False, comment="JSON object"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("dedupe_key", Text, nullable=False, unique=True),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("sent_at", UtcDateTime, nullable=True),
)
# Spelled with a literal so that the planner matches queries against the partial index.
pending_outbox = outbox_messages.c.status == text("'pending'")
Index("ix_outbox_messages_pending", outbox_messages.c.created_at, outbox_messages.c.id,
      postgresql_where=pending_outbox, sqlite_where=pending_outbox)
Index("ix_outbox_messages_organization_id_created_at", outbox_messages.c.organization_id,
      outbox_messages.c.created_at)

inbox_events = Table(
    "inbox_events", metadata,
    Column("source", Text, primary_key=True),
    Column("event_id", Text, primary_key=True),
    Column("received_at", UtcDateTime, nullable=False),
)

idempotency_responses = Table(
    "idempotency_responses", metadata,
    Column("scope", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("request_hash", Text, nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

scheduled_jobs = Table(
    "scheduled_jobs", metadata,
    Column("name", Text, primary_key=True),
    Column("completed_period", Text, nullable=True),
    Column("holder", Text, nullable=True),
    Column("lease_until", UtcDateTime, nullable=True),
)
