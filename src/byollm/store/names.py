"""Names for principal UIDs (users and agents), so people read "alice@example.com" or "agent reviewer"
where a page or a listing would otherwise show a 22-character UID.

Why a query of its own: request-log, audit and run rows keep bare UIDs on purpose (they outlive what they
describe), and the names must still resolve for a member who has left or an agent that was deleted (agents
are soft-deleted, users are never deleted), so this reads the user and agent tables directly rather than
the team's current memberships.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from byollm.store import tables as t

__all__ = ["principal_names"]


async def principal_names(session: AsyncSession, uids: Iterable[str]) -> dict[str, str]:
    """``{uid: name}`` for every UID that is a user (display name, else email) or an agent
    (``agent <name>``); unknown UIDs are left out, so callers fall back to showing the UID."""
    wanted = sorted({uid for uid in uids if uid})
    names: dict[str, str] = {}
    for start in range(0, len(wanted), 500):  # bounded IN lists
        chunk = wanted[start:start + 500]
        for uid, email, display in await session.execute(
                select(t.User.uid, t.User.email, t.User.display_name).where(t.User.uid.in_(chunk))):
            names[uid] = display or email
        for uid, name in await session.execute(select(t.Agent.uid, t.Agent.name).where(t.Agent.uid.in_(chunk))):
            names[uid] = f"agent {name}"
    return names
