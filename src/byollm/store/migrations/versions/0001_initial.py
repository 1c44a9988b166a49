"""Initial schema: users, teams, memberships, agents, model routes, API tokens, audit log, secrets, UIDs.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _uid() -> sa.String:
    return sa.String(22)


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "issued_uids",
        sa.Column("uid", _uid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("uid", name="pk_issued_uids"),
    )
    op.create_table(
        "users",
        sa.Column("uid", _uid(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("is_operator", sa.Boolean(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("disabled_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("uid", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_table(
        "teams",
        sa.Column("uid", _uid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("direct_api_disabled", sa.Boolean(), nullable=False),
        sa.Column("fallback_order", sa.JSON(), nullable=False),
        sa.Column("bedrock_region", sa.String(32), nullable=False),
        sa.Column("bedrock_endpoint_url", sa.String(2048), nullable=True),
        sa.Column("bedrock_role_arn", sa.String(2048), nullable=True),
        sa.Column("byok_allowed", sa.Boolean(), nullable=False),
        sa.Column("long_term_keys_allowed", sa.Boolean(), nullable=False),
        sa.Column("retain_request_content", sa.Boolean(), nullable=False),
        sa.Column("transcript_retention_days", sa.Integer(), nullable=False),
        sa.Column("monthly_ai_credits", sa.BigInteger(), nullable=False),
        sa.Column("platform_credits", sa.BigInteger(), nullable=False),
        sa.Column("compute_credits", sa.BigInteger(), nullable=False),
        sa.Column("allowed_aws_accounts", sa.JSON(), nullable=False),
        sa.Column("max_token_lifetime_days", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("uid", name="pk_teams"),
        sa.UniqueConstraint("name", name="uq_teams_name"),
    )
    op.create_table(
        "memberships",
        sa.Column("team_uid", _uid(), nullable=False),
        sa.Column("user_uid", _uid(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.CheckConstraint("role IN ('admin', 'member')", name="ck_memberships_role"),
        sa.ForeignKeyConstraint(["team_uid"], ["teams.uid"], name="fk_memberships_team_uid_teams", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_uid"], ["users.uid"], name="fk_memberships_user_uid_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("team_uid", "user_uid", name="pk_memberships"),
    )
    op.create_index("ix_memberships_user_uid", "memberships", ["user_uid"])
    op.create_table(
        "agents",
        sa.Column("uid", _uid(), nullable=False),
        sa.Column("team_uid", _uid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role_arn_override", sa.String(2048), nullable=True),
        sa.Column("default_model", sa.String(200), nullable=True),
        sa.Column("tools", sa.JSON(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("deleted_at", _ts(), nullable=True),
        sa.ForeignKeyConstraint(["team_uid"], ["teams.uid"], name="fk_agents_team_uid_teams", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("uid", name="pk_agents"),
    )
    op.create_index("ix_agents_team_uid", "agents", ["team_uid"])
    op.create_index(
        "uq_agents_team_uid_name_live",
        "agents",
        ["team_uid", "name"],
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL"),
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_table(
        "model_routes",
        sa.Column("team_uid", _uid(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("bedrock", sa.Boolean(), nullable=False),
        sa.Column("inference_profile", sa.String(2048), nullable=True),
        sa.Column("direct", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["team_uid"], ["teams.uid"], name="fk_model_routes_team_uid_teams", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("team_uid", "model", name="pk_model_routes"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("uid", _uid(), nullable=False),
        sa.Column("principal_type", sa.String(16), nullable=False),
        sa.Column("principal_uid", _uid(), nullable=False),
        sa.Column("team_uid", _uid(), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("display_prefix", sa.String(32), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("expires_at", _ts(), nullable=True),
        sa.Column("last_used_at", _ts(), nullable=True),
        sa.Column("revoked_at", _ts(), nullable=True),
        sa.CheckConstraint("principal_type IN ('user', 'agent')", name="ck_api_tokens_principal_type"),
        sa.ForeignKeyConstraint(["team_uid"], ["teams.uid"], name="fk_api_tokens_team_uid_teams", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("uid", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_index("ix_api_tokens_principal", "api_tokens", ["principal_type", "principal_uid"])
    op.create_index("ix_api_tokens_team_uid", "api_tokens", ["team_uid"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("team_uid", _uid(), nullable=True),
        sa.Column("actor_uid", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_team_uid_at", "audit_log", ["team_uid", "at"])
    op.create_table(
        "secrets",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("kek_id", sa.String(32), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_secrets"),
    )
    op.create_index("ix_secrets_kek_id", "secrets", ["kek_id"])


def downgrade() -> None:
    for index, table in (
        ("ix_secrets_kek_id", "secrets"),
        ("ix_audit_log_team_uid_at", "audit_log"),
        ("ix_audit_log_at", "audit_log"),
        ("ix_api_tokens_team_uid", "api_tokens"),
        ("ix_api_tokens_principal", "api_tokens"),
        ("uq_agents_team_uid_name_live", "agents"),
        ("ix_agents_team_uid", "agents"),
        ("ix_memberships_user_uid", "memberships"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "secrets",
        "audit_log",
        "api_tokens",
        "model_routes",
        "agents",
        "memberships",
        "teams",
        "users",
        "issued_uids",
    ):
        op.drop_table(table)
