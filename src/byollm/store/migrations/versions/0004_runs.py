"""Cloud runs: the run queue and run events.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _uid() -> sa.String:
    return sa.String(22)


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("uid", _uid(), nullable=False),
        sa.Column("team_uid", _uid(), nullable=False),
        sa.Column("started_by_type", sa.String(16), nullable=False),
        sa.Column("started_by_uid", _uid(), nullable=False),
        sa.Column("agent_uid", _uid(), nullable=True),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("tools", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_detail", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.Column("max_turns", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", _ts(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("compute_seconds", sa.Integer(), nullable=False),
        sa.Column("event_seq", sa.Integer(), nullable=False),
        sa.Column("steered_seq", sa.Integer(), nullable=False),
        sa.Column("transcript", sa.JSON(), nullable=True),
        sa.Column("transcript_purged_at", _ts(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("started_at", _ts(), nullable=True),
        sa.Column("finished_at", _ts(), nullable=True),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="ck_runs_state"
        ),
        sa.CheckConstraint("actor_kind IN ('user_run', 'agent_run')", name="ck_runs_actor_kind"),
        sa.CheckConstraint("started_by_type IN ('user', 'agent')", name="ck_runs_started_by_type"),
        sa.PrimaryKeyConstraint("uid", name="pk_runs"),
    )
    op.create_index("ix_runs_state_created_at", "runs", ["state", "created_at"])
    op.create_index("ix_runs_team_uid_created_at", "runs", ["team_uid", "created_at"])
    op.create_table(
        "run_events",
        sa.Column("run_uid", _uid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("run_uid", "seq", name="pk_run_events"),
    )


def downgrade() -> None:
    op.drop_table("run_events")
    op.drop_index("ix_runs_team_uid_created_at", table_name="runs")
    op.drop_index("ix_runs_state_created_at", table_name="runs")
    op.drop_table("runs")
