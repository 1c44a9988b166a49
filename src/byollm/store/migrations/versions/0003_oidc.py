"""OIDC issuer: signing keys (public part and schedule; the private key is a sealed row of ``secrets``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "oidc_signing_keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("token_lifetime_seconds", sa.Integer(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("activate_at", _ts(), nullable=False),
        sa.CheckConstraint("alg IN ('RS256')", name="ck_oidc_signing_keys_alg"),
        sa.CheckConstraint("generation > 0", name="ck_oidc_signing_keys_generation_positive"),
        sa.CheckConstraint("token_lifetime_seconds > 0", name="ck_oidc_signing_keys_token_lifetime_positive"),
        sa.PrimaryKeyConstraint("kid", name="pk_oidc_signing_keys"),
        sa.UniqueConstraint("generation", name="uq_oidc_signing_keys_generation"),
    )


def downgrade() -> None:
    op.drop_table("oidc_signing_keys")
