"""Gateway: the request log and the credit ledger.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _uid() -> sa.String:
    return sa.String(22)


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "request_log",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("team_uid", _uid(), nullable=False),
        sa.Column("principal_type", sa.String(16), nullable=False),
        sa.Column("principal_uid", _uid(), nullable=False),
        sa.Column("token_uid", _uid(), nullable=True),
        sa.Column("run_uid", _uid(), nullable=True),
        sa.Column("api", sa.String(16), nullable=False),
        sa.Column("requested_model", sa.String(200), nullable=False),
        sa.Column("served_model", sa.String(200), nullable=True),
        sa.Column("route", sa.String(2048), nullable=True),
        sa.Column("host", sa.String(32), nullable=True),
        sa.Column("credential", sa.String(32), nullable=True),
        sa.Column("billing", sa.String(32), nullable=True),
        sa.Column("auto_reason", sa.String(1024), nullable=True),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("attempts", sa.JSON(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("credits", sa.Numeric(18, 6), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("overhead_ms", sa.Float(), nullable=False),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("content", sa.JSON(), nullable=True),
        sa.CheckConstraint("api IN ('anthropic', 'openai')", name="ck_request_log_api"),
        sa.CheckConstraint("principal_type IN ('user', 'agent')", name="ck_request_log_principal_type"),
        sa.CheckConstraint(
            "credential IS NULL OR credential IN ('delegated_session', 'web_identity', 'operator_key', 'byok')",
            name="ck_request_log_credential",
        ),
        sa.CheckConstraint(
            "billing IS NULL OR billing IN ('customer_cloud', 'ai_credits', 'user_key')",
            name="ck_request_log_billing",
        ),
        sa.PrimaryKeyConstraint("request_id", name="pk_request_log"),
    )
    op.create_index("ix_request_log_team_uid_started_at", "request_log", ["team_uid", "started_at"])
    op.create_index("ix_request_log_principal_uid_started_at", "request_log", ["principal_uid", "started_at"])
    op.create_table(
        "credit_ledger",
        sa.Column("attempt_id", sa.String(64), nullable=False),
        sa.Column("team_uid", _uid(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("principal_uid", _uid(), nullable=False),
        sa.Column("run_uid", _uid(), nullable=True),
        sa.Column("bucket", sa.String(16), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("host", sa.String(32), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("credits", sa.Numeric(18, 6), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.CheckConstraint("bucket IN ('ai_credits', 'platform', 'compute')", name="ck_credit_ledger_bucket"),
        sa.CheckConstraint("credits >= 0", name="ck_credit_ledger_credits_not_negative"),
        sa.PrimaryKeyConstraint("attempt_id", name="pk_credit_ledger"),
    )
    op.create_index("ix_credit_ledger_team_uid_bucket_at", "credit_ledger", ["team_uid", "bucket", "at"])
    op.create_index("ix_credit_ledger_request_id", "credit_ledger", ["request_id"])


def downgrade() -> None:
    op.drop_index("ix_credit_ledger_request_id", table_name="credit_ledger")
    op.drop_index("ix_credit_ledger_team_uid_bucket_at", table_name="credit_ledger")
    op.drop_table("credit_ledger")
    op.drop_index("ix_request_log_principal_uid_started_at", table_name="request_log")
    op.drop_index("ix_request_log_team_uid_started_at", table_name="request_log")
    op.drop_table("request_log")
