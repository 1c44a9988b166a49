"""Named agents (service-account principals). Every change bumps the team's policy version, because the
planner reads agents (role override, default model) from ``TeamPolicy``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from byollm.policy.types import Agent
from byollm.store import tables as t
from byollm.store.errors import ConflictError, NotFoundError
from byollm.store.policy import bump_policy_version
from byollm.store.records import AgentRecord, PrincipalType
from byollm.store.uids import issue_uid

__all__ = ["create_agent", "delete_agent", "get_agent", "list_agents", "update_agent"]


def _record(row: t.Agent) -> AgentRecord:
    return AgentRecord(
        uid=row.uid,
        team_uid=row.team_uid,
        name=row.name,
        role_arn_override=row.role_arn_override,
        default_model=row.default_model,
        tools=tuple(str(x) for x in row.tools),
        created_at=row.created_at,
        deleted_at=row.deleted_at,
    )


async def _live_name_taken(session: AsyncSession, *, team_uid: str, name: str, except_uid: str = "") -> bool:
    found = await session.scalar(
        select(t.Agent.uid).where(
            t.Agent.team_uid == team_uid,
            t.Agent.name == name,
            t.Agent.deleted_at.is_(None),
            t.Agent.uid != except_uid,
        )
    )
    return found is not None


async def create_agent(
    session: AsyncSession,
    *,
    team_uid: str,
    name: str,
    role_arn_override: str | None = None,
    default_model: str | None = None,
    tools: Sequence[str] = (),
    now: datetime | None = None,
) -> AgentRecord:
    """Create a named agent; ``ConflictError`` if a live agent of the team already has the name."""
    name = name.strip()
    if not name:
        raise ValueError("agent name must not be empty")
    if await session.get(t.Team, team_uid) is None:
        raise NotFoundError("no such team", team_uid=team_uid)
    if await _live_name_taken(session, team_uid=team_uid, name=name):
        raise ConflictError("an agent with this name already exists in the team", constraint="agents.name")
    row = t.Agent(
        uid=await issue_uid(session, kind="agent"),
        team_uid=team_uid,
        name=name,
        role_arn_override=role_arn_override,
        default_model=default_model,
        tools=list(tools),
        created_at=now or t.utcnow(),
    )
    session.add(row)
    await session.flush()
    await bump_policy_version(session, team_uid=team_uid)
    return _record(row)


async def _live_row(session: AsyncSession, *, team_uid: str, agent_uid: str) -> t.Agent:
    row = await session.get(t.Agent, agent_uid)
    if row is None or row.team_uid != team_uid or row.deleted_at is not None:
        raise NotFoundError("no such agent", team_uid=team_uid, agent_uid=agent_uid)
    return row


async def get_agent(
    session: AsyncSession, *, team_uid: str, agent_uid: str, include_deleted: bool = False
) -> AgentRecord:
    """One agent of the team (scoped by team, so another team's agent is simply not found)."""
    row = await session.get(t.Agent, agent_uid)
    if row is None or row.team_uid != team_uid or (row.deleted_at is not None and not include_deleted):
        raise NotFoundError("no such agent", team_uid=team_uid, agent_uid=agent_uid)
    return _record(row)


async def list_agents(session: AsyncSession, *, team_uid: str, include_deleted: bool = False) -> list[AgentRecord]:
    query = select(t.Agent).where(t.Agent.team_uid == team_uid).order_by(t.Agent.name, t.Agent.created_at)
    if not include_deleted:
        query = query.where(t.Agent.deleted_at.is_(None))
    return [_record(row) for row in await session.scalars(query)]


async def update_agent(session: AsyncSession, *, team_uid: str, agent: Agent) -> AgentRecord:
    """Replace a live agent's name, role override, default model and tools with ``agent``'s (its UID
    selects the row). Read it, ``dataclasses.replace`` what changes, write it back."""
    row = await _live_row(session, team_uid=team_uid, agent_uid=agent.uid)
    name = agent.name.strip()
    if not name:
        raise ValueError("agent name must not be empty")
    if name != row.name and await _live_name_taken(session, team_uid=team_uid, name=name, except_uid=row.uid):
        raise ConflictError("an agent with this name already exists in the team", constraint="agents.name")
    row.name = name
    row.role_arn_override = agent.role_arn_override
    row.default_model = agent.default_model
    row.tools = list(agent.tools)
    await session.flush()
    await bump_policy_version(session, team_uid=team_uid)
    return _record(row)


async def delete_agent(
    session: AsyncSession, *, team_uid: str, agent_uid: str, now: datetime | None = None
) -> AgentRecord:
    """Soft-delete an agent and revoke its tokens. Its UID stays issued forever; its name becomes free."""
    row = await _live_row(session, team_uid=team_uid, agent_uid=agent_uid)
    at = now or t.utcnow()
    row.deleted_at = at
    await session.execute(
        update(t.ApiToken)
        .where(
            t.ApiToken.principal_type == PrincipalType.AGENT.value,
            t.ApiToken.principal_uid == agent_uid,
            t.ApiToken.revoked_at.is_(None),
        )
        .values(revoked_at=at)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    await bump_policy_version(session, team_uid=team_uid)
    return _record(row)
