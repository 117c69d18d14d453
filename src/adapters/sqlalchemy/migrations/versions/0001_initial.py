"""The initial schema: every table of billing-core.

Revision ID: 0001
Revises:
Create Date: 2026-03-14

A frozen snapshot: it spells its types out instead of importing ``adapters.sqlalchemy.tables``, so
later changes to the tables cannot rewrite history. Times are ``timestamptz`` on PostgreSQL (the
adapter"s ``UtcDateTime`` renders as ``DATETIME`` text on SQLite); money is ``BIGINT``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
SEQUENCE64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _pk(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*columns, name=op.f(f"pk_{table}"))


def _unique(table: str, *columns: str) -> sa.UniqueConstraint:
    return sa.UniqueConstraint(*columns, name=op.f(f"uq_{table}_{'_'.join(columns)}"))


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                   name=op.f(f"fk_{table}_organization_id_organizations"))


def _index(name: str, table: str, columns: list[str], *, unique: bool = False, where: str | None = None) -> None:
    partial: dict[str, Any] = {}
    if where is not None:
        partial = {"postgresql_where": sa.text(where), "sqlite_where": sa.text(where)}
    op.create_index(op.f(name), table, columns, unique=unique, **partial)


def upgrade() -> None:
    op.create_table("idempotency_responses",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        _pk("idempotency_responses", "scope", "key")
    )
    op.create_table("inbox_events",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("received_at", UTC_DATETIME, nullable=False),
        _pk("inbox_events", "source", "event_id")
    )
    op.create_table("invoice_counters",
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("last_number", sa.BigInteger(), nullable=False),
        _pk("invoice_counters", "prefix")
    )
    op.create_table("organizations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("currency_iso", sa.String(length=3), nullable=False),
        sa.Column("provider_customer_id", sa.Text(), nullable=True),
        sa.Column("webhook_secret", sa.Text(), nullable=True),
        _pk("organizations", "id")
    )
    _index("ix_organizations_provider_customer_id", "organizations", ["provider_customer_id"])
    op.create_table("api_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("scopes", sa.Text(), nullable=False, comment="JSON list of permissions"),
        sa.Column("expires_at", UTC_DATETIME, nullable=True),
        sa.Column("revoked_at", UTC_DATETIME, nullable=True),
        _org_fk("api_tokens"),
        _pk("api_tokens", "id"),
        _unique("api_tokens", "token_hash")
    )
    _index("ix_api_tokens_organization_id", "api_tokens", ["organization_id"])
    op.create_table("billing_settings",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("address", sa.Text(), nullable=True, comment="JSON invoice address"),
        sa.Column("billing_email", sa.Text(), nullable=True),
        sa.Column("auto_recharge_enabled", sa.Boolean(), nullable=False),
        sa.Column("auto_recharge_threshold_micros", sa.BigInteger(), nullable=False),
        sa.Column("auto_recharge_amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("auto_recharge_payment_method_id", sa.Uuid(), nullable=True),
        sa.Column("auto_recharge_consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("auto_recharge_paused_at", UTC_DATETIME, nullable=True),
        sa.Column("spend_enabled", sa.Boolean(), nullable=False),
        sa.Column("spend_daily_budget_micros", sa.BigInteger(), nullable=True),
        sa.Column("spend_daily_email_threshold_micros", sa.BigInteger(), nullable=True),
        sa.Column("spend_monthly_cap_micros", sa.BigInteger(), nullable=True),
        sa.Column("spend_webhook_url", sa.Text(), nullable=True),
        sa.Column("low_balance_enabled", sa.Boolean(), nullable=False),
        sa.Column("low_balance_threshold_micros", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        _org_fk("billing_settings"),
        _pk("billing_settings", "organization_id")
    )
    op.create_table("checkout_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=True),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("trial", sa.Boolean(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("client_secret", sa.Text(), nullable=False),
        sa.Column("return_url", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("provider_session_id", sa.Text(), nullable=True),
        sa.Column("guest_email", sa.Text(), nullable=True),
        sa.Column("guest_email_key", sa.Text(), nullable=True, comment="casefolded guest email"),
        sa.Column("completed_at", UTC_DATETIME, nullable=True),
        sa.Column("claimed_at", UTC_DATETIME, nullable=True),
        sa.Column("subscription_id", sa.Uuid(), nullable=True),
        sa.Column("provider_subscription_id", sa.Text(), nullable=True),
        _org_fk("checkout_sessions"),
        _pk("checkout_sessions", "id")
    )
    _index("ix_checkout_sessions_guest_email_key", "checkout_sessions", ["guest_email_key"])
    _index("ix_checkout_sessions_provider_session_id", "checkout_sessions", ["provider_session_id"])
    op.create_table("invoices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("period_start", UTC_DATETIME, nullable=False),
        sa.Column("period_end", UTC_DATETIME, nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("currency_iso", sa.String(length=3), nullable=False),
        sa.Column("items", sa.Text(), nullable=False, comment="JSON list of invoice items"),
        sa.Column("usage_micros", sa.BigInteger(), nullable=False),
        sa.Column("subtotal_cents", sa.BigInteger(), nullable=False),
        sa.Column("credit_applied_cents", sa.BigInteger(), nullable=False),
        sa.Column("tax_treatment", sa.Text(), nullable=False),
        sa.Column("tax_rate_basis_points", sa.Integer(), nullable=False),
        sa.Column("tax_cents", sa.BigInteger(), nullable=False),
        sa.Column("tax_note", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("number", sa.Text(), nullable=True),
        sa.Column("finalized_at", UTC_DATETIME, nullable=True),
        sa.Column("due_at", UTC_DATETIME, nullable=True),
        sa.Column("paid_at", UTC_DATETIME, nullable=True),
        sa.Column("voided_at", UTC_DATETIME, nullable=True),
        sa.Column("hosted_invoice_url", sa.Text(), nullable=True),
        sa.Column("legal_document_id", sa.Text(), nullable=True),
        sa.Column("includes_earlier_usage", sa.Boolean(), nullable=False),
        _org_fk("invoices"),
        _pk("invoices", "id"),
        _unique("invoices", "number"),
        _unique("invoices", "organization_id", "period_start")
    )
    op.create_table("ledger_transactions",
        sa.Column("seq", SEQUENCE64, autoincrement=True, nullable=False, comment="append order"),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("reference", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("wallet_balance_after", sa.BigInteger(), nullable=False),
        _org_fk("ledger_transactions"),
        _pk("ledger_transactions", "seq"),
        _unique("ledger_transactions", "id"),
        _unique("ledger_transactions", "organization_id", "idempotency_key")
    )
    _index("ix_ledger_transactions_organization_id_seq", "ledger_transactions", ["organization_id", "seq"])
    op.create_table("memberships",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("email_key", sa.Text(), nullable=False, comment="casefolded email for lookups"),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("email_verified", sa.Boolean(), nullable=False),
        _org_fk("memberships"),
        _pk("memberships", "organization_id", "user_id")
    )
    _index("ix_memberships_email_key", "memberships", ["email_key"])
    op.create_table("outbox_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False, comment="JSON object"),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("dedupe_key", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_DATETIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", UTC_DATETIME, nullable=True),
        _org_fk("outbox_messages"),
        _pk("outbox_messages", "id"),
        _unique("outbox_messages", "dedupe_key")
    )
    _index("ix_outbox_messages_organization_id_created_at", "outbox_messages", ["organization_id", "created_at"])
    _index("ix_outbox_messages_pending", "outbox_messages", ["created_at", "id"], where="status = 'pending'")
    op.create_table("payment_methods",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("provider_payment_method_id", sa.Text(), nullable=False),
        sa.Column("payment_type", sa.Text(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("brand", sa.Text(), nullable=True),
        sa.Column("last4", sa.Text(), nullable=True),
        sa.Column("exp_month", sa.Integer(), nullable=True),
        sa.Column("exp_year", sa.Integer(), nullable=True),
        sa.Column("iban_last4", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=True),
        _org_fk("payment_methods"),
        _pk("payment_methods", "id"),
        _unique("payment_methods", "organization_id", "provider_payment_method_id")
    )
    op.create_table("payments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency_iso", sa.String(length=3), nullable=False),
        sa.Column("credits_micros", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("payment_type", sa.Text(), nullable=False),
        sa.Column("payment_method_id", sa.Uuid(), nullable=True),
        sa.Column("provider_payment_id", sa.Text(), nullable=True),
        sa.Column("client_secret", sa.Text(), nullable=True),
        sa.Column("invoice_id", sa.Uuid(), nullable=True),
        sa.Column("failure_message", sa.Text(), nullable=True),
        sa.Column("settled_at", UTC_DATETIME, nullable=True),
        sa.Column("refunded_cents", sa.BigInteger(), nullable=False),
        _org_fk("payments"),
        _pk("payments", "id")
    )
    _index("ix_payments_organization_id_created_at", "payments", ["organization_id", "created_at"])
    _index("ix_payments_provider_payment_id", "payments", ["provider_payment_id"])
    op.create_table("plan_subscriptions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("current_period_start", UTC_DATETIME, nullable=False),
        sa.Column("current_period_end", UTC_DATETIME, nullable=False),
        sa.Column("trial_end", UTC_DATETIME, nullable=True),
        sa.Column("past_due_since", UTC_DATETIME, nullable=True),
        sa.Column("canceled_at", UTC_DATETIME, nullable=True),
        sa.Column("provider_subscription_id", sa.Text(), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        _org_fk("plan_subscriptions"),
        _pk("plan_subscriptions", "id")
    )
    _index("ix_plan_subscriptions_organization_id_created_at", "plan_subscriptions", ["organization_id", "created_at"])
    _index("ix_plan_subscriptions_provider_subscription_id", "plan_subscriptions", ["provider_subscription_id"])
    op.create_table("product_subscriptions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("start_date", UTC_DATETIME, nullable=False),
        sa.Column("end_date", UTC_DATETIME, nullable=True),
        _org_fk("product_subscriptions"),
        _pk("product_subscriptions", "id")
    )
    _index("ix_product_subscriptions_organization_id_product_id", "product_subscriptions",
           ["organization_id", "product_id"])
    op.create_table("refund_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("decision_status", sa.Text(), nullable=False),
        sa.Column("decision_amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("decision_credits_micros", sa.BigInteger(), nullable=False),
        sa.Column("decision_denial", sa.Text(), nullable=True),
        sa.Column("decision_message", sa.Text(), nullable=False),
        sa.Column("decision_expected_by", UTC_DATETIME, nullable=True),
        sa.Column("provider_refund_id", sa.Text(), nullable=True),
        _org_fk("refund_requests"),
        _pk("refund_requests", "id")
    )
    _index("ix_refund_requests_organization_id_created_at", "refund_requests", ["organization_id", "created_at"])
    op.create_table("tax_registrations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("country", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("verified_at", UTC_DATETIME, nullable=True),
        _org_fk("tax_registrations"),
        _pk("tax_registrations", "id"),
        _unique("tax_registrations", "organization_id", "country", "value")
    )
    op.create_table("usage_buckets",
        sa.Column("id", SEQUENCE64, autoincrement=True, nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("project_key", sa.Uuid(), nullable=False, comment="project_id, or the nil UUID for org-level usage"),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("hour", UTC_DATETIME, nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("invoice_id", sa.Uuid(), nullable=True),
        _org_fk("usage_buckets"),
        _pk("usage_buckets", "id")
    )
    _index("ix_usage_buckets_organization_id_hour", "usage_buckets", ["organization_id", "hour"])
    # One open (uninvoiced) bucket per organization, project (nil UUID for none), product and hour.
    _index("uq_usage_buckets_open", "usage_buckets", ["organization_id", "project_key", "product_id", "hour"],
           unique=True, where="invoice_id IS NULL")
    op.create_table("usage_events",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", UTC_DATETIME, nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("unit_price_micros", sa.BigInteger(), nullable=False),
        _org_fk("usage_events"),
        _pk("usage_events", "organization_id", "event_id")
    )
    op.create_table("wallets",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("wallet_micros", sa.BigInteger(), nullable=False),
        sa.Column("unbilled_micros", sa.BigInteger(), nullable=False),
        sa.Column("credit_line_micros", sa.BigInteger(), nullable=False),
        sa.Column("minimum_production_credit_micros", sa.BigInteger(), nullable=False),
        sa.Column("daily_budget_micros", sa.BigInteger(), nullable=True),
        sa.Column("monthly_cap_micros", sa.BigInteger(), nullable=True),
        sa.Column("gate_status", sa.Text(), nullable=True),
        sa.Column("gate_past_due_since", UTC_DATETIME, nullable=True),
        sa.Column("gate_grace_days", sa.Integer(), nullable=False),
        sa.Column("spend_day", sa.Date(), nullable=True),
        sa.Column("spent_today_micros", sa.BigInteger(), nullable=False),
        sa.Column("spent_yesterday_micros", sa.BigInteger(), nullable=False),
        sa.Column("spend_month", sa.String(length=7), nullable=True),
        sa.Column("spent_month_micros", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        _org_fk("wallets"),
        _pk("wallets", "organization_id")
    )
    op.create_table("ledger_postings",
        sa.Column("transaction_seq", SEQUENCE64, nullable=False),
        sa.Column("line_no", sa.SmallInteger(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("account", sa.Text(), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_micros <> 0", name=op.f("ck_ledger_postings_nonzero_amount")),
        sa.ForeignKeyConstraint(["transaction_seq"], ["ledger_transactions.seq"], ondelete="CASCADE",
                                name=op.f("fk_ledger_postings_transaction_seq_ledger_transactions")),
        _pk("ledger_postings", "transaction_seq", "line_no")
    )
    _index("ix_ledger_postings_organization_id_account", "ledger_postings", ["organization_id", "account"])


def downgrade() -> None:
    op.drop_table("ledger_postings")
    op.drop_table("wallets")
    op.drop_table("usage_events")
    op.drop_table("usage_buckets")
    op.drop_table("tax_registrations")
    op.drop_table("refund_requests")
    op.drop_table("product_subscriptions")
    op.drop_table("plan_subscriptions")
    op.drop_table("payments")
    op.drop_table("payment_methods")
    op.drop_table("outbox_messages")
    op.drop_table("memberships")
    op.drop_table("ledger_transactions")
    op.drop_table("invoices")
    op.drop_table("checkout_sessions")
    op.drop_table("billing_settings")
    op.drop_table("api_tokens")
    op.drop_table("organizations")
    op.drop_table("invoice_counters")
    op.drop_table("inbox_events")
    op.drop_table("idempotency_responses")
