"""A team's model policy (routing per model, fallback order, the direct-API switch, aliases) and its
settings, as the admin API, the CLI and the panel change them; each change is audited in its transaction and
drops the team from the gateway's policy cache."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from byollm.catalog.types import CatalogModel
from byollm.control.authz import Action, Caller, require
from byollm.control.context import ControlContext, check_egress, invalid, resolve_model
from byollm.control.views import AliasView, ModelRouteView, PolicyView, SettingsView, settings_view
from byollm.errors import ByollmError, ErrorClass
from byollm.iam.coverage import ValidatedPermissions, uncovered_warnings
from byollm.policy import validate
from byollm.policy.names import ALIAS_PATTERN_CHARS
from byollm.policy.setting_fields import setting_specs
from byollm.policy.types import ModelAlias, ModelPolicy, ModelRouting, TeamPolicy, TeamSettings
from byollm.store import audit as audit_repo
from byollm.store import policy as policy_repo

__all__ = ["MAX_ALIASES", "get_policy", "get_settings", "team_policy", "update_policy", "update_settings"]

MAX_ALIASES = 100
"""Aliases a team may have: the planner walks them in order on every request whose name is not cached."""


def _policy_view(ctx: ControlContext, policy: TeamPolicy, version: int) -> PolicyView:
    region = policy.bedrock.region
    rows = []
    for model in ctx.catalog:
        routing = policy.models.routing(model.id)
        rows.append(ModelRouteView(
            model=model.id, display_name=model.display_name, bedrock=routing.bedrock,
            inference_profile=routing.inference_profile, direct=routing.direct,
            direct_provider=model.provider, bedrock_available_in_region=model.offered_on_bedrock_in(region),
            default_bedrock_id=ctx.catalog.default_bedrock_upstream(model.id, region),
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


async def team_policy(ctx: ControlContext, team_uid: str) -> tuple[TeamPolicy, int]:
    """The team's policy and its version, for the gateway and the demo (no caller check: internal)."""
    async with ctx.store.session(readonly=True) as session:
        policy = await policy_repo.get_team_policy(session, team_uid=team_uid)
        version = await policy_repo.get_policy_version(session, team_uid=team_uid)
    return policy, version


async def get_policy(ctx: ControlContext, caller: Caller, team_uid: str) -> PolicyView:
    require(caller, Action.READ_TEAM, team_uid)
    return _policy_view(ctx, *await team_policy(ctx, team_uid))


async def update_policy(
    ctx: ControlContext,
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
    async with ctx.store.session() as session:
        policy = await policy_repo.get_team_policy(session, team_uid=team_uid)
        before = policy.models
        routes = dict(before.routes)
        for name, (bedrock, profile, direct) in (models or {}).items():
            model = resolve_model(ctx, name, f"models.{name}")
            routes[model.id] = _checked_routing(model, bedrock, profile, direct, policy.bedrock.region)
        order = before.fallback_order
        if fallback_order is not None:
            ids = [resolve_model(ctx, n, f"fallback_order[{i}]").id for i, n in enumerate(fallback_order)]
            if len(set(ids)) != len(ids):
                raise ByollmError(ErrorClass.INVALID_REQUEST, "fallback_order: a model is listed twice")
            order = tuple(ids)
        after = ModelPolicy(
            routes=MappingProxyType(routes),
            direct_api_disabled=before.direct_api_disabled if direct_api_disabled is None else direct_api_disabled,
            fallback_order=order,
            aliases=before.aliases if aliases is None else _checked_aliases(ctx, aliases),
        )
        version = await policy_repo.set_model_policy(session, team_uid=team_uid, policy=after)
        await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="policy.update",
                                      target=team_uid, team_uid=team_uid, before=before, after=after)
        changed = [m for m, r in after.routes.items()
                   if r.bedrock and (not before.bedrock_enabled(m)
                                     or before.routing(m).inference_profile != r.inference_profile)]
        validated = (ValidatedPermissions.from_json(
            await policy_repo.get_validated_permissions(session, team_uid=team_uid)) if changed else None)
    ctx.policy_changed(team_uid)
    view = _policy_view(ctx, replace(policy, models=after), version)
    warnings = uncovered_warnings(ctx.catalog, replace(policy, models=after), changed, validated)
    return replace(view, warnings=warnings) if warnings else view


def _checked_aliases(ctx: ControlContext, aliases: Sequence[tuple[str, str]]) -> tuple[ModelAlias, ...]:
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
        model = resolve_model(ctx, target, f"aliases[{i}].target")
        out.append(ModelAlias(pattern=pattern, target=model.id))
    return tuple(out)


def _checked_routing(model: CatalogModel, bedrock: bool, profile: str | None, direct: bool,
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


async def get_settings(ctx: ControlContext, caller: Caller, team_uid: str) -> SettingsView:
    require(caller, Action.READ_TEAM, team_uid)
    policy, _ = await team_policy(ctx, team_uid)
    return settings_view(policy.settings)


async def update_settings(ctx: ControlContext, caller: Caller, team_uid: str,
                          changes: Mapping[str, Any]) -> SettingsView:
    require(caller, Action.MANAGE_TEAM, team_uid)
    values = await _setting_values(ctx, changes)
    async with ctx.store.session() as session:
        policy = await policy_repo.get_team_policy(session, team_uid=team_uid)
        after = replace(policy.settings, **values)
        await policy_repo.set_team_settings(session, team_uid=team_uid, settings=after)
        await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="settings.update",
                                      target=team_uid, team_uid=team_uid,
                                      # the views: a secret setting (a webhook's path) is redacted
                                      before=settings_view(policy.settings), after=settings_view(after))
    ctx.policy_changed(team_uid)
    return settings_view(after)


async def _setting_values(ctx: ControlContext, changes: Mapping[str, Any]) -> dict[str, Any]:
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
                value = validate.validate_endpoint_url(value, allow_http=ctx.settings.allow_http_endpoints,
                                                       field=name)
        except validate.InvalidValue as exc:
            raise invalid(exc) from None
        if spec.url:
            await check_egress(ctx, value, name)
        values[name] = spec.from_wire(value)
    return values
