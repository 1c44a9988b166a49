"""Visible fallbacks: team settings for credential-less requests, degraded runs and failure alerts; a run's
degraded outcome; the permissions policy the doctor last validated.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("teams") as batch:
        batch.add_column(sa.Column("credentialless_direct_allowed", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("degraded_runs_fail", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("alert_webhook_url", sa.String(2048), nullable=True))
        batch.add_column(sa.Column("alert_interval_seconds", sa.Integer(), nullable=False, server_default="3600"))
        batch.add_column(sa.Column("validated_permissions", sa.JSON(), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("degraded_code", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("degraded_code")
    with op.batch_alter_table("teams") as batch:
        for name in ("validated_permissions", "alert_interval_seconds", "alert_webhook_url", "degraded_runs_fail",
                     "credentialless_direct_allowed"):
            batch.drop_column(name)
