"""Teams and the caller's own view of them: list, read, create (the creator becomes the team's admin)."""

from __future__ import annotations

from typing import Any

from byollm.control.authz import Action, Caller, require
from byollm.control.context import ControlContext, invalid
from byollm.control.views import MeView, TeamView
from byollm.policy import validate
from byollm.policy.types import Role, TeamSettings
from byollm.store import audit as audit_repo
from byollm.store import teams as teams_repo

__all__ = ["create_team", "get_team", "list_teams", "me"]


def _team_view(team: Any, role: Role | None) -> TeamView:
    return TeamView(uid=team.uid, name=team.name, created_at=team.created_at,
                    your_role=role.value if role else None, admin_path=f"/admin/{team.uid}/models")


async def me(ctx: ControlContext, caller: Caller) -> MeView:
    return MeView(principal_uid=caller.principal_uid, kind=caller.kind.value, is_operator=caller.is_operator,
                  teams=await list_teams(ctx, caller), token_team_uid=caller.token_team_uid)


async def list_teams(ctx: ControlContext, caller: Caller) -> list[TeamView]:
    visible = caller.visible_teams()
    if not visible:
        return []
    async with ctx.store.session(readonly=True) as session:
        teams = [await teams_repo.get_team(session, uid=uid) for uid in visible]
    return [_team_view(t, caller.role_in(t.uid)) for t in sorted(teams, key=lambda t: t.name)]


async def get_team(ctx: ControlContext, caller: Caller, team_uid: str) -> TeamView:
    require(caller, Action.READ_TEAM, team_uid)
    async with ctx.store.session(readonly=True) as session:
        team = await teams_repo.get_team(session, uid=team_uid)
    return _team_view(team, caller.role_in(team_uid))


async def create_team(ctx: ControlContext, caller: Caller, *, name: str) -> TeamView:
    require(caller, Action.CREATE_TEAM)
    try:
        name = validate.validate_label(name, field="name")
    except validate.InvalidValue as exc:
        raise invalid(exc) from None
    async with ctx.store.session() as session:
        team = await teams_repo.create_team(session, name=name, settings=_new_team_settings(ctx))
        await teams_repo.set_member_role(session, team_uid=team.uid, user_uid=caller.principal_uid,
                                         role=Role.ADMIN)
        await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="team.create",
                                      target=team.uid, team_uid=team.uid, after={"name": team.name})
    ctx.forget_cached_callers()
    return _team_view(team, Role.ADMIN)


def _new_team_settings(ctx: ControlContext) -> TeamSettings:
    """A new team's settings: the defaults, with the operator's starting allowances (``settings.py``)."""
    return TeamSettings(monthly_ai_credits=ctx.settings.new_team_ai_credits,
                        platform_credits=ctx.settings.new_team_platform_credits,
                        compute_credits=ctx.settings.new_team_compute_credits)
