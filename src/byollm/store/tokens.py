"""API tokens: stored as a SHA-256 hex digest plus a short display prefix, never the token itself.

Generating and hashing tokens is the control layer's job; this module stores what it is given. The hot
path is ``find_token_by_hash``: one indexed query that also says whether the principal is still enabled
(user not disabled, agent not deleted). ``last_used_at`` is written in batches (``TokenUsageBuffer``) so a
request never waits for a write.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from byollm.store import tables as t
from byollm.store.errors import ConflictError, NotFoundError
from byollm.store.records import PrincipalType, TokenRecord
from byollm.store.uids import issue_uid

__all__ = [
    "TokenUsageBuffer",
    "create_token",
    "find_token_by_hash",
    "get_token",
    "list_tokens",
    "mark_tokens_used",
    "revoke_token",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")


def _token_query() -> Select[tuple[t.ApiToken, Any, Any]]:
    user = t.User.__table__.alias("token_user")
    agent = t.Agent.__table__.alias("token_agent")
    return (
        select(t.ApiToken, user.c.disabled_at, agent.c.deleted_at)
        .outerjoin(
            user,
            and_(t.ApiToken.principal_type == PrincipalType.USER.value, user.c.uid == t.ApiToken.principal_uid),
        )
        .outerjoin(
            agent,
            and_(
                t.ApiToken.principal_type == PrincipalType.AGENT.value,
                agent.c.uid == t.ApiToken.principal_uid,
            ),
        )
    )


def _record(row: t.ApiToken, user_disabled_at: Any = None, agent_deleted_at: Any = None) -> TokenRecord:
    return TokenRecord(
        uid=row.uid,
        principal_type=PrincipalType(row.principal_type),
        principal_uid=row.principal_uid,
        team_uid=row.team_uid,
        name=row.name,
        display_prefix=row.display_prefix,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        principal_disabled=user_disabled_at is not None or agent_deleted_at is not None,
    )


async def create_token(
    session: AsyncSession,
    *,
    principal_type: PrincipalType,
    principal_uid: str,
    token_hash: str,
    display_prefix: str,
    name: str = "",
    team_uid: str | None = None,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> TokenRecord:
    """Store a new token for a user or a live agent.

    ``token_hash`` is the lowercase hex SHA-256 of the token; ``display_prefix`` a short non-secret
    prefix shown in listings. An agent's token is always scoped to the agent's team (``team_uid`` must
    be None or that team). Enforcing a team's maximum token lifetime is the caller's policy decision.
    """
    principal_type = PrincipalType(principal_type)
    if not _HEX64.fullmatch(token_hash):
        raise ValueError("token_hash must be a lowercase hex SHA-256 digest")
    if len(display_prefix) > 32:
        raise ValueError("display_prefix is at most 32 characters")
    if principal_type is PrincipalType.USER:
        user = await session.get(t.User, principal_uid)
        if user is None or user.disabled_at is not None:
            raise NotFoundError("no such user", user_uid=principal_uid)
    else:
        agent = await session.get(t.Agent, principal_uid)
        if agent is None or agent.deleted_at is not None:
            raise NotFoundError("no such agent", agent_uid=principal_uid)
        if team_uid not in (None, agent.team_uid):
            raise NotFoundError("no such agent in this team", agent_uid=principal_uid, team_uid=team_uid)
        team_uid = agent.team_uid
    if team_uid is not None and await session.get(t.Team, team_uid) is None:
        raise NotFoundError("no such team", team_uid=team_uid)
    taken = await session.scalar(select(t.ApiToken.uid).where(t.ApiToken.token_hash == token_hash))
    if taken is not None:
        raise ConflictError("a token with this hash already exists", constraint="uq_api_tokens_token_hash")
    row = t.ApiToken(
        uid=await issue_uid(session, kind="token"),
        principal_type=principal_type.value,
        principal_uid=principal_uid,
        team_uid=team_uid,
        name=name,
        token_hash=token_hash,
        display_prefix=display_prefix,
        created_at=now or t.utcnow(),
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    return _record(row)


async def find_token_by_hash(session: AsyncSession, *, token_hash: str) -> TokenRecord | None:
    """The token with this hash, whatever its state; check ``record.is_active(now)`` before trusting it."""
    result = await session.execute(_token_query().where(t.ApiToken.token_hash == token_hash))
    found = result.first()
    return None if found is None else _record(*found)


async def get_token(session: AsyncSession, *, token_uid: str) -> TokenRecord:
    result = await session.execute(_token_query().where(t.ApiToken.uid == token_uid))
    found = result.first()
    if found is None:
        raise NotFoundError("no such token", token_uid=token_uid)
    return _record(*found)


async def list_tokens(
    session: AsyncSession,
    *,
    principal_type: PrincipalType | None = None,
    principal_uid: str | None = None,
    team_uid: str | None = None,
    include_revoked: bool = False,
) -> list[TokenRecord]:
    """Tokens matching every given filter, oldest first."""
    query = _token_query().order_by(t.ApiToken.created_at, t.ApiToken.uid)
    if principal_type is not None:
        query = query.where(t.ApiToken.principal_type == PrincipalType(principal_type).value)
    if principal_uid is not None:
        query = query.where(t.ApiToken.principal_uid == principal_uid)
    if team_uid is not None:
        query = query.where(t.ApiToken.team_uid == team_uid)
    if not include_revoked:
        query = query.where(t.ApiToken.revoked_at.is_(None))
    result = await session.execute(query)
    return [_record(*found) for found in result]


async def revoke_token(session: AsyncSession, *, token_uid: str, now: datetime | None = None) -> TokenRecord:
    """Revoke a token (idempotent: the first revocation time is kept)."""
    row = await session.get(t.ApiToken, token_uid)
    if row is None:
        raise NotFoundError("no such token", token_uid=token_uid)
    if row.revoked_at is None:
        row.revoked_at = now or t.utcnow()
        await session.flush()
    return await get_token(session, token_uid=token_uid)


async def mark_tokens_used(session: AsyncSession, *, last_used: Mapping[str, datetime]) -> None:
    """Record last-use times for many tokens in one statement; never moves a time backwards."""
    if not last_used:
        return
    table = cast(Table, t.ApiToken.__table__)
    statement = (
        update(table)
        .where(
            table.c.uid == bindparam("b_uid"),
            or_(
                table.c.last_used_at.is_(None),
                table.c.last_used_at < bindparam("b_at", type_=t.UTCDateTime()),
            ),
        )
        .values(last_used_at=bindparam("b_at", type_=t.UTCDateTime()))
    )
    await session.execute(statement, [{"b_uid": uid, "b_at": at} for uid, at in sorted(last_used.items())])


class TokenUsageBuffer:
    """Collects token uses in memory; ``flush`` writes them in one batch (call it every few seconds).

    Owned by the gateway's services object; not thread-safe, meant for one event loop.
    """

    def __init__(self) -> None:
        self._pending: dict[str, datetime] = {}

    def note(self, token_uid: str, at: datetime) -> None:
        current = self._pending.get(token_uid)
        if current is None or at > current:
            self._pending[token_uid] = at

    def __len__(self) -> int:
        return len(self._pending)

    def take(self) -> dict[str, datetime]:
        pending, self._pending = self._pending, {}
        return pending

    async def flush(self, session: AsyncSession) -> int:
        """Write pending uses in ``session``; return how many tokens were written."""
        pending = self.take()
        await mark_tokens_used(session, last_used=pending)
        return len(pending)
