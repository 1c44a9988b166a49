"""Issuing UIDs that are never reused.

Why a registry table: a UID ends up in IAM trust-policy conditions, OIDC ``sub`` claims, audit rows and
tokens held by clients. If a deleted agent's UID could be drawn again, a new principal would inherit those
grants. Every UID is inserted into ``issued_uids`` (never pruned) inside a SAVEPOINT; a collision fails the
insert, the savepoint rolls back alone, and a fresh UID is drawn.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from byollm.policy.ids import new_uid
from byollm.store.errors import StoreError
from byollm.store.tables import IssuedUid, utcnow

__all__ = ["issue_uid"]

MAX_ATTEMPTS = 8


async def issue_uid(session: AsyncSession, *, kind: str, generate: Callable[[], str] | None = None) -> str:
    """Draw a UID for a new ``kind`` ("user", "team", "agent", "token") and register it for good."""
    draw = generate or new_uid
    for _ in range(MAX_ATTEMPTS):
        uid = draw()
        try:
            async with session.begin_nested():
                await session.execute(insert(IssuedUid).values(uid=uid, kind=kind, created_at=utcnow()))
        except IntegrityError:
            continue
        return uid
    raise StoreError(f"could not draw an unused UID in {MAX_ATTEMPTS} attempts")
