"""Teams and memberships. A team's policy, settings and host config are read and written in ``policy``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from byollm.policy.types import BedrockHostConfig, Role, TeamSettings
from byollm.store import tables as t
from byollm.store.errors import ConflictError, NotFoundError
from byollm.store.policy import apply_bedrock_host, apply_settings
from byollm.store.records import Membership, Team
from byollm.store.uids import issue_uid

__all__ = [
    "create_team",
    "find_membership",
    "find_team_by_name",
    "get_team",
    "list_memberships",
    "list_teams",
    "remove_member",
    "set_member_role",
]


def _team(row: t.Team) -> Team:
    return Team(uid=row.uid, name=row.name, created_at=row.created_at, policy_version=row.policy_version)


def _membership(row: t.Membership) -> Membership:
    return Membership(team_uid=row.team_uid, user_uid=row.user_uid, role=Role(row.role), created_at=row.created_at)


async def create_team(
    session: AsyncSession,
    *,
    name: str,
    settings: TeamSettings | None = None,
    bedrock: BedrockHostConfig | None = None,
    now: datetime | None = None,
) -> Team:
    """Create a team with default (or given) settings and host config; ``ConflictError`` if the name is
    taken. Its model policy starts empty: nothing is routable until an admin enables a model."""
    name = name.strip()
    if not name:
        raise ValueError("team name must not be empty")
    if await find_team_by_name(session, name=name) is not None:
        raise ConflictError("a team with this name already exists", constraint="uq_teams_name")
    row = t.Team(
        uid=await issue_uid(session, kind="team"),
        name=name,
        created_at=now or t.utcnow(),
        policy_version=1,
        direct_api_disabled=False,
        fallback_order=[],
    )
    apply_settings(row, settings or TeamSettings())
    apply_bedrock_host(row, bedrock or BedrockHostConfig())
    session.add(row)
    await session.flush()
    return _team(row)


async def get_team(session: AsyncSession, *, uid: str) -> Team:
    row = await session.get(t.Team, uid)
    if row is None:
        raise NotFoundError("no such team", team_uid=uid)
    return _team(row)


async def find_team_by_name(session: AsyncSession, *, name: str) -> Team | None:
    row = await session.scalar(select(t.Team).where(t.Team.name == name.strip()))
    return None if row is None else _team(row)


async def list_teams(session: AsyncSession, *, user_uid: str | None = None) -> list[Team]:
    """All teams, or only those ``user_uid`` belongs to (so nobody lists another team)."""
    query = select(t.Team).order_by(t.Team.name)
    if user_uid is not None:
        query = query.join(t.Membership, t.Membership.team_uid == t.Team.uid).where(t.Membership.user_uid == user_uid)
    return [_team(row) for row in await session.scalars(query)]


async def set_member_role(
    session: AsyncSession, *, team_uid: str, user_uid: str, role: Role, now: datetime | None = None
) -> Membership:
    """Add ``user_uid`` to the team with ``role``, or change their role; ``NotFoundError`` if either the
    team or the user does not exist."""
    role = Role(role)
    row = await session.get(t.Membership, (team_uid, user_uid))
    if row is None:
        if await session.get(t.Team, team_uid) is None:
            raise NotFoundError("no such team", team_uid=team_uid)
        if await session.get(t.User, user_uid) is None:
            raise NotFoundError("no such user", user_uid=user_uid)
        row = t.Membership(team_uid=team_uid, user_uid=user_uid, role=role.value, created_at=now or t.utcnow())
        session.add(row)
    else:
        row.role = role.value
    await session.flush()
    return _membership(row)


async def remove_member(session: AsyncSession, *, team_uid: str, user_uid: str) -> None:
    row = await session.get(t.Membership, (team_uid, user_uid))
    if row is None:
        raise NotFoundError("no such membership", team_uid=team_uid, user_uid=user_uid)
    await session.delete(row)
    await session.flush()


async def find_membership(session: AsyncSession, *, team_uid: str, user_uid: str) -> Membership | None:
    """The user's membership of the team, or None: the authorisation check for team-scoped calls."""
    row = await session.get(t.Membership, (team_uid, user_uid))
    return None if row is None else _membership(row)


async def list_memberships(
    session: AsyncSession, *, team_uid: str | None = None, user_uid: str | None = None
) -> list[Membership]:
    query = select(t.Membership).order_by(t.Membership.team_uid, t.Membership.created_at, t.Membership.user_uid)
    if team_uid is not None:
        query = query.where(t.Membership.team_uid == team_uid)
    if user_uid is not None:
        query = query.where(t.Membership.user_uid == user_uid)
    return [_membership(row) for row in await session.scalars(query)]
