"""Leases on scheduled jobs (the background worker's period close), one row per job.

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-04

Any number of workers share one database: a worker runs a scheduled job only after claiming its
row with a conditional ``UPDATE`` (not completed for this period, no other live lease), and records
the period when done, so each job runs once per period.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scheduled_jobs",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("completed_period", sa.Text(), nullable=True),
        sa.Column("holder", sa.Text(), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduled_jobs")),
    )


def downgrade() -> None:
    op.drop_table("scheduled_jobs")
