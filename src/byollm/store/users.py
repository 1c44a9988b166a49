"""Users: people who sign in. Emails are stored lower-cased so one person cannot register twice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from byollm.store import tables as t
from byollm.store.errors import ConflictError, NotFoundError
from byollm.store.records import User
from byollm.store.uids import issue_uid

__all__ = [
    "count_users",
    "create_user",
    "find_user_by_email",
    "get_user",
    "list_users",
    "normalize_email",
    "set_user_disabled",
]


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _user(row: t.User) -> User:
    return User(
        uid=row.uid,
        email=row.email,
        display_name=row.display_name,
        is_operator=row.is_operator,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    display_name: str = "",
    is_operator: bool = False,
    now: datetime | None = None,
) -> User:
    """Create a user; ``ConflictError`` if the email is taken."""
    normalized = normalize_email(email)
    if not normalized:
        raise ValueError("email must not be empty")
    if await find_user_by_email(session, email=normalized) is not None:
        raise ConflictError("a user with this email already exists", constraint="uq_users_email")
    row = t.User(
        uid=await issue_uid(session, kind="user"),
        email=normalized,
        display_name=display_name,
        is_operator=is_operator,
        created_at=now or t.utcnow(),
    )
    session.add(row)
    await session.flush()
    return _user(row)


async def get_user(session: AsyncSession, *, uid: str) -> User:
    row = await session.get(t.User, uid)
    if row is None:
        raise NotFoundError("no such user", user_uid=uid)
    return _user(row)


async def find_user_by_email(session: AsyncSession, *, email: str) -> User | None:
    row = await session.scalar(select(t.User).where(t.User.email == normalize_email(email)))
    return None if row is None else _user(row)


async def list_users(session: AsyncSession, *, include_disabled: bool = True) -> list[User]:
    query = select(t.User).order_by(t.User.created_at, t.User.uid)
    if not include_disabled:
        query = query.where(t.User.disabled_at.is_(None))
    return [_user(row) for row in await session.scalars(query)]


async def count_users(session: AsyncSession, *, operators_only: bool = False) -> int:
    """How many users exist (bootstrap creates the first admin only when this is zero)."""
    query = select(func.count()).select_from(t.User)
    if operators_only:
        query = query.where(t.User.is_operator.is_(True))
    return int(await session.scalar(query) or 0)


async def set_user_disabled(session: AsyncSession, *, uid: str, disabled: bool, now: datetime | None = None) -> User:
    """Disable (or re-enable) a user. A disabled user's tokens stop working at the next lookup."""
    row = await session.get(t.User, uid)
    if row is None:
        raise NotFoundError("no such user", user_uid=uid)
    if disabled and row.disabled_at is None:
        row.disabled_at = now or t.utcnow()
    elif not disabled:
        row.disabled_at = None
    await session.flush()
    return _user(row)
