"""A team's policy as one ``TeamPolicy`` value, and the writes that change it.

Why ``policy_version``: replicas cache ``TeamPolicy`` values (the hot path must not query per request).
Every write here and in ``agents`` increments ``teams.policy_version`` in the same transaction, with an
atomic ``UPDATE ... SET policy_version = policy_version + 1``, so comparing one integer per team
(``policy_versions``) tells a cache what to reload. Read the version before the policy: if a write lands in
between, the cache holds a newer policy under an older version and simply reloads it once more.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from byollm.policy.setting_fields import setting_specs, settings_from_values, settings_to_values
from byollm.policy.types import (
    Agent,
    BedrockHostConfig,
    ModelAlias,
    ModelPolicy,
    ModelRouting,
    TeamPolicy,
    TeamSettings,
)
from byollm.store import tables as t
from byollm.store.errors import NotFoundError

__all__ = [
    "apply_bedrock_host",
    "apply_settings",
    "bump_policy_version",
    "domain_agent",
    "get_policy_version",
    "get_team_policy",
    "get_validated_permissions",
    "policy_versions",
    "remove_model_routing",
    "set_bedrock_host",
    "set_model_policy",
    "set_model_routing",
    "set_team_settings",
    "set_validated_permissions",
]


def apply_settings(row: t.Team, settings: TeamSettings) -> None:
    """Copy ``TeamSettings`` onto a team row (no version bump: callers do that). Each setting is the team
    column of the same name; ``tests/store/test_setting_columns.py`` holds the two lists equal."""
    for name, value in settings_to_values(settings).items():
        setattr(row, name, value)


def apply_bedrock_host(row: t.Team, config: BedrockHostConfig) -> None:
    row.bedrock_region = config.region
    row.bedrock_endpoint_url = config.endpoint_url
    row.bedrock_role_arn = config.role_arn


def _settings(row: t.Team) -> TeamSettings:
    """The team's settings from its row; a NULL (a row older than the column) reads as the default."""
    return settings_from_values(TeamSettings, {spec.name: getattr(row, spec.name)
                                               for spec in setting_specs(TeamSettings)})


def domain_agent(row: t.Agent) -> Agent:
    return Agent(
        uid=row.uid,
        name=row.name,
        role_arn_override=row.role_arn_override,
        default_model=row.default_model,
        tools=tuple(str(x) for x in row.tools),
    )


async def _team_row(session: AsyncSession, team_uid: str) -> t.Team:
    row = await session.get(t.Team, team_uid)
    if row is None:
        raise NotFoundError("no such team", team_uid=team_uid)
    return row


async def bump_policy_version(session: AsyncSession, *, team_uid: str) -> int:
    """Atomically increment the team's policy version; return the new value."""
    version = await session.scalar(
        update(t.Team)
        .where(t.Team.uid == team_uid)
        .values(policy_version=t.Team.policy_version + 1)
        .returning(t.Team.policy_version)
        .execution_options(synchronize_session=False)
    )
    if version is None:
        raise NotFoundError("no such team", team_uid=team_uid)
    row = session.identity_map.get(session.identity_key(t.Team, (team_uid,)))  # keep loaded rows honest
    if isinstance(row, t.Team):
        session.expire(row, ["policy_version"])
    return int(version)


async def get_policy_version(session: AsyncSession, *, team_uid: str) -> int:
    version = await session.scalar(select(t.Team.policy_version).where(t.Team.uid == team_uid))
    if version is None:
        raise NotFoundError("no such team", team_uid=team_uid)
    return int(version)


async def policy_versions(session: AsyncSession) -> dict[str, int]:
    """Every team's policy version in one query, for cache invalidation across replicas."""
    rows = await session.execute(select(t.Team.uid, t.Team.policy_version))
    return {uid: int(version) for uid, version in rows}


async def get_team_policy(session: AsyncSession, *, team_uid: str) -> TeamPolicy:
    """Settings, model policy, Bedrock host config and live agents of a team, as one immutable value."""
    row = await _team_row(session, team_uid)
    routes = await session.scalars(
        select(t.ModelRoute).where(t.ModelRoute.team_uid == team_uid).order_by(t.ModelRoute.model)
    )
    agents = await session.scalars(
        select(t.Agent).where(t.Agent.team_uid == team_uid, t.Agent.deleted_at.is_(None)).order_by(t.Agent.name)
    )
    return TeamPolicy(
        team_uid=row.uid,
        settings=_settings(row),
        models=ModelPolicy(
            routes=MappingProxyType(
                {
                    r.model: ModelRouting(
                        model=r.model,
                        bedrock=r.bedrock,
                        inference_profile=r.inference_profile,
                        direct=r.direct,
                    )
                    for r in routes
                }
            ),
            direct_api_disabled=row.direct_api_disabled,
            fallback_order=tuple(str(m) for m in row.fallback_order),
            aliases=tuple(
                ModelAlias(pattern=str(a["pattern"]), target=str(a["target"]))
                for a in (row.model_aliases or [])
                if isinstance(a, dict) and "pattern" in a and "target" in a
            ),
        ),
        bedrock=BedrockHostConfig(
            region=row.bedrock_region, endpoint_url=row.bedrock_endpoint_url, role_arn=row.bedrock_role_arn
        ),
        agents=MappingProxyType({a.uid: domain_agent(a) for a in agents}),
    )


def _route_row(team_uid: str, routing: ModelRouting) -> t.ModelRoute:
    return t.ModelRoute(
        team_uid=team_uid,
        model=routing.model,
        bedrock=routing.bedrock,
        inference_profile=routing.inference_profile,
        direct=routing.direct,
    )


async def set_model_policy(session: AsyncSession, *, team_uid: str, policy: ModelPolicy) -> int:
    """Replace the team's whole model policy (routes, direct-API switch, fallback order)."""
    row = await _team_row(session, team_uid)
    for key, routing in policy.routes.items():
        if key != routing.model:
            raise ValueError(f"routes key {key!r} does not match its routing's model {routing.model!r}")
    await session.execute(delete(t.ModelRoute).where(t.ModelRoute.team_uid == team_uid))
    session.add_all(_route_row(team_uid, r) for r in policy.routes.values())
    row.direct_api_disabled = policy.direct_api_disabled
    row.fallback_order = list(policy.fallback_order)
    row.model_aliases = [{"pattern": a.pattern, "target": a.target} for a in policy.aliases]
    await session.flush()
    return await bump_policy_version(session, team_uid=team_uid)


async def set_model_routing(session: AsyncSession, *, team_uid: str, routing: ModelRouting) -> int:
    """Create or replace one model's routing."""
    await _team_row(session, team_uid)
    row = await session.get(t.ModelRoute, (team_uid, routing.model))
    if row is None:
        session.add(_route_row(team_uid, routing))
    else:
        row.bedrock = routing.bedrock
        row.inference_profile = routing.inference_profile
        row.direct = routing.direct
    await session.flush()
    return await bump_policy_version(session, team_uid=team_uid)


async def remove_model_routing(session: AsyncSession, *, team_uid: str, model: str) -> int:
    """Forget one model's routing (the model becomes unconfigured, i.e. not routable)."""
    row = await session.get(t.ModelRoute, (team_uid, model))
    if row is None:
        raise NotFoundError("no routing for this model", team_uid=team_uid, model=model)
    await session.delete(row)
    await session.flush()
    return await bump_policy_version(session, team_uid=team_uid)


async def set_team_settings(session: AsyncSession, *, team_uid: str, settings: TeamSettings) -> int:
    row = await _team_row(session, team_uid)
    apply_settings(row, settings)
    await session.flush()
    return await bump_policy_version(session, team_uid=team_uid)


async def set_bedrock_host(session: AsyncSession, *, team_uid: str, config: BedrockHostConfig) -> int:
    row = await _team_row(session, team_uid)
    apply_bedrock_host(row, config)
    await session.flush()
    return await bump_policy_version(session, team_uid=team_uid)


async def set_validated_permissions(session: AsyncSession, *, team_uid: str, record: Mapping[str, Any] | None) -> None:
    """Keep what the doctor's last passing permissions check validated (``iam.coverage``); no version bump:
    the planner does not read it."""
    row = await _team_row(session, team_uid)
    row.validated_permissions = dict(record) if record is not None else None


async def get_validated_permissions(session: AsyncSession, *, team_uid: str) -> dict[str, Any] | None:
    row = await _team_row(session, team_uid)
    return dict(row.validated_permissions) if row.validated_permissions else None
