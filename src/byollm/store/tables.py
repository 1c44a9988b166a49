"""Typed SQLAlchemy 2.0 table models: the one description of the schema the repositories query.

Why these shapes:

- UIDs are 22-character base62 strings (``policy.ids``); every UID ever handed out is also a row of
  ``issued_uids``, which is never pruned, so a deleted principal's UID can never come back as someone else.
- Timestamps are timezone-aware UTC in Python on both databases (``UTCDateTime``): PostgreSQL stores
  ``timestamptz``; SQLite stores naive UTC text, which sorts and compares correctly as text.
- Enumerations are short strings guarded by CHECK constraints rather than native enums, so SQLite and
  PostgreSQL behave the same and a new value is a data migration, not a type migration.
- ``teams.policy_version`` is incremented by every policy, settings, host or agent write, so a replica can
  tell with one integer whether its cached ``TeamPolicy`` is stale.
- Constraint names follow one convention so migrations and error messages can name them.

The migrations in ``versions/`` (0001 initial, 0002 gateway) create exactly this schema (a test compares them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "NAMING_CONVENTION",
    "Agent",
    "ApiToken",
    "AuditLog",
    "Base",
    "IssuedUid",
    "LedgerEntry",
    "Membership",
    "ModelRoute",
    "RequestLog",
    "Secret",
    "Team",
    "UTCDateTime",
    "User",
    "utcnow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

UID = String(22)


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (the only kind the store accepts)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on both databases; naive datetimes are refused, not guessed at."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("the store only accepts timezone-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class IssuedUid(Base):
    """Every UID ever issued, never deleted: inserting a duplicate fails, and the issuer draws again."""

    __tablename__ = "issued_uids"

    uid: Mapped[str] = mapped_column(UID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class User(Base):
    __tablename__ = "users"

    uid: Mapped[str] = mapped_column(UID, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-cased
    display_name: Mapped[str] = mapped_column(String(200), default="")
    is_operator: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class Team(Base):
    __tablename__ = "teams"

    uid: Mapped[str] = mapped_column(UID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime]
    policy_version: Mapped[int] = mapped_column(Integer, default=1)
    # model policy
    direct_api_disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    fallback_order: Mapped[list[Any]] = mapped_column(JSON, default=list)
    model_aliases: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [{"pattern", "target"}], in order
    # Bedrock host config
    bedrock_region: Mapped[str] = mapped_column(String(32), default="us-east-1")
    bedrock_endpoint_url: Mapped[str | None] = mapped_column(String(2048))
    bedrock_role_arn: Mapped[str | None] = mapped_column(String(2048))
    # team settings
    byok_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    long_term_keys_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    retain_request_content: Mapped[bool] = mapped_column(Boolean, default=False)
    transcript_retention_days: Mapped[int] = mapped_column(Integer, default=30)
    monthly_ai_credits: Mapped[int] = mapped_column(BigInteger, default=0)
    platform_credits: Mapped[int] = mapped_column(BigInteger, default=0)
    compute_credits: Mapped[int] = mapped_column(BigInteger, default=0)
    allowed_aws_accounts: Mapped[list[Any]] = mapped_column(JSON, default=list)
    max_token_lifetime_days: Mapped[int | None] = mapped_column(Integer)
    claude_family_mapping: Mapped[bool] = mapped_column(Boolean, default=True)
    bedrock_model_discovery: Mapped[bool] = mapped_column(Boolean, default=True)
    credentialless_direct_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    degraded_runs_fail: Mapped[bool] = mapped_column(Boolean, default=False)
    alert_webhook_url: Mapped[str | None] = mapped_column(String(2048))
    alert_interval_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    # the permissions policy `byollm doctor` last evaluated for the team's role (a policy document, no secret),
    # against which enabling a model is checked at save time
    validated_permissions: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (CheckConstraint("role IN ('admin', 'member')", name="role"),)

    team_uid: Mapped[str] = mapped_column(UID, ForeignKey("teams.uid", ondelete="CASCADE"), primary_key=True)
    user_uid: Mapped[str] = mapped_column(
        UID, ForeignKey("users.uid", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class Agent(Base):
    """A named agent. Soft-deleted so audit rows and tokens keep pointing at something real; the name is
    unique among a team's live agents only, so a deleted agent's name can be reused (its UID cannot)."""

    __tablename__ = "agents"
    __table_args__ = (
        Index(
            "uq_agents_team_uid_name_live",
            "team_uid",
            "name",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    uid: Mapped[str] = mapped_column(UID, primary_key=True)
    team_uid: Mapped[str] = mapped_column(UID, ForeignKey("teams.uid", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role_arn_override: Mapped[str | None] = mapped_column(String(2048))
    default_model: Mapped[str | None] = mapped_column(String(200))
    tools: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class ModelRoute(Base):
    __tablename__ = "model_routes"

    team_uid: Mapped[str] = mapped_column(UID, ForeignKey("teams.uid", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    bedrock: Mapped[bool] = mapped_column(Boolean, default=False)
    inference_profile: Mapped[str | None] = mapped_column(String(2048))
    direct: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiToken(Base):
    """A byollm API token: only its SHA-256 (hex) and a short display prefix are ever stored."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        CheckConstraint("principal_type IN ('user', 'agent')", name="principal_type"),
        Index("ix_api_tokens_principal", "principal_type", "principal_uid"),
    )

    uid: Mapped[str] = mapped_column(UID, primary_key=True)
    principal_type: Mapped[str] = mapped_column(String(16))
    principal_uid: Mapped[str] = mapped_column(UID)
    team_uid: Mapped[str | None] = mapped_column(UID, ForeignKey("teams.uid", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    display_prefix: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AuditLog(Base):
    """Who changed what, when, with identifiers and before/after values; never a secret.

    ``team_uid`` has no foreign key on purpose: the record must outlive what it describes.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_team_uid_at", "team_uid", "at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    team_uid: Mapped[str | None] = mapped_column(UID)
    actor_uid: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(256), default="")
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(index=True)


class Secret(Base):
    """An encrypted secret (AES-256-GCM under the key-encryption key named by ``kek_id``)."""

    __tablename__ = "secrets"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    kek_id: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class RequestLog(Base):
    """One row per gateway request: who, which model and route, each attempt, tokens, credits, timing.

    Never a credential: there is no column that could hold one, and ``content`` (the prompt and response,
    only for teams that retain content) is scrubbed by the writer before it gets here. ``team_uid`` and the
    principal have no foreign keys on purpose: the record must outlive what it describes, and a batch
    must never fail because a team was deleted while its requests were still in the writer's buffer.
    """

    __tablename__ = "request_log"
    __table_args__ = (
        CheckConstraint("api IN ('anthropic', 'openai')", name="api"),
        CheckConstraint("principal_type IN ('user', 'agent')", name="principal_type"),
        CheckConstraint(
            "credential IS NULL OR credential IN ('delegated_session', 'web_identity', 'operator_key', 'byok')",
            name="credential",
        ),
        CheckConstraint("billing IS NULL OR billing IN ('customer_cloud', 'ai_credits', 'user_key')", name="billing"),
        Index("ix_request_log_team_uid_started_at", "team_uid", "started_at"),
        Index("ix_request_log_principal_uid_started_at", "principal_uid", "started_at"),
    )

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_uid: Mapped[str] = mapped_column(UID)
    principal_type: Mapped[str] = mapped_column(String(16))
    principal_uid: Mapped[str] = mapped_column(UID)
    token_uid: Mapped[str | None] = mapped_column(UID)
    run_uid: Mapped[str | None] = mapped_column(UID)
    api: Mapped[str] = mapped_column(String(16))
    requested_model: Mapped[str] = mapped_column(String(200))
    served_model: Mapped[str | None] = mapped_column(String(200))
    route: Mapped[str | None] = mapped_column(String(2048))
    host: Mapped[str | None] = mapped_column(String(32))
    credential: Mapped[str | None] = mapped_column(String(32))
    billing: Mapped[str | None] = mapped_column(String(32))
    auto_reason: Mapped[str | None] = mapped_column(String(1024))
    stream: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[int] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[list[Any]] = mapped_column(JSON)
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    credits: Mapped[Decimal] = mapped_column(Numeric(18, 6))
    duration_ms: Mapped[float] = mapped_column(Float)
    overhead_ms: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime]
    content: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class LedgerEntry(Base):
    """One credit charge, keyed by the attempt that incurred it, so a replayed write never charges twice.

    Written in the same transaction as its ``request_log`` row with INSERT ... ON CONFLICT DO NOTHING.
    Balances are sums over a period (``store.ledger``); no foreign keys, for the same reason as the log.
    """

    __tablename__ = "credit_ledger"
    __table_args__ = (
        CheckConstraint("bucket IN ('ai_credits', 'platform', 'compute')", name="bucket"),
        CheckConstraint("credits >= 0", name="credits_not_negative"),
        Index("ix_credit_ledger_team_uid_bucket_at", "team_uid", "bucket", "at"),
        Index("ix_credit_ledger_request_id", "request_id"),
    )

    attempt_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_uid: Mapped[str] = mapped_column(UID)
    request_id: Mapped[str] = mapped_column(String(64))
    principal_uid: Mapped[str] = mapped_column(UID)
    run_uid: Mapped[str | None] = mapped_column(UID)
    bucket: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(32))
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    credits: Mapped[Decimal] = mapped_column(Numeric(18, 6))
    at: Mapped[datetime]


# Tables of the cloud-run side live in their own modules (one concern each) but share this metadata, so
# migrations and the model-vs-migration test see one schema. Imported last: they import ``Base`` from here.
from byollm.store import tables_oidc, tables_runs  # noqa: E402, F401
