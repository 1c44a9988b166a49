"""The control plane's one entry point: teams, members, agents, tokens and model policy, each change audited.

Every public method takes the authenticated ``Caller`` first and checks it with ``authz.require`` before
reading anything, validates identifiers with ``policy.validate`` (so the API, the CLI and the panel refuse
the same things with the same words), and writes the change and its audit entry in one transaction.

This class is a thin facade: each area lives in its own module over one shared ``ControlContext``
(``teams``, ``policy_admin``, ``host_admin``, ``members``, ``agents``, ``tokens_admin``, ``operator``,
``reports``), and authentication on the hot path is ``authn.Authenticator``. Changes submitted as mappings
(agents, the Bedrock host config) become typed change commands (``AgentChange``, ``BedrockChange``) here.

Authentication keeps a short in-memory cache (``Settings.auth_cache_seconds``) keyed by the token's hash, so
the hot path does no database round trip for a token it saw recently; revocations and role changes made
through this process clear it at once, and reach other replicas within the cache time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from byollm.catalog.types import Catalog
from byollm.control import agents, host_admin, members, operator, policy_admin, reports, teams, tokens_admin
from byollm.control.agents import AgentChange
from byollm.control.authn import Authenticator
from byollm.control.authz import Caller
from byollm.control.context import AccessWithdrawn, ControlContext
from byollm.control.host_admin import BedrockChange
from byollm.control.policy_admin import MAX_ALIASES
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
from byollm.gateway.operator_keys import OperatorKeys
from byollm.netguard import EgressGuard
from byollm.policy.types import Role, TeamPolicy
from byollm.settings import Settings
from byollm.store import Store

__all__ = ["MAX_ALIASES", "AccessWithdrawn", "ControlService"]


class ControlService:
    def __init__(self, store: Store, catalog: Catalog, settings: Settings,
                 policy_changed: Callable[[str], None] | None = None,
                 operator_keys: OperatorKeys | None = None) -> None:
        """``policy_changed(team_uid)`` is called after every change that alters what the planner sees, so
        the gateway's policy cache in this process drops the team at once."""
        self._authn = Authenticator(store, settings)
        self._ctx = ControlContext(
            store=store, catalog=catalog, settings=settings,
            egress=EgressGuard(settings.allowed_internal_networks),
            policy_changed=policy_changed or (lambda _team: None),
            forget_cached_callers=self._authn.forget, operator_keys=operator_keys,
        )

    def on_access_withdrawn(self, hook: AccessWithdrawn) -> None:
        """Who stops a principal's runs when its access is withdrawn (the run service, wired by
        ``build_services``; runs sit above this layer, so they are reached through this hook)."""
        self._ctx.access_withdrawn = hook

    @property
    def catalog(self) -> Catalog:
        return self._ctx.catalog

    # --- authentication ----------------------------------------------------------------------------------

    async def authenticate(self, token: str) -> Caller:
        """The caller behind ``token``, or ``unauthenticated`` (see ``control.authn``)."""
        return await self._authn.authenticate(token)

    def forget_cached_callers(self) -> None:
        """Drop the authentication cache (after revocations, role and membership changes)."""
        self._authn.forget()

    async def flush_token_usage(self) -> int:
        """Write the last-used times noted since the previous flush; the services' ticker calls this."""
        return await self._authn.flush_token_usage()

    # --- identity and teams (``teams``) ------------------------------------------------------------------

    async def me(self, caller: Caller) -> MeView:
        return await teams.me(self._ctx, caller)

    async def list_teams(self, caller: Caller) -> list[TeamView]:
        return await teams.list_teams(self._ctx, caller)

    async def get_team(self, caller: Caller, team_uid: str) -> TeamView:
        return await teams.get_team(self._ctx, caller, team_uid)

    async def create_team(self, caller: Caller, *, name: str) -> TeamView:
        return await teams.create_team(self._ctx, caller, name=name)

    # --- model policy and settings (``policy_admin``), host config (``host_admin``) ----------------------

    async def team_policy(self, team_uid: str) -> tuple[TeamPolicy, int]:
        """The team's policy and its version, for the gateway and the demo (no caller check: internal)."""
        return await policy_admin.team_policy(self._ctx, team_uid)

    async def get_policy(self, caller: Caller, team_uid: str) -> PolicyView:
        return await policy_admin.get_policy(self._ctx, caller, team_uid)

    async def update_policy(
        self,
        caller: Caller,
        team_uid: str,
        *,
        direct_api_disabled: bool | None = None,
        fallback_order: list[str] | None = None,
        models: Mapping[str, tuple[bool, str | None, bool]] | None = None,
        aliases: Sequence[tuple[str, str]] | None = None,
    ) -> PolicyView:
        """Change the direct-API switch, the fallback order, the routing of the named models and/or the
        aliases (``aliases`` replaces the whole list: order matters, the first match wins)."""
        return await policy_admin.update_policy(self._ctx, caller, team_uid,
                                                direct_api_disabled=direct_api_disabled,
                                                fallback_order=fallback_order, models=models, aliases=aliases)

    async def get_settings(self, caller: Caller, team_uid: str) -> SettingsView:
        return await policy_admin.get_settings(self._ctx, caller, team_uid)

    async def update_settings(self, caller: Caller, team_uid: str, changes: Mapping[str, Any]) -> SettingsView:
        return await policy_admin.update_settings(self._ctx, caller, team_uid, changes)

    async def get_bedrock(self, caller: Caller, team_uid: str) -> BedrockView:
        return await host_admin.get_bedrock(self._ctx, caller, team_uid)

    async def update_bedrock(self, caller: Caller, team_uid: str, changes: Mapping[str, Any]) -> BedrockView:
        return await host_admin.update_bedrock(self._ctx, caller, team_uid, BedrockChange.from_mapping(changes))

    # --- members (``members``) ---------------------------------------------------------------------------

    async def list_members(self, caller: Caller, team_uid: str) -> list[MemberView]:
        return await members.list_members(self._ctx, caller, team_uid)

    async def invite_member(self, caller: Caller, team_uid: str, *, email: str, display_name: str | None,
                            role: Role) -> InvitedMember:
        """Add ``email`` to the team. Someone byollm did not know yet also gets their first token, valid for the
        team's token lifetime and shown once; people byollm knows already keep using their own."""
        return await members.invite_member(self._ctx, caller, team_uid, email=email, display_name=display_name,
                                           role=role)

    async def set_member_role(self, caller: Caller, team_uid: str, user_uid: str, role: Role) -> MemberView:
        return await members.set_member_role(self._ctx, caller, team_uid, user_uid, role)

    async def remove_member(self, caller: Caller, team_uid: str, user_uid: str) -> None:
        await members.remove_member(self._ctx, caller, team_uid, user_uid)

    # --- named agents (``agents``) -----------------------------------------------------------------------

    async def list_agents(self, caller: Caller, team_uid: str) -> list[AgentView]:
        return await agents.list_agents(self._ctx, caller, team_uid)

    async def create_agent(self, caller: Caller, team_uid: str, *, name: str, role_arn_override: str | None,
                           default_model: str | None, tools: list[str]) -> AgentView:
        change = AgentChange(name=name, role_arn_override=role_arn_override, default_model=default_model,
                             tools=tools)
        return await agents.create_agent(self._ctx, caller, team_uid, change)

    async def update_agent(self, caller: Caller, team_uid: str, agent_uid: str,
                           changes: Mapping[str, Any]) -> AgentView:
        return await agents.update_agent(self._ctx, caller, team_uid, agent_uid, AgentChange.from_mapping(changes))

    async def delete_agent(self, caller: Caller, team_uid: str, agent_uid: str) -> None:
        await agents.delete_agent(self._ctx, caller, team_uid, agent_uid)

    # --- tokens (``tokens_admin``) -----------------------------------------------------------------------

    async def list_tokens(self, caller: Caller, team_uid: str) -> list[TokenView]:
        return await tokens_admin.list_tokens(self._ctx, caller, team_uid)

    async def issue_token(self, caller: Caller, team_uid: str, *, name: str, user_uid: str | None = None,
                          agent_uid: str | None = None, expires_in_days: int | None = None) -> IssuedToken:
        return await tokens_admin.issue_token(self._ctx, caller, team_uid, name=name, user_uid=user_uid,
                                              agent_uid=agent_uid, expires_in_days=expires_in_days)

    async def revoke_token(self, caller: Caller, team_uid: str, token_uid: str) -> None:
        await tokens_admin.revoke_token(self._ctx, caller, team_uid, token_uid)

    # --- instance-wide provider keys (``operator``) ------------------------------------------------------

    async def provider_keys(self, caller: Caller) -> dict[str, bool]:
        """Which direct providers have an operator key (never the keys)."""
        return await operator.provider_keys(self._ctx, caller)

    async def set_provider_key(self, caller: Caller, provider: str, api_key: str | None) -> dict[str, bool]:
        return await operator.set_provider_key(self._ctx, caller, provider, api_key)

    # --- requests, usage and audit (``reports``) ---------------------------------------------------------

    async def list_requests(self, caller: Caller, team_uid: str, *, since: datetime | None = None,
                            limit: int = 100, offset: int = 0, member: str | None = None,
                            model: str | None = None, route: str | None = None, outcome: str | None = None,
                            request_id: str | None = None) -> list[RequestView]:
        """The team's request log, newest first: admins see everyone's, members their own (see
        ``reports.list_requests`` for the filters)."""
        return await reports.list_requests(self._ctx, caller, team_uid, since=since, limit=limit, offset=offset,
                                           member=member, model=model, route=route, outcome=outcome,
                                           request_id=request_id)

    async def usage(self, caller: Caller, team_uid: str, *, since: datetime, until: datetime,
                    group_by: list[str]) -> list[UsageRowView]:
        return await reports.usage(self._ctx, caller, team_uid, since=since, until=until, group_by=group_by)

    async def display_names(self, caller: Caller, team_uid: str, uids: Iterable[str]) -> dict[str, str]:
        """Names for UIDs a team admin sees on the team's pages (people, agents, tokens, the team itself)."""
        return await reports.display_names(self._ctx, caller, team_uid, uids)

    async def list_audit(self, caller: Caller, team_uid: str, *, since: datetime | None = None,
                         limit: int = 100) -> list[AuditView]:
        return await reports.list_audit(self._ctx, caller, team_uid, since=since, limit=limit)
