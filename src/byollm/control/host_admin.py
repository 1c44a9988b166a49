"""A team's Bedrock host configuration (region, endpoint URL, role to assume), changed through a typed
``BedrockChange``; a change that would break a role's partition or an inference-profile override is refused."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from byollm.catalog.types import partition_for_region
from byollm.control.authz import Action, Caller, require
from byollm.control.context import KEEP, ControlContext, Keep, check_egress, invalid
from byollm.control.policy_admin import team_policy
from byollm.control.views import BedrockView
from byollm.errors import ByollmError, ErrorClass
from byollm.policy import validate
from byollm.policy.types import BedrockHostConfig, TeamPolicy
from byollm.store import audit as audit_repo
from byollm.store import policy as policy_repo

__all__ = ["BedrockChange", "get_bedrock", "update_bedrock"]


@dataclass(frozen=True)
class BedrockChange:
    """A submitted host-config change: ``region`` ``None`` leaves it; ``KEEP`` leaves the endpoint URL or the
    role, while ``None`` or ``""`` clears them."""

    region: str | None = None
    endpoint_url: str | Keep | None = KEEP
    role_arn: str | Keep | None = KEEP

    @classmethod
    def from_mapping(cls, changes: Mapping[str, Any]) -> BedrockChange:
        return cls(region=changes.get("region"), endpoint_url=changes.get("endpoint_url", KEEP),
                   role_arn=changes.get("role_arn", KEEP))


async def get_bedrock(ctx: ControlContext, caller: Caller, team_uid: str) -> BedrockView:
    require(caller, Action.READ_TEAM, team_uid)
    policy, _ = await team_policy(ctx, team_uid)
    b = policy.bedrock
    return BedrockView(region=b.region, endpoint_url=b.endpoint_url, role_arn=b.role_arn)


async def update_bedrock(ctx: ControlContext, caller: Caller, team_uid: str, change: BedrockChange) -> BedrockView:
    require(caller, Action.MANAGE_TEAM, team_uid)
    try:
        values: dict[str, Any] = {}
        if change.region is not None:
            values["region"] = validate.validate_region(change.region)
        if not isinstance(change.endpoint_url, Keep):
            url = change.endpoint_url
            values["endpoint_url"] = None if not url else validate.validate_endpoint_url(
                url, allow_http=ctx.settings.allow_http_endpoints)
        if not isinstance(change.role_arn, Keep):
            arn = change.role_arn
            values["role_arn"] = None if not arn else validate.validate_role_arn(arn)
    except validate.InvalidValue as exc:
        raise invalid(exc) from None
    if values.get("endpoint_url"):
        await check_egress(ctx, values["endpoint_url"])
    async with ctx.store.session() as session:
        policy = await policy_repo.get_team_policy(session, team_uid=team_uid)
        after = replace(policy.bedrock, **values)
        _check_host(ctx, policy, after)
        await policy_repo.set_bedrock_host(session, team_uid=team_uid, config=after)
        await audit_repo.append_audit(session, actor_uid=caller.principal_uid, action="bedrock.update",
                                      target=team_uid, team_uid=team_uid, before=policy.bedrock, after=after)
    ctx.policy_changed(team_uid)
    return BedrockView(region=after.region, endpoint_url=after.endpoint_url, role_arn=after.role_arn)


def _check_host(ctx: ControlContext, policy: TeamPolicy, host: BedrockHostConfig) -> None:
    """Refuse a region change that would leave an inference-profile override unusable."""
    for arn in filter(None, [host.role_arn, *(a.role_arn_override for a in policy.agents.values())]):
        partition = validate.parse_role_arn(arn).partition
        if partition != partition_for_region(host.region):
            raise ByollmError(ErrorClass.INVALID_REQUEST,
                              f"region: role {arn} is in the {partition} partition, which does not contain"
                              f" {host.region}")
    for routing in policy.models.routes.values():
        model = ctx.catalog.get(routing.model)
        if model is None or not routing.inference_profile:
            continue
        problem = validate.override_problem(model, routing.inference_profile, host.region)
        if problem:
            raise ByollmError(ErrorClass.INVALID_REQUEST,
                              f"region: the inference-profile override for {model.id} would break ({problem});"
                              " change or clear it first")
