"""Model names that follow the world: per-team model aliases and the Claude family mapping switch.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("teams") as batch:
        batch.add_column(sa.Column("model_aliases", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("claude_family_mapping", sa.Boolean(), nullable=False,
                                   server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("teams") as batch:
        batch.drop_column("claude_family_mapping")
        batch.drop_column("model_aliases")
