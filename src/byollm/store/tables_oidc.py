"""Tables of byollm's OIDC issuer (signing keys). Registered on ``tables.Base``'s metadata.

Why this shape: a signing key's public half and schedule live here; its private half is a row of
``secrets`` named ``oidc_signing_key:<kid>`` (sealed under the KEK), so KEK verification and rotation
cover it with no extra code. ``generation`` is unique: keys form one sequence, and the database, not a
process-local lock, decides which of two replicas creating "the next key" at once wins. The key that signs
is the highest generation whose ``activate_at`` has passed; every earlier key stays published until the
tokens it could have signed have expired (``token_lifetime_seconds`` records the longest it signs for).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from byollm.store.tables import Base

__all__ = ["OidcSigningKey"]


class OidcSigningKey(Base):
    """One RS256 signing key: published from ``created_at``, signing from ``activate_at``."""

    __tablename__ = "oidc_signing_keys"
    __table_args__ = (
        CheckConstraint("alg IN ('RS256')", name="alg"),
        CheckConstraint("generation > 0", name="generation_positive"),
        CheckConstraint("token_lifetime_seconds > 0", name="token_lifetime_positive"),
    )

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, unique=True)
    alg: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    token_lifetime_seconds: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    activate_at: Mapped[datetime]
