"""A team's named agents (the principals cloud runs act as), changed through a typed ``AgentChange``;
deleting one revokes its tokens and stops its runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from byollm.control.authz import Action, Caller, require
from byollm.control.context import KEEP, ControlContext, Keep, invalid, resolve_model
from byollm.control.views import AgentView
from byollm.errors import ByollmError, ErrorClass
from byollm.policy import validate
from byollm.policy.types import Agent
from byollm.store import agents as agents_repo
from byollm.store import audit as audit_repo
from byollm.store import tokens as tokens_repo
from byollm.store.records import AgentRecord, PrincipalType

__all__ = ["AgentChange", "create_agent", "delete_agent", "list_agents", "update_agent"]

_TOOL_NAME = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True)
class AgentChange:
    """Submitted agent fields. ``KEEP`` leaves a field; ``None`` leaves the name and the tools and clears the
    role override and the default model."""

    name: str | Keep | None = KEEP
    role_arn_override: str | Keep | None = KEEP
    default_model: str | Keep | None = KEEP
    tools: Sequence[str] | Keep | None = KEEP

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> AgentChange:
        return cls(name=values.get("name", KEEP), role_arn_override=values.get("role_arn_override", KEEP),
                   default_model=values.get("default_model", KEEP), tools=values.get("tools", KEEP))


def _agent_view(record: AgentRecord) -> AgentView:
    return AgentView(uid=record.uid, name=record.name, role_arn_override=record.role_arn_override,
                     default_model=record.default_model, tools=list(record.tools), created_at=record.created_at)


def _agent_fields(ctx: ControlContext, change: AgentChange) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    try:
        if not isinstance(change.name, Keep) and change.name is not None:
            checked["name"] = validate.validate_name(change.name)
        if not isinstance(change.role_arn_override, Keep):
            arn = change.role_arn_override
            checked["role_arn_override"] = (
                validate.validate_role_arn(arn, field="role_arn_override") if arn else None
            )
    except validate.InvalidValue as exc:
        raise invalid(exc) from None
    if not isinstance(change.default_model, Keep):
        model = change.default_model
        checked["default_model"] = resolve_model(ctx, model, "default_model").id if model else None
    if not isinstance(change.tools, Keep) and change.tools is not None:
        tools = tuple(dict.fromkeys(change.tools))
        for tool in tools:
            if not tool or len(tool) > 64 or not set(tool) <= _TOOL_NAME:
                raise ByollmError(ErrorClass.INVALID_REQUEST, f"tools: {tool!r} is not a tool name")
        disabled = [tool for tool in tools if tool not in ctx.settings.run_tools]
        if disabled:  # only tools the operator enabled on this deployment may be given to an agent
            raise ByollmError(ErrorClass.TOOL_NOT_ENABLED,
                              f"tools: {', '.join(disabled)} not enabled on this byollm deployment")
        checked["tools"] = tools
    return checked


async def list_agents(ctx: ControlContext, caller: Caller, team_uid: str) -> list[AgentView]:
    require(caller, Action.READ_TEAM, team_uid)
    async with ctx.store.session(readonly=True) as session:
        return [_agent_view(a) for a in await agents_repo.list_agents(session, team_uid=team_uid)]


async def create_agent(ctx: ControlContext, caller: Caller, team_uid: str, change: AgentChange) -> AgentView:
    require(caller, Action.MANAGE_TEAM, team_uid)
    fields = _agent_fields(ctx, change)
    async with ctx.store.session() as session:
        record = await agents_repo.create_agent(session, team_uid=team_uid, **fields)
        await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="agent.create",
                                      target=record.uid, team_uid=team_uid, after=record.agent)
    ctx.policy_changed(team_uid)
    return _agent_view(record)


async def update_agent(ctx: ControlContext, caller: Caller, team_uid: str, agent_uid: str,
                       change: AgentChange) -> AgentView:
    require(caller, Action.MANAGE_TEAM, team_uid)
    fields = _agent_fields(ctx, change)
    async with ctx.store.session() as session:
        current = await agents_repo.get_agent(session, team_uid=team_uid, agent_uid=agent_uid)
        after: Agent = replace(current.agent, **fields)
        record = await agents_repo.update_agent(session, team_uid=team_uid, agent=after)
        await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="agent.update",
                                      target=agent_uid, team_uid=team_uid, before=current.agent, after=after)
    ctx.policy_changed(team_uid)
    return _agent_view(record)


async def delete_agent(ctx: ControlContext, caller: Caller, team_uid: str, agent_uid: str) -> None:
    require(caller, Action.MANAGE_TEAM, team_uid)
    async with ctx.store.session() as session:
        record = await agents_repo.delete_agent(session, team_uid=team_uid, agent_uid=agent_uid)
        for token in await tokens_repo.list_tokens(session, principal_type=PrincipalType.AGENT,
                                                   principal_uid=agent_uid):
            await tokens_repo.revoke_token(session, token_uid=token.uid)
        await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="agent.delete",
                                      target=agent_uid, team_uid=team_uid, before=record.agent)
    ctx.policy_changed(team_uid)
    ctx.forget_cached_callers()
    await ctx.access_withdrawn(team_uid, agent_uid, "its agent was deleted")
