"""The admin API (``/api/v1``): thin handlers that parse, call one control-service method, and return views.

Authorisation is decided inside the control service (``control.authz``), so the CLI, the panel and this API
cannot disagree about who may do what.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from byollm.api.admin_schemas import (
    AgentCreate,
    AgentUpdate,
    BedrockUpdate,
    MemberInvite,
    MemberUpdate,
    PolicyUpdate,
    ProviderKeyIn,
    SettingsUpdate,
    TeamCreate,
    TokenCreate,
)
from byollm.api.auth import current_caller, services_of
from byollm.api.errors import AT_THE_DOOR, ApiShape, error_responses
from byollm.control.authz import Caller
from byollm.control.service import ControlService
from byollm.control.views import (
    AgentView,
    AuditView,
    BedrockView,
    InvitedMember,
    IssuedToken,
    MemberView,
    MeView,
    PolicyView,
    RequestView,
    SettingsView,
    TeamView,
    TokenView,
    UsageRowView,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["admin"],
                   responses=error_responses(ApiShape.BYOLLM, *AT_THE_DOOR, 403, 404))
# the membership changes that keep a team with at least one admin, and an invitation of an existing member
_CONFLICT = error_responses(ApiShape.BYOLLM, 409)

CallerDep = Annotated[Caller, Depends(current_caller)]
TeamUid = Annotated[str, "team UID"]


def _control(request: Request) -> ControlService:
    return services_of(request).control


ControlDep = Annotated[ControlService, Depends(_control)]


@router.get("/me", summary="Who the token belongs to and which teams it can act in")
async def me(caller: CallerDep, control: ControlDep) -> MeView:
    return await control.me(caller)


@router.get("/teams", summary="Teams the caller belongs to")
async def list_teams(caller: CallerDep, control: ControlDep) -> list[TeamView]:
    return await control.list_teams(caller)


@router.post("/teams", status_code=status.HTTP_201_CREATED, summary="Create a team (operator only)")
async def create_team(body: TeamCreate, caller: CallerDep, control: ControlDep) -> TeamView:
    return await control.create_team(caller, name=body.name)


@router.get("/teams/{team_uid}", summary="One team")
async def get_team(team_uid: TeamUid, caller: CallerDep, control: ControlDep) -> TeamView:
    return await control.get_team(caller, team_uid)


@router.get("/teams/{team_uid}/policy", summary="The team's model policy")
async def get_policy(team_uid: TeamUid, caller: CallerDep, control: ControlDep) -> PolicyView:
    return await control.get_policy(caller, team_uid)


@router.patch("/teams/{team_uid}/policy", summary="Change the model policy (admins)")
async def update_policy(team_uid: TeamUid, body: PolicyUpdate, caller: CallerDep, control: ControlDep) -> PolicyView:
    models = (
        {name: (m.bedrock, m.inference_profile, m.direct) for name, m in body.models.items()}
        if body.models is not None
        else None
    )
    return await control.update_policy(
        caller, team_uid,
        direct_api_disabled=body.direct_api_disabled, fallback_order=body.fallback_order, models=models,
        aliases=None if body.aliases is None else [(a.pattern, a.target) for a in body.aliases],
    )


@router.get("/teams/{team_uid}/settings", summary="Team settings")
async def get_settings(team_uid: TeamUid, caller: CallerDep, control: ControlDep) -> SettingsView:
    return await control.get_settings(caller, team_uid)


@router.patch("/teams/{team_uid}/settings", summary="Change team settings (admins)")
async def update_settings(
    team_uid: TeamUid, body: SettingsUpdate, caller: CallerDep, control: ControlDep
) -> SettingsView:
    return await control.update_settings(caller, team_uid, body.model_dump(exclude_unset=True))


@router.get("/teams/{team_uid}/bedrock", summary="The Bedrock host configuration")
async def get_bedrock(team_uid: TeamUid, caller: CallerDep, control: ControlDep) -> BedrockView:
    return await control.get_bedrock(caller, team_uid)


@router.patch("/teams/{team_uid}/bedrock", summary="Change the Bedrock host configuration (admins)")
async def update_bedrock(team_uid: TeamUid, body: BedrockUpdate, caller: CallerDep, control: ControlDep) -> BedrockView:
    return await control.update_bedrock(caller, team_uid, body.model_dump(exclude_unset=True))


@router.get("/teams/{team_uid}/members", summary="Members and their roles (admins)")
async def list_members(team_uid: TeamUid, caller: CallerDep, control: ControlDep) -> list[MemberView]:
    return await control.list_members(caller, team_uid)


@router.post("/teams/{team_uid}/members", status_code=status.HTTP_201_CREATED, summary="Invite a member (admins)",
             responses=_CONFLICT)
async def invite_member(team_uid: TeamUid, body: MemberInvite, caller: CallerDep,
                        control: ControlDep) -> InvitedMember:
    return await control.invite_member(
        caller, team_uid, email=body.email, display_name=body.display_name, role=body.role
    )


@router.patch("/teams/{team_uid}/members/{user_uid}", summary="Change a member's role (admins)", responses=_CONFLICT)
async def set_member_role(
    team_uid: TeamUid, user_uid: str, body: MemberUpdate, caller: CallerDep, control: ControlDep
) -> MemberView:
    return await control.set_member_role(caller, team_uid, user_uid, body.role)


@router.delete("/teams/{team_uid}/members/{user_uid}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Remove a member and revoke their team tokens (admins)", responses=_CONFLICT)
async def remove_member(team_uid: TeamUid, user_uid: str, caller: CallerDep, control: ControlDep) -> None:
    await control.remove_member(caller, team_uid, user_uid)


@router.get("/teams/{team_uid}/agents", summary="Named agents")
async def list_agents(team_uid: TeamUid, caller: CallerDep, control: ControlDep) -> list[AgentView]:
    return await control.list_agents(caller, team_uid)


@router.post("/teams/{team_uid}/agents", status_code=status.HTTP_201_CREATED, summary="Create a named agent (admins)",
             responses=_CONFLICT)  # a name already taken in the team
async def create_agent(team_uid: TeamUid, body: AgentCreate, caller: CallerDep, control: ControlDep) -> AgentView:
    return await control.create_agent(
        caller, team_uid, name=body.name, role_arn_override=body.role_arn_override,
        default_model=body.default_model, tools=body.tools,
    )


@router.patch("/teams/{team_uid}/agents/{agent_uid}", summary="Change a named agent (admins)", responses=_CONFLICT)
async def update_agent(
    team_uid: TeamUid, agent_uid: str, body: AgentUpdate, caller: CallerDep, control: ControlDep
) -> AgentView:
    return await control.update_agent(caller, team_uid, agent_uid, body.model_dump(exclude_unset=True))


@router.delete("/teams/{team_uid}/agents/{agent_uid}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a named agent and revoke its tokens (admins)")
async def delete_agent(team_uid: TeamUid, agent_uid: str, caller: CallerDep, control: ControlDep) -> None:
    await control.delete_agent(caller, team_uid, agent_uid)


@router.get("/teams/{team_uid}/tokens", summary="Tokens: your own, or all of the team's for admins")
async def list_tokens(team_uid: TeamUid, caller: CallerDep, control: ControlDep) -> list[TokenView]:
    return await control.list_tokens(caller, team_uid)


@router.post("/teams/{team_uid}/tokens", status_code=status.HTTP_201_CREATED,
             summary="Issue a token; its value is in this response only")
async def issue_token(team_uid: TeamUid, body: TokenCreate, caller: CallerDep, control: ControlDep) -> IssuedToken:
    return await control.issue_token(
        caller, team_uid, name=body.name, user_uid=body.user_uid, agent_uid=body.agent_uid,
        expires_in_days=body.expires_in_days,
    )


@router.delete("/teams/{team_uid}/tokens/{token_uid}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Revoke a token")
async def revoke_token(team_uid: TeamUid, token_uid: str, caller: CallerDep, control: ControlDep) -> None:
    await control.revoke_token(caller, team_uid, token_uid)


@router.get("/teams/{team_uid}/audit", summary="Configuration changes, newest first (admins)")
async def list_audit(
    team_uid: TeamUid,
    caller: CallerDep,
    control: ControlDep,
    since: Annotated[datetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditView]:
    return await control.list_audit(caller, team_uid, since=since, limit=limit)


@router.get("/operator/provider-keys", summary="Which direct providers have an operator key (operator)")
async def provider_keys(caller: CallerDep, control: ControlDep) -> dict[str, bool]:
    return await control.provider_keys(caller)


@router.put("/operator/provider-keys/{provider}", summary="Set or remove a direct provider's key (operator)")
async def set_provider_key(
    provider: str, body: ProviderKeyIn, caller: CallerDep, control: ControlDep
) -> dict[str, bool]:
    return await control.set_provider_key(caller, provider, body.api_key)


@router.get("/teams/{team_uid}/requests", summary="Request log, newest first (admins: all; members: their own)")
async def list_requests(
    team_uid: TeamUid,
    caller: CallerDep,
    control: ControlDep,
    since: Annotated[datetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="rows to skip (paging)")] = 0,
    member: Annotated[str | None, Query(max_length=320,
                                        description="a member's email or UID, or an agent's name or UID")] = None,
    model: Annotated[str | None, Query(max_length=200, description="served or requested model")] = None,
    route: Annotated[str | None, Query(max_length=32,
                                       description="bedrock, anthropic, openai, google, or direct")] = None,
    outcome: Annotated[str | None, Query(max_length=16, description="ok, error or fallback")] = None,
    request_id: Annotated[str | None, Query(max_length=64, description="a response's x-request-id")] = None,
) -> list[RequestView]:
    return await control.list_requests(caller, team_uid, since=since, limit=limit, offset=offset, member=member,
                                       model=model, route=route, outcome=outcome, request_id=request_id)


@router.get("/teams/{team_uid}/usage", summary="Usage and credits over a period, grouped (admins)")
async def usage(
    team_uid: TeamUid,
    caller: CallerDep,
    control: ControlDep,
    since: Annotated[datetime | None, Query(description="default: 30 days ago")] = None,
    until: Annotated[datetime | None, Query(description="default: now")] = None,
    group_by: Annotated[list[str] | None, Query(description="principal, model, host, bucket, day")] = None,
) -> list[UsageRowView]:
    now = datetime.now(UTC)
    return await control.usage(caller, team_uid, since=since or now - timedelta(days=30), until=until or now,
                               group_by=group_by or ["model", "host"])
