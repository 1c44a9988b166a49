"""What a team's admins and members read back: the request log, usage, display names for UIDs, the audit
trail. Nothing here writes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from byollm.control.authz import Action, Caller, require
from byollm.control.context import ControlContext
from byollm.control.views import AuditView, RequestView, UsageRowView
from byollm.errors import ByollmError, ErrorClass
from byollm.policy.types import Host, Role
from byollm.store import agents as agents_repo
from byollm.store import audit as audit_repo
from byollm.store import teams as teams_repo
from byollm.store import tokens as tokens_repo
from byollm.store import usage as usage_repo
from byollm.store import users as users_repo
from byollm.store.names import principal_names

__all__ = ["display_names", "list_audit", "list_requests", "usage"]


async def list_requests(ctx: ControlContext, caller: Caller, team_uid: str, *, since: datetime | None = None,
                        limit: int = 100, offset: int = 0, member: str | None = None,
                        model: str | None = None, route: str | None = None, outcome: str | None = None,
                        request_id: str | None = None) -> list[RequestView]:
    """The team's request log, newest first: admins see everyone's, members their own.

    ``member`` is a member's email or UID or an agent's name or UID; ``route`` is a host (``bedrock``,
    ``anthropic``...) or ``direct``; ``outcome`` is ``ok``, ``error`` or ``fallback``; ``request_id``
    is the ``x-request-id`` a response carried."""
    require(caller, Action.OWN_TOKENS, team_uid)
    if outcome is not None and outcome not in usage_repo.OUTCOMES:
        raise ByollmError(ErrorClass.INVALID_REQUEST,
                          f"outcome: {outcome!r} is not one of {', '.join(usage_repo.OUTCOMES)}")
    hosts = (*(h.value for h in Host), usage_repo.DIRECT)
    if route is not None and route not in hosts:
        raise ByollmError(ErrorClass.INVALID_REQUEST, f"route: {route!r} is not one of {', '.join(hosts)}")
    admin = caller.role_in(team_uid) is Role.ADMIN
    async with ctx.store.session(readonly=True) as session:
        principal = None if member is None else await _principal_uid(session, team_uid, member)
        if not admin:
            if principal not in (None, caller.principal_uid):
                return []
            principal = caller.principal_uid
        where = usage_repo.RequestFilter(principal_uid=principal, since=since, model=model, host=route,
                                         outcome=outcome, request_id=request_id)
        records = await usage_repo.list_requests(session, team_uid=team_uid, limit=limit, offset=offset,
                                                 where=where)
        names = await principal_names(session, (r.principal_uid for r in records))
    return [RequestView(
        request_id=r.request_id, started_at=r.started_at, principal_type=r.principal_type,
        principal_uid=r.principal_uid, api=r.api, requested_model=r.requested_model,
        served_model=r.served_model, route=r.route, host=r.host, billing=r.billing, stream=r.stream,
        status=r.status, error_code=r.error_code,
        attempts=[{"route": a.route, "host": a.host, "model": a.model, "error_code": a.error_code,
                   "latency_ms": a.latency_ms} for a in r.attempts],
        input_tokens=r.input_tokens, output_tokens=r.output_tokens, credits=str(r.credits),
        duration_ms=r.duration_ms, overhead_ms=r.overhead_ms, auto_reason=r.auto_reason, run_uid=r.run_uid,
        principal_name=names.get(r.principal_uid),
        outcome="error" if r.status >= 400 or r.error_code else "fallback" if len(r.attempts) > 1 else "ok",
    ) for r in records]


async def _principal_uid(session: Any, team_uid: str, member: str) -> str:
    """The UID a member filter names: a member's email or UID, or an agent's name or UID."""
    wanted = member.strip()
    for m in await teams_repo.list_memberships(session, team_uid=team_uid):
        user = await users_repo.get_user(session, uid=m.user_uid)
        if wanted in (user.uid, user.email) or wanted.lower() == user.email:
            return user.uid
    for a in await agents_repo.list_agents(session, team_uid=team_uid, include_deleted=True):
        if wanted in (a.uid, a.name):
            return a.uid
    if wanted in await principal_names(session, [wanted]):  # a UID of someone who has left the team
        return wanted
    raise ByollmError(ErrorClass.INVALID_REQUEST,
                      f"member: {wanted!r} is not a member's email or an agent's name in this team")


async def usage(ctx: ControlContext, caller: Caller, team_uid: str, *, since: datetime, until: datetime,
                group_by: list[str]) -> list[UsageRowView]:
    require(caller, Action.READ_USAGE, team_uid)
    unknown = sorted(set(group_by) - set(usage_repo.GROUP_KEYS))
    if unknown:
        raise ByollmError(ErrorClass.INVALID_REQUEST,
                          f"group_by: unknown key(s) {unknown}; use {', '.join(usage_repo.GROUP_KEYS)}")
    if until <= since:
        raise ByollmError(ErrorClass.INVALID_REQUEST, "until must be after since")
    async with ctx.store.session(readonly=True) as session:
        rows = await usage_repo.usage_report(session, team_uid=team_uid, since=since, until=until,
                                             group_by=group_by)
    return [UsageRowView(principal=r.principal, model=r.model, host=r.host, bucket=r.bucket,
                         day=r.day.isoformat() if r.day else None, requests=r.requests, errors=r.errors,
                         input_tokens=r.input_tokens, output_tokens=r.output_tokens, credits=str(r.credits))
            for r in rows]


async def display_names(ctx: ControlContext, caller: Caller, team_uid: str, uids: Iterable[str]) -> dict[str, str]:
    """Names for UIDs a team admin sees on the team's pages (people, agents, tokens, the team itself),
    so the panel shows names where rows keep UIDs; a UID without a name is left out."""
    require(caller, Action.MANAGE_MEMBERS, team_uid)
    wanted = set(uids)
    async with ctx.store.session(readonly=True) as session:
        names = await principal_names(session, wanted)
        if team_uid in wanted:
            names[team_uid] = f"team {(await teams_repo.get_team(session, uid=team_uid)).name}"
        if wanted - names.keys():
            for token in await tokens_repo.list_tokens(session, team_uid=team_uid, include_revoked=True):
                if token.uid in wanted:
                    names[token.uid] = f"token {token.name} ({token.display_prefix}…)"
    return names


async def list_audit(ctx: ControlContext, caller: Caller, team_uid: str, *, since: datetime | None = None,
                     limit: int = 100) -> list[AuditView]:
    require(caller, Action.READ_AUDIT, team_uid)
    async with ctx.store.session(readonly=True) as session:
        entries = await audit_repo.list_audit(session, team_uid=team_uid, since=since, limit=limit)
    return [AuditView(id=e.id, at=e.at, team_uid=e.team_uid, actor_uid=e.actor_uid, action=e.action,
                      target=e.target, before=dict(e.before) if e.before is not None else None,
                      after=dict(e.after) if e.after is not None else None) for e in entries]
