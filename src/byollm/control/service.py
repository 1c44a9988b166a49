"""The control plane: teams, members, agents, tokens and model policy, each change audited.

Every public method takes the authenticated ``Caller`` first and checks it with ``authz.require`` before
reading anything, validates identifiers with ``policy.validate`` (so the API, the CLI and the panel refuse
the same things with the same words), and writes the change and its audit entry in one transaction.

Authentication keeps a short in-memory cache (``Settings.auth_cache_seconds``) keyed by the token's hash, so
the hot path does no database round trip for a token it saw recently; revocations and role changes made
through this process clear it at once, and reach other replicas within the cache time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from byollm.catalog.types import Catalog, CatalogModel, partition_for_region
from byollm.control.authn import Authenticator
from byollm.control.authz import Action, Caller, require
from byollm.control.tokens import new_token
from byollm.control.views import (
    AgentView,
    AliasView,
    AuditView,
    BedrockView,
    InvitedMember,
    IssuedToken,
    MemberView,
    MeView,
    ModelRouteView,
    PolicyView,
    RequestView,
    SettingsView,
    TeamView,
    TokenView,
    UsageRowView,
    settings_view,
)
from byollm.errors import ByollmError, ErrorClass
from byollm.gateway.operator_keys import OperatorKeys
from byollm.iam.coverage import ValidatedPermissions, uncovered_warnings
from byollm.netguard import ALLOW_SETTING, DestinationRefused, EgressGuard
from byollm.policy import validate
from byollm.policy.names import ALIAS_PATTERN_CHARS
from byollm.policy.setting_fields import setting_specs
from byollm.policy.types import (
    Agent,
    BedrockHostConfig,
    Host,
    ModelAlias,
    ModelPolicy,
    ModelRouting,
    Role,
    TeamPolicy,
    TeamSettings,
)
from byollm.settings import Settings
from byollm.store import Store
from byollm.store import agents as agents_repo
from byollm.store import audit as audit_repo
from byollm.store import policy as policy_repo
from byollm.store import teams as teams_repo
from byollm.store import tokens as tokens_repo
from byollm.store import usage as usage_repo
from byollm.store import users as users_repo
from byollm.store.names import principal_names
from byollm.store.records import AgentRecord, PrincipalType, TokenRecord

__all__ = ["ControlService"]

_TOOL_NAME = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


def _now() -> datetime:
    return datetime.now(UTC)


def _invalid(exc: validate.InvalidValue) -> ByollmError:
    return exc.to_error()


def _team_view(team: Any, role: Role | None) -> TeamView:
    return TeamView(uid=team.uid, name=team.name, created_at=team.created_at,
                    your_role=role.value if role else None, admin_path=f"/admin/{team.uid}/models")


def _agent_view(record: AgentRecord) -> AgentView:
    return AgentView(uid=record.uid, name=record.name, role_arn_override=record.role_arn_override,
                     default_model=record.default_model, tools=list(record.tools), created_at=record.created_at)


def _token_view(record: TokenRecord) -> TokenView:
    return TokenView(uid=record.uid, name=record.name, principal_type=record.principal_type.value,
                     principal_uid=record.principal_uid, team_uid=record.team_uid,
                     display_prefix=record.display_prefix, created_at=record.created_at,
                     expires_at=record.expires_at, last_used_at=record.last_used_at, revoked_at=record.revoked_at)


AccessWithdrawn = Callable[[str, str, str], Awaitable[int]]
"""``(team_uid, principal_uid, reason)``: a principal lost (some of) its access to a team; the run service
cancels the runs it started there. Returns how many runs were stopped."""


async def _no_runs(_team: str, _principal: str, _reason: str) -> int:
    return 0


MAX_ALIASES = 100
"""Aliases a team may have: the planner walks them in order on every request whose name is not cached."""


class ControlService:
    def __init__(self, store: Store, catalog: Catalog, settings: Settings,
                 policy_changed: Callable[[str], None] | None = None,
                 operator_keys: OperatorKeys | None = None) -> None:
        """``policy_changed(team_uid)`` is called after every change that alters what the planner sees, so
        the gateway's policy cache in this process drops the team at once."""
        self._policy_changed = policy_changed or (lambda _team: None)
        self._access_withdrawn: AccessWithdrawn = _no_runs
        self._operator_keys = operator_keys
        self._store = store
        self._catalog = catalog
        self._settings = settings
        self._egress = EgressGuard(settings.allowed_internal_networks)
        self._authn = Authenticator(store, settings)

    def on_access_withdrawn(self, hook: AccessWithdrawn) -> None:
        """Who stops a principal's runs when its access is withdrawn (the run service, wired by
        ``build_services``; runs sit above this layer, so they are reached through this hook)."""
        self._access_withdrawn = hook

    @property
    def catalog(self) -> Catalog:
        return self._catalog

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

    # --- identity and teams --------------------------------------------------------------------------

    async def me(self, caller: Caller) -> MeView:
        return MeView(principal_uid=caller.principal_uid, kind=caller.kind.value, is_operator=caller.is_operator,
                      teams=await self.list_teams(caller), token_team_uid=caller.token_team_uid)

    async def list_teams(self, caller: Caller) -> list[TeamView]:
        visible = caller.visible_teams()
        if not visible:
            return []
        async with self._store.session(readonly=True) as session:
            teams = [await teams_repo.get_team(session, uid=uid) for uid in visible]
        return [_team_view(t, caller.role_in(t.uid)) for t in sorted(teams, key=lambda t: t.name)]

    async def get_team(self, caller: Caller, team_uid: str) -> TeamView:
        require(caller, Action.READ_TEAM, team_uid)
        async with self._store.session(readonly=True) as session:
            team = await teams_repo.get_team(session, uid=team_uid)
        return _team_view(team, caller.role_in(team_uid))

    async def create_team(self, caller: Caller, *, name: str) -> TeamView:
        require(caller, Action.CREATE_TEAM)
        try:
            name = validate.validate_label(name, field="name")
        except validate.InvalidValue as exc:
            raise _invalid(exc) from None
        async with self._store.session() as session:
            team = await teams_repo.create_team(session, name=name, settings=self._new_team_settings())
            await teams_repo.set_member_role(session, team_uid=team.uid, user_uid=caller.principal_uid,
                                             role=Role.ADMIN)
            await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="team.create",
                                          target=team.uid, team_uid=team.uid, after={"name": team.name})
        self.forget_cached_callers()
        return _team_view(team, Role.ADMIN)

    def _new_team_settings(self) -> TeamSettings:
        """A new team's settings: the defaults, with the operator's starting allowances (``settings.py``)."""
        return TeamSettings(monthly_ai_credits=self._settings.new_team_ai_credits,
                            platform_credits=self._settings.new_team_platform_credits,
                            compute_credits=self._settings.new_team_compute_credits)

    # --- model policy, settings and host config -------------------------------------------------------

    def _model(self, name: str, field: str) -> CatalogModel:
        model = self._catalog.resolve(name)
        if model is None:
            raise ByollmError(ErrorClass.INVALID_REQUEST, f"{field}: unknown model {name!r}", field=field)
        return model

    def _policy_view(self, policy: TeamPolicy, version: int) -> PolicyView:
        region = policy.bedrock.region
        rows = []
        for model in self._catalog:
            routing = policy.models.routing(model.id)
            rows.append(ModelRouteView(
                model=model.id, display_name=model.display_name, bedrock=routing.bedrock,
                inference_profile=routing.inference_profile, direct=routing.direct,
                direct_provider=model.provider, bedrock_available_in_region=model.offered_on_bedrock_in(region),
                default_bedrock_id=self._catalog.default_bedrock_upstream(model.id, region),
                on_bedrock=model.bedrock is not None,
            ))
        return PolicyView(
            team_uid=policy.team_uid, policy_version=version,
            direct_api_disabled=policy.models.direct_api_disabled,
            fallback_order=list(policy.models.fallback_order), auto_allowed=not policy.models.any_direct_disabled,
            region=region, models=rows,
            aliases=[AliasView(pattern=a.pattern, target=a.target) for a in policy.models.aliases],
            claude_family_mapping=policy.settings.claude_family_mapping,
        )

    async def team_policy(self, team_uid: str) -> tuple[TeamPolicy, int]:
        """The team's policy and its version, for the gateway and the demo (no caller check: internal)."""
        async with self._store.session(readonly=True) as session:
            policy = await policy_repo.get_team_policy(session, team_uid=team_uid)
            version = await policy_repo.get_policy_version(session, team_uid=team_uid)
        return policy, version

    async def get_policy(self, caller: Caller, team_uid: str) -> PolicyView:
        require(caller, Action.READ_TEAM, team_uid)
        return self._policy_view(*await self.team_policy(team_uid))

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
        require(caller, Action.MANAGE_TEAM, team_uid)
        async with self._store.session() as session:
            policy = await policy_repo.get_team_policy(session, team_uid=team_uid)
            before = policy.models
            routes = dict(before.routes)
            for name, (bedrock, profile, direct) in (models or {}).items():
                model = self._model(name, f"models.{name}")
                routes[model.id] = self._checked_routing(model, bedrock, profile, direct, policy.bedrock.region)
            order = before.fallback_order
            if fallback_order is not None:
                ids = [self._model(n, f"fallback_order[{i}]").id for i, n in enumerate(fallback_order)]
                if len(set(ids)) != len(ids):
                    raise ByollmError(ErrorClass.INVALID_REQUEST, "fallback_order: a model is listed twice")
                order = tuple(ids)
            after = ModelPolicy(
                routes=MappingProxyType(routes),
                direct_api_disabled=before.direct_api_disabled if direct_api_disabled is None else direct_api_disabled,
                fallback_order=order,
                aliases=before.aliases if aliases is None else self._checked_aliases(aliases),
            )
            version = await policy_repo.set_model_policy(session, team_uid=team_uid, policy=after)
            await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="policy.update",
                                          target=team_uid, team_uid=team_uid, before=before, after=after)
            changed = [m for m, r in after.routes.items()
                       if r.bedrock and (not before.bedrock_enabled(m)
                                         or before.routing(m).inference_profile != r.inference_profile)]
            validated = (ValidatedPermissions.from_json(
                await policy_repo.get_validated_permissions(session, team_uid=team_uid)) if changed else None)
        self._policy_changed(team_uid)
        view = self._policy_view(replace(policy, models=after), version)
        warnings = uncovered_warnings(self._catalog, replace(policy, models=after), changed, validated)
        return replace(view, warnings=warnings) if warnings else view

    def _checked_aliases(self, aliases: Sequence[tuple[str, str]]) -> tuple[ModelAlias, ...]:
        """Aliases as stored: patterns of model-id characters and wildcards, each listed once, each target a
        model the catalog knows (stored as its catalog id)."""
        if len(aliases) > MAX_ALIASES:
            raise ByollmError(ErrorClass.INVALID_REQUEST, f"aliases: at most {MAX_ALIASES} aliases")
        out: list[ModelAlias] = []
        seen: set[str] = set()
        for i, (pattern, target) in enumerate(aliases):
            pattern = pattern.strip()
            if not ALIAS_PATTERN_CHARS.fullmatch(pattern) or pattern.strip("*?") == "":
                raise ByollmError(ErrorClass.INVALID_REQUEST,
                                  f"aliases[{i}].pattern: use model-id characters (letters, digits, . _ : / @ -)"
                                  " with * or ? as wildcards, and at least one character that is not a wildcard",
                                  field=f"aliases[{i}].pattern")
            if pattern.lower() in seen:
                raise ByollmError(ErrorClass.INVALID_REQUEST, f"aliases[{i}].pattern: {pattern!r} is listed twice",
                                  field=f"aliases[{i}].pattern")
            seen.add(pattern.lower())
            model = self._model(target, f"aliases[{i}].target")
            out.append(ModelAlias(pattern=pattern, target=model.id))
        return tuple(out)

    def _checked_routing(self, model: CatalogModel, bedrock: bool, profile: str | None, direct: bool,
                         region: str) -> ModelRouting:
        if (bedrock or profile) and model.bedrock is None:
            raise ByollmError(ErrorClass.INVALID_REQUEST,
                              f"models.{model.id}: {model.display_name} is not offered on AWS Bedrock;"
                              " only its direct API can be enabled")
        if profile:
            problem = validate.override_problem(model, profile.strip(), region)
            if problem:
                raise ByollmError(ErrorClass.INVALID_REQUEST, f"models.{model.id}.inference_profile: {problem}")
            profile = validate.validate_inference_profile(profile.strip())
        return ModelRouting(model=model.id, bedrock=bedrock, inference_profile=profile or None, direct=direct)

    async def get_settings(self, caller: Caller, team_uid: str) -> SettingsView:
        require(caller, Action.READ_TEAM, team_uid)
        policy, _ = await self.team_policy(team_uid)
        return settings_view(policy.settings)

    async def update_settings(self, caller: Caller, team_uid: str, changes: Mapping[str, Any]) -> SettingsView:
        require(caller, Action.MANAGE_TEAM, team_uid)
        values = await self._setting_values(changes)
        async with self._store.session() as session:
            policy = await policy_repo.get_team_policy(session, team_uid=team_uid)
            after = replace(policy.settings, **values)
            await policy_repo.set_team_settings(session, team_uid=team_uid, settings=after)
            await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="settings.update",
                                          target=team_uid, team_uid=team_uid,
                                          # the views: a secret setting (a webhook's path) is redacted
                                          before=settings_view(policy.settings), after=settings_view(after))
        self._policy_changed(team_uid)
        return settings_view(after)

    async def _setting_values(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Submitted settings checked and made domain values, driven by their declarations in
        ``TeamSettings``: a ``null`` clears a nullable setting and leaves a required one; a URL setting is an
        outbound endpoint ("" removes it); a normaliser canonicalises (e.g. account ids)."""
        specs = {spec.name: spec for spec in setting_specs(TeamSettings)}
        values: dict[str, Any] = {}
        for name, value in changes.items():
            spec = specs.get(name)
            if spec is None:
                raise ByollmError(ErrorClass.INVALID_REQUEST, f"{name}: not a team setting")
            if spec.url and not value:
                value = None  # "" or null removes it
            if spec.is_set and value is None:
                value = ()  # null empties a set
            if value is None:
                if spec.nullable:
                    values[name] = None
                continue  # a null for a required setting means "leave it"
            try:
                if spec.normalise is not None:
                    value = spec.normalise(value, name)
                if spec.url:
                    value = validate.validate_endpoint_url(value, allow_http=self._settings.allow_http_endpoints,
                                                           field=name)
            except validate.InvalidValue as exc:
                raise _invalid(exc) from None
            if spec.url:
                await self._check_egress(value, name)
            values[name] = spec.from_wire(value)
        return values

    async def get_bedrock(self, caller: Caller, team_uid: str) -> BedrockView:
        require(caller, Action.READ_TEAM, team_uid)
        policy, _ = await self.team_policy(team_uid)
        b = policy.bedrock
        return BedrockView(region=b.region, endpoint_url=b.endpoint_url, role_arn=b.role_arn)

    async def update_bedrock(self, caller: Caller, team_uid: str, changes: Mapping[str, Any]) -> BedrockView:
        require(caller, Action.MANAGE_TEAM, team_uid)
        try:
            values: dict[str, Any] = {}
            if changes.get("region") is not None:
                values["region"] = validate.validate_region(changes["region"])
            if "endpoint_url" in changes:
                url = changes["endpoint_url"]
                values["endpoint_url"] = None if not url else validate.validate_endpoint_url(
                    url, allow_http=self._settings.allow_http_endpoints)
            if "role_arn" in changes:
                arn = changes["role_arn"]
                values["role_arn"] = None if not arn else validate.validate_role_arn(arn)
        except validate.InvalidValue as exc:
            raise _invalid(exc) from None
        if values.get("endpoint_url"):
            await self._check_egress(values["endpoint_url"])
        async with self._store.session() as session:
            policy = await policy_repo.get_team_policy(session, team_uid=team_uid)
            after = replace(policy.bedrock, **values)
            self._check_host(policy, after)
            await policy_repo.set_bedrock_host(session, team_uid=team_uid, config=after)
            await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="bedrock.update",
                                          target=team_uid, team_uid=team_uid, before=policy.bedrock, after=after)
        self._policy_changed(team_uid)
        return BedrockView(region=after.region, endpoint_url=after.endpoint_url, role_arn=after.role_arn)

    async def _check_egress(self, url: str, field: str = "endpoint_url") -> None:
        """Refuse an endpoint byollm must not call from inside the operator's network (SSRF; see
        ``byollm.netguard``), before it is stored. A hostname is resolved now: one that does not resolve is
        refused too, since byollm could not use it and nobody would have checked where it points once it
        did. The connection itself is checked again at request time."""
        try:
            await self._egress.check_url(url)
        except DestinationRefused as refused:
            if refused.unresolved:
                remedy = "check the hostname, or set it once it resolves from the byollm server"
            else:
                remedy = (f"byollm does not call internal addresses an admin sets; use a public endpoint hostname"
                          f" (or clear the URL for the regional endpoint), or ask the operator to allow this network"
                          f" in {ALLOW_SETTING} (for a VPC interface endpoint: the VPC's CIDR)")
            raise validate.InvalidValue(field, f"{refused.reason}: {remedy}").to_error() from None

    def _check_host(self, policy: TeamPolicy, host: BedrockHostConfig) -> None:
        """Refuse a region change that would leave an inference-profile override unusable."""
        for arn in filter(None, [host.role_arn, *(a.role_arn_override for a in policy.agents.values())]):
            partition = validate.parse_role_arn(arn).partition
            if partition != partition_for_region(host.region):
                raise ByollmError(ErrorClass.INVALID_REQUEST,
                                  f"region: role {arn} is in the {partition} partition, which does not contain"
                                  f" {host.region}")
        for routing in policy.models.routes.values():
            model = self._catalog.get(routing.model)
            if model is None or not routing.inference_profile:
                continue
            problem = validate.override_problem(model, routing.inference_profile, host.region)
            if problem:
                raise ByollmError(ErrorClass.INVALID_REQUEST,
                                  f"region: the inference-profile override for {model.id} would break ({problem});"
                                  " change or clear it first")

    # --- members -------------------------------------------------------------------------------------

    async def list_members(self, caller: Caller, team_uid: str) -> list[MemberView]:
        require(caller, Action.MANAGE_MEMBERS, team_uid)
        async with self._store.session(readonly=True) as session:
            memberships = await teams_repo.list_memberships(session, team_uid=team_uid)
            users = {m.user_uid: await users_repo.get_user(session, uid=m.user_uid) for m in memberships}
        return sorted(
            (MemberView(user_uid=m.user_uid, email=users[m.user_uid].email,
                        display_name=users[m.user_uid].display_name, role=m.role.value) for m in memberships),
            key=lambda v: v.email,
        )

    async def invite_member(self, caller: Caller, team_uid: str, *, email: str, display_name: str | None,
                            role: Role) -> InvitedMember:
        """Add ``email`` to the team. Someone byollm did not know yet also gets their first token, valid for the
        team's token lifetime and shown once; people byollm knows already keep using their own."""
        require(caller, Action.MANAGE_MEMBERS, team_uid)
        try:
            email = validate.validate_email(email)
            display_name = validate.validate_label(display_name, field="display_name", allow_empty=True)
        except validate.InvalidValue as exc:
            raise _invalid(exc) from None
        issued: IssuedToken | None = None
        async with self._store.session() as session:
            user = await users_repo.find_user_by_email(session, email=email)
            new_person = user is None
            if user is None:
                user = await users_repo.create_user(session, email=email, display_name=display_name or "")
            if await teams_repo.find_membership(session, team_uid=team_uid, user_uid=user.uid) is not None:
                raise ByollmError(ErrorClass.CONFLICT, f"{user.email} is already a member", user_uid=user.uid)
            await teams_repo.set_member_role(session, team_uid=team_uid, user_uid=user.uid, role=role)
            await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="member.invite",
                                          target=user.uid, team_uid=team_uid,
                                          after={"email": user.email, "role": role.value})
            if new_person:
                issued = await self._new_token(session, caller, team_uid, name="invitation",
                                               principal_type=PrincipalType.USER, principal_uid=user.uid,
                                               expires_in_days=None)
        self.forget_cached_callers()
        return InvitedMember(user_uid=user.uid, email=user.email, display_name=user.display_name, role=role.value,
                             first_token=issued)

    async def _admin_count(self, session: Any, team_uid: str) -> int:
        return sum(m.role is Role.ADMIN for m in await teams_repo.list_memberships(session, team_uid=team_uid))

    async def set_member_role(self, caller: Caller, team_uid: str, user_uid: str, role: Role) -> MemberView:
        require(caller, Action.MANAGE_MEMBERS, team_uid)
        async with self._store.session() as session:
            current = await teams_repo.find_membership(session, team_uid=team_uid, user_uid=user_uid)
            if current is None:
                raise ByollmError(ErrorClass.NOT_FOUND, "no such member", user_uid=user_uid)
            if current.role is Role.ADMIN and role is not Role.ADMIN and await self._admin_count(session, team_uid) < 2:
                raise ByollmError(ErrorClass.CONFLICT, "a team needs at least one admin; promote another first")
            await teams_repo.set_member_role(session, team_uid=team_uid, user_uid=user_uid, role=role)
            user = await users_repo.get_user(session, uid=user_uid)
            await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="member.role",
                                          target=user_uid, team_uid=team_uid, before={"role": current.role.value},
                                          after={"role": role.value})
        self.forget_cached_callers()
        if current.role is Role.ADMIN and role is not Role.ADMIN:
            await self._access_withdrawn(team_uid, user_uid, "the member who started it was demoted")
        return MemberView(user_uid=user_uid, email=user.email, display_name=user.display_name, role=role.value)

    async def remove_member(self, caller: Caller, team_uid: str, user_uid: str) -> None:
        require(caller, Action.MANAGE_MEMBERS, team_uid)
        async with self._store.session() as session:
            current = await teams_repo.find_membership(session, team_uid=team_uid, user_uid=user_uid)
            if current is None:
                raise ByollmError(ErrorClass.NOT_FOUND, "no such member", user_uid=user_uid)
            if current.role is Role.ADMIN and await self._admin_count(session, team_uid) < 2:
                raise ByollmError(ErrorClass.CONFLICT, "a team needs at least one admin; promote another first")
            await teams_repo.remove_member(session, team_uid=team_uid, user_uid=user_uid)
            for token in await tokens_repo.list_tokens(session, principal_type=PrincipalType.USER,
                                                       principal_uid=user_uid, team_uid=team_uid):
                await tokens_repo.revoke_token(session, token_uid=token.uid)
            await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="member.remove",
                                          target=user_uid, team_uid=team_uid, before={"role": current.role.value})
        self.forget_cached_callers()
        await self._access_withdrawn(team_uid, user_uid, "the member who started it was removed from the team")

    # --- named agents --------------------------------------------------------------------------------

    def _agent_fields(self, values: Mapping[str, Any]) -> dict[str, Any]:
        checked: dict[str, Any] = {}
        try:
            if "name" in values and values["name"] is not None:
                checked["name"] = validate.validate_name(values["name"])
            if "role_arn_override" in values:
                arn = values["role_arn_override"]
                checked["role_arn_override"] = (
                    validate.validate_role_arn(arn, field="role_arn_override") if arn else None
                )
        except validate.InvalidValue as exc:
            raise _invalid(exc) from None
        if "default_model" in values:
            model = values["default_model"]
            checked["default_model"] = self._model(model, "default_model").id if model else None
        if "tools" in values and values["tools"] is not None:
            tools = tuple(dict.fromkeys(values["tools"]))
            for tool in tools:
                if not tool or len(tool) > 64 or not set(tool) <= _TOOL_NAME:
                    raise ByollmError(ErrorClass.INVALID_REQUEST, f"tools: {tool!r} is not a tool name")
            disabled = [tool for tool in tools if tool not in self._settings.run_tools]
            if disabled:  # only tools the operator enabled on this deployment may be given to an agent
                raise ByollmError(ErrorClass.TOOL_NOT_ENABLED,
                                  f"tools: {', '.join(disabled)} not enabled on this byollm deployment")
            checked["tools"] = tools
        return checked

    async def list_agents(self, caller: Caller, team_uid: str) -> list[AgentView]:
        require(caller, Action.READ_TEAM, team_uid)
        async with self._store.session(readonly=True) as session:
            return [_agent_view(a) for a in await agents_repo.list_agents(session, team_uid=team_uid)]

    async def create_agent(self, caller: Caller, team_uid: str, *, name: str, role_arn_override: str | None,
                           default_model: str | None, tools: list[str]) -> AgentView:
        require(caller, Action.MANAGE_TEAM, team_uid)
        fields = self._agent_fields({"name": name, "role_arn_override": role_arn_override,
                                     "default_model": default_model, "tools": tools})
        async with self._store.session() as session:
            record = await agents_repo.create_agent(session, team_uid=team_uid, **fields)
            await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="agent.create",
                                          target=record.uid, team_uid=team_uid, after=record.agent)
        self._policy_changed(team_uid)
        return _agent_view(record)

    async def update_agent(self, caller: Caller, team_uid: str, agent_uid: str,
                           changes: Mapping[str, Any]) -> AgentView:
        require(caller, Action.MANAGE_TEAM, team_uid)
        fields = self._agent_fields(changes)
        async with self._store.session() as session:
            current = await agents_repo.get_agent(session, team_uid=team_uid, agent_uid=agent_uid)
            after: Agent = replace(current.agent, **fields)
            record = await agents_repo.update_agent(session, team_uid=team_uid, agent=after)
            await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="agent.update",
                                          target=agent_uid, team_uid=team_uid, before=current.agent, after=after)
        self._policy_changed(team_uid)
        return _agent_view(record)

    async def delete_agent(self, caller: Caller, team_uid: str, agent_uid: str) -> None:
        require(caller, Action.MANAGE_TEAM, team_uid)
        async with self._store.session() as session:
            record = await agents_repo.delete_agent(session, team_uid=team_uid, agent_uid=agent_uid)
            for token in await tokens_repo.list_tokens(session, principal_type=PrincipalType.AGENT,
                                                       principal_uid=agent_uid):
                await tokens_repo.revoke_token(session, token_uid=token.uid)
            await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="agent.delete",
                                          target=agent_uid, team_uid=team_uid, before=record.agent)
        self._policy_changed(team_uid)
        self.forget_cached_callers()
        await self._access_withdrawn(team_uid, agent_uid, "its agent was deleted")

    # --- tokens --------------------------------------------------------------------------------------

    async def list_tokens(self, caller: Caller, team_uid: str) -> list[TokenView]:
        require(caller, Action.OWN_TOKENS, team_uid)
        is_admin = caller.role_in(team_uid) is Role.ADMIN
        async with self._store.session(readonly=True) as session:
            if is_admin:
                records = await tokens_repo.list_tokens(session, team_uid=team_uid, include_revoked=True)
            else:
                records = await tokens_repo.list_tokens(
                    session, team_uid=team_uid, include_revoked=True,
                    principal_type=PrincipalType.USER, principal_uid=caller.principal_uid,
                )
        return [_token_view(r) for r in records]

    async def issue_token(self, caller: Caller, team_uid: str, *, name: str, user_uid: str | None = None,
                          agent_uid: str | None = None, expires_in_days: int | None = None) -> IssuedToken:
        if user_uid and agent_uid:
            raise ByollmError(ErrorClass.INVALID_REQUEST, "give user_uid or agent_uid, not both")
        try:
            name = validate.validate_label(name, field="name")
        except validate.InvalidValue as exc:
            raise _invalid(exc) from None
        for_self = agent_uid is None and user_uid in (None, caller.principal_uid)
        require(caller, Action.OWN_TOKENS if for_self else Action.MANAGE_TOKENS, team_uid)
        operator = caller.is_operator and caller.token_team_uid is None
        if not for_self and agent_uid is None and not operator:
            # A token lets its bearer act as its holder, audited under the holder's name, so a team admin never
            # mints one for another person (the operator, another team's member): members issue their own, a
            # new member's first token comes with the invitation, and admins issue tokens for the team's agents.
            raise ByollmError(ErrorClass.FORBIDDEN, "a token can be issued only for yourself or for one of the"
                              " team's agents; ask the member to issue their own", user_uid=user_uid)
        principal_type = PrincipalType.AGENT if agent_uid else PrincipalType.USER
        principal_uid = agent_uid or user_uid or caller.principal_uid
        async with self._store.session() as session:
            if principal_type is PrincipalType.USER and (
                await teams_repo.find_membership(session, team_uid=team_uid, user_uid=principal_uid) is None
            ):
                raise ByollmError(ErrorClass.NOT_FOUND, "no such member", user_uid=principal_uid)
            if principal_type is PrincipalType.AGENT:
                await agents_repo.get_agent(session, team_uid=team_uid, agent_uid=principal_uid)  # in this team
            return await self._new_token(session, caller, team_uid, name=name, principal_type=principal_type,
                                         principal_uid=principal_uid, expires_in_days=expires_in_days)

    async def _new_token(self, session: Any, caller: Caller, team_uid: str, *, name: str,
                         principal_type: PrincipalType, principal_uid: str,
                         expires_in_days: int | None) -> IssuedToken:
        """Create and audit one team-scoped token in ``session``; its lifetime is capped by the team's limit."""
        generated = new_token()
        policy = await policy_repo.get_team_policy(session, team_uid=team_uid)
        limit = policy.settings.max_token_lifetime_days
        days = expires_in_days if limit is None else min(expires_in_days or limit, limit)
        record = await tokens_repo.create_token(
            session, principal_type=principal_type, principal_uid=principal_uid, team_uid=team_uid,
            token_hash=generated.sha256, display_prefix=generated.display_prefix, name=name.strip(),
            expires_at=_now() + timedelta(days=days) if days else None,
        )
        await audit_repo.append_audit(
            session, actor_uid=caller.principal_uid, action="token.issue", target=record.uid, team_uid=team_uid,
            after={"name": record.name, "principal_type": principal_type.value, "principal_uid": principal_uid,
                   "expires_at": record.expires_at},
        )
        return IssuedToken(token=generated.value, details=_token_view(record))

    async def revoke_token(self, caller: Caller, team_uid: str, token_uid: str) -> None:
        require(caller, Action.OWN_TOKENS, team_uid)
        async with self._store.session() as session:
            record = await tokens_repo.get_token(session, token_uid=token_uid)
            if record.team_uid != team_uid:
                raise ByollmError(ErrorClass.NOT_FOUND, "no such token in this team", token_uid=token_uid)
            own = record.principal_type is PrincipalType.USER and record.principal_uid == caller.principal_uid
            if not own:
                require(caller, Action.MANAGE_TOKENS, team_uid)
            await tokens_repo.revoke_token(session, token_uid=token_uid)
            await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="token.revoke",
                                          target=token_uid, team_uid=team_uid,
                                          before={"name": record.name, "principal_uid": record.principal_uid})
        self.forget_cached_callers()
        # Runs do not remember which token started them, so revoking any of a principal's tokens in the team
        # stops the runs that principal started there: a leaked token must not keep a run going.
        await self._access_withdrawn(team_uid, record.principal_uid, "a token of the principal who started it was"
                                     " revoked")

    # --- instance-wide settings ---------------------------------------------------------------------

    async def provider_keys(self, caller: Caller) -> dict[str, bool]:
        """Which direct providers have an operator key (never the keys)."""
        require(caller, Action.OPERATE)
        configured = self._operator_keys.providers if self._operator_keys else frozenset()
        return {host.value: host in configured for host in Host if host.is_direct}

    async def set_provider_key(self, caller: Caller, provider: str, api_key: str | None) -> dict[str, bool]:
        require(caller, Action.OPERATE)
        try:
            host = Host(provider)
        except ValueError:
            host = Host.BEDROCK
        if not host.is_direct:
            raise ByollmError(ErrorClass.INVALID_REQUEST, "provider: expected anthropic, openai or google")
        if self._operator_keys is None:
            raise ByollmError(ErrorClass.INTERNAL_ERROR, "provider keys are not available in this process")
        if api_key is not None and not api_key.strip():
            raise ByollmError(ErrorClass.INVALID_REQUEST, "api_key: must not be empty")
        async with self._store.session() as session:  # the key and its audit entry: both or neither
            await self._operator_keys.write(session, host, api_key.strip() if api_key else None)
            await audit_repo.append_audit(session, actor_uid=caller.principal_uid,
                                          action="provider_key.set" if api_key else "provider_key.delete",
                                          target=host.value, after={"configured": api_key is not None})
        await self._operator_keys.refresh()
        return await self.provider_keys(caller)

    # --- requests and usage -------------------------------------------------------------------------

    async def list_requests(self, caller: Caller, team_uid: str, *, since: datetime | None = None,
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
        async with self._store.session(readonly=True) as session:
            principal = None if member is None else await self._principal_uid(session, team_uid, member)
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

    async def _principal_uid(self, session: Any, team_uid: str, member: str) -> str:
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

    async def usage(self, caller: Caller, team_uid: str, *, since: datetime, until: datetime,
                    group_by: list[str]) -> list[UsageRowView]:
        require(caller, Action.READ_USAGE, team_uid)
        unknown = sorted(set(group_by) - set(usage_repo.GROUP_KEYS))
        if unknown:
            raise ByollmError(ErrorClass.INVALID_REQUEST,
                              f"group_by: unknown key(s) {unknown}; use {', '.join(usage_repo.GROUP_KEYS)}")
        if until <= since:
            raise ByollmError(ErrorClass.INVALID_REQUEST, "until must be after since")
        async with self._store.session(readonly=True) as session:
            rows = await usage_repo.usage_report(session, team_uid=team_uid, since=since, until=until,
                                                 group_by=group_by)
        return [UsageRowView(principal=r.principal, model=r.model, host=r.host, bucket=r.bucket,
                             day=r.day.isoformat() if r.day else None, requests=r.requests, errors=r.errors,
                             input_tokens=r.input_tokens, output_tokens=r.output_tokens, credits=str(r.credits))
                for r in rows]

    async def display_names(self, caller: Caller, team_uid: str, uids: Iterable[str]) -> dict[str, str]:
        """Names for UIDs a team admin sees on the team's pages (people, agents, tokens, the team itself),
        so the panel shows names where rows keep UIDs; a UID without a name is left out."""
        require(caller, Action.MANAGE_MEMBERS, team_uid)
        wanted = set(uids)
        async with self._store.session(readonly=True) as session:
            names = await principal_names(session, wanted)
            if team_uid in wanted:
                names[team_uid] = f"team {(await teams_repo.get_team(session, uid=team_uid)).name}"
            if wanted - names.keys():
                for token in await tokens_repo.list_tokens(session, team_uid=team_uid, include_revoked=True):
                    if token.uid in wanted:
                        names[token.uid] = f"token {token.name} ({token.display_prefix}…)"
        return names

    # --- audit ---------------------------------------------------------------------------------------

    async def list_audit(self, caller: Caller, team_uid: str, *, since: datetime | None = None,
                         limit: int = 100) -> list[AuditView]:
        require(caller, Action.READ_AUDIT, team_uid)
        async with self._store.session(readonly=True) as session:
            entries = await audit_repo.list_audit(session, team_uid=team_uid, since=since, limit=limit)
        return [AuditView(id=e.id, at=e.at, team_uid=e.team_uid, actor_uid=e.actor_uid, action=e.action,
                          target=e.target, before=dict(e.before) if e.before is not None else None,
                          after=dict(e.after) if e.after is not None else None) for e in entries]
