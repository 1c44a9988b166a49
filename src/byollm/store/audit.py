"""The audit log: who changed what, when, with before and after values. Never a secret.

Why a guard here: the admin API records every change by passing domain values through ``audit_value``;
a field that could carry a secret (a token, a key, a ciphertext) is refused at append time, so a future
caller cannot leak one into the log by accident.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from byollm.store import tables as t
from byollm.store.records import AuditEntry

__all__ = ["FORBIDDEN_AUDIT_KEYS", "append_audit", "audit_value", "list_audit"]

FORBIDDEN_AUDIT_KEYS = frozenset(
    {
        "token",
        "token_hash",
        "secret",
        "secret_value",
        "value",
        "password",
        "api_key",
        "key",
        "kek",
        "ciphertext",
        "plaintext",
        "private_key",
        "aws_secret_access_key",
        "aws_session_token",
        "session_token",
    }
)


def audit_value(value: Any) -> Any:
    """Convert domain values (frozen dataclasses, enums, sets, mappings, datetimes) to JSON data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: audit_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return audit_value(value.value)
    if isinstance(value, Mapping):
        return {str(k): audit_value(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(audit_value(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [audit_value(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot record a {type(value).__name__} in the audit log")


def _check_no_secrets(value: Any, path: str) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if str(key).lower() in FORBIDDEN_AUDIT_KEYS:
                raise ValueError(f"refusing to write field {path}{key} to the audit log: it may hold a secret")
            _check_no_secrets(item, f"{path}{key}.")
    elif isinstance(value, list):
        for item in value:
            _check_no_secrets(item, path)


def _entry(row: t.AuditLog) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        team_uid=row.team_uid,
        actor_uid=row.actor_uid,
        action=row.action,
        target=row.target,
        before=row.before,
        after=row.after,
        at=row.at,
    )


async def append_audit(
    session: AsyncSession,
    *,
    actor_uid: str,
    action: str,
    target: str = "",
    team_uid: str | None = None,
    before: Any = None,
    after: Any = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Record one change. ``before``/``after`` are domain values or JSON data (converted with
    ``audit_value``); a non-mapping value is stored as ``{"data": ...}``. Append in the same session
    as the change, so both commit or neither does."""
    before_json, after_json = _wrap(audit_value(before)), _wrap(audit_value(after))
    _check_no_secrets(before_json, "before.")
    _check_no_secrets(after_json, "after.")
    row = t.AuditLog(
        team_uid=team_uid,
        actor_uid=actor_uid,
        action=action,
        target=target,
        before=before_json,
        after=after_json,
        at=at or t.utcnow(),
    )
    session.add(row)
    await session.flush()
    return _entry(row)


def _wrap(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return value if isinstance(value, dict) else {"data": value}


async def list_audit(
    session: AsyncSession,
    *,
    team_uid: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Entries newest first, optionally for one team and/or at or after ``since``. Page with
    ``before_id`` (the smallest id of the previous page)."""
    query = select(t.AuditLog).order_by(t.AuditLog.id.desc()).limit(max(1, min(limit, 1000)))
    if team_uid is not None:
        query = query.where(t.AuditLog.team_uid == team_uid)
    if since is not None:
        query = query.where(t.AuditLog.at >= since)
    if before_id is not None:
        query = query.where(t.AuditLog.id < before_id)
    return [_entry(row) for row in await session.scalars(query)]
