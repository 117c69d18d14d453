"""Refund requests and plan changes become recorded intents; payments are versioned and can never be
refunded above what was paid (ADR 0009).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

* ``payments.version`` (existing payments start at 0): a save of a copy loaded at an older version
  is refused, so concurrent saves no longer overwrite each other's ``refunded_cents``.
* ``ck_payments_refunded_within_amount``: ``0 <= refunded_cents <= amount_cents``. A database that
  already holds a payment refunded above its amount (issue 14) is not silently repaired: the
  upgrade stops and names the payments, which an operator has to reconcile with the provider first.
* ``refund_requests.status`` / ``failure_message`` / ``completed_at``: an approved request is
  recorded PENDING before the provider is asked and completed once. Requests stored before were
  recorded only after the provider had refunded, so approved ones are ``succeeded`` and denied ones
  ``denied``.
* ``plan_changes``: one row per (subscription, version changed from), UNIQUE, so one plan-change
  invoice per subscription version.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    over = [] if op.get_context().as_sql else op.get_bind().execute(sa.text(
        "SELECT id FROM payments WHERE refunded_cents < 0 OR refunded_cents > amount_cents")).scalars().all()
    if over:
        raise RuntimeError("payments refunded outside 0..amount_cents, reconcile them with the provider "
                           f"before upgrading: {', '.join(str(i) for i in over)}")
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("version", sa.BigInteger(), nullable=False, server_default=sa.text("0")))
        batch.create_check_constraint(op.f("ck_payments_refunded_within_amount"),
                                      "refunded_cents >= 0 AND refunded_cents <= amount_cents")
    with op.batch_alter_table("payments") as batch:
        batch.alter_column("version", server_default=None)

    with op.batch_alter_table("refund_requests") as batch:
        batch.add_column(sa.Column("status", sa.Text(), nullable=False, server_default=sa.text("'succeeded'")))
        batch.add_column(sa.Column("failure_message", sa.Text(), nullable=True))
        batch.add_column(sa.Column("completed_at", UTC_DATETIME, nullable=True))
    op.execute("UPDATE refund_requests SET status = 'denied' WHERE decision_status = 'denied'")
    op.execute("UPDATE refund_requests SET completed_at = created_at")
    with op.batch_alter_table("refund_requests") as batch:
        batch.alter_column("status", server_default=None)
    op.create_index(op.f("ix_refund_requests_payment_id"), "refund_requests", ["payment_id"])

    op.create_table(
        "plan_changes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("subscription_version", sa.BigInteger(), nullable=False),
        sa.Column("from_plan", sa.Text(), nullable=False),
        sa.Column("to_plan", sa.Text(), nullable=False),
        sa.Column("preview_at", UTC_DATETIME, nullable=False),
        sa.Column("period_end", UTC_DATETIME, nullable=False),
        sa.Column("unused_credit_cents", sa.BigInteger(), nullable=False),
        sa.Column("new_plan_charge_cents", sa.BigInteger(), nullable=False),
        sa.Column("amount_due_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency_iso", sa.String(length=3), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("provider_invoice_id", sa.Text(), nullable=True),
        sa.Column("hosted_invoice_url", sa.Text(), nullable=True),
        sa.Column("invoice_status", sa.Text(), nullable=True),
        sa.Column("completed_at", UTC_DATETIME, nullable=True),
        sa.CheckConstraint("amount_due_cents >= 0", name=op.f("ck_plan_changes_amount_due_not_negative")),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_plan_changes_organization_id_organizations")),
        sa.ForeignKeyConstraint(["subscription_id"], ["plan_subscriptions.id"],
                                name=op.f("fk_plan_changes_subscription_id_plan_subscriptions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_changes")),
        sa.UniqueConstraint("subscription_id", "subscription_version",
                            name=op.f("uq_plan_changes_subscription_id_subscription_version")),
    )
    op.create_index(op.f("ix_plan_changes_organization_id_created_at"), "plan_changes",
                    ["organization_id", "created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_plan_changes_organization_id_created_at"), table_name="plan_changes")
    op.drop_table("plan_changes")
    op.drop_index(op.f("ix_refund_requests_payment_id"), table_name="refund_requests")
    with op.batch_alter_table("refund_requests") as batch:
        batch.drop_column("completed_at")
        batch.drop_column("failure_message")
        batch.drop_column("status")
    with op.batch_alter_table("payments") as batch:
        batch.drop_constraint(op.f("ck_payments_refunded_within_amount"), type_="check")
        batch.drop_column("version")
