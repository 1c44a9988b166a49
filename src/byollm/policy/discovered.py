"""Which models discovered on the team's Bedrock the team may use, as routing entries the planner reads (pure).

The rule: a discovered Claude model (``catalog.discovery``) is enabled for Bedrock, and only Bedrock, when the
team's ``bedrock_model_discovery`` setting is on and the admin enables Bedrock for at least one shipped Claude
model. The admin already decided that the team's Claude traffic may run in its own AWS account, and the
customer's cloud admin decided, by granting model access there, that this model may; byollm adds no third
gate on the release day. An admin who wants one anyway turns the setting off (or aliases the name elsewhere).
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from byollm.catalog.types import Catalog
from byollm.policy.types import ModelRouting, TeamPolicy

__all__ = ["discovery_applies", "with_discovered"]


def discovery_applies(policy: TeamPolicy, catalog: Catalog) -> bool:
    """Whether models discovered on the team's Bedrock may be used at all (see the module docstring)."""
    if not policy.settings.bedrock_model_discovery:
        return False
    return any(
        m.provider == "anthropic" and not m.discovered and policy.models.bedrock_enabled(m.id) for m in catalog
    )


def with_discovered(policy: TeamPolicy, catalog: Catalog) -> TeamPolicy:
    """``policy`` with a Bedrock-only routing entry for each discovered model of ``catalog`` it may use.

    The entries say ``direct=False`` only because no direct id is known, not because an admin switched the
    direct API off: callers asking ``any_direct_disabled`` (Auto) must ask the policy before this.
    An entry the admin wrote for the same id wins (it cannot exist today: the admin API only names shipped
    models, but an operator's catalog file may add one later).
    """
    if not discovery_applies(policy, catalog):
        return policy
    routes = dict(policy.models.routes)
    added = False
    for model in catalog:
        if model.discovered and model.id not in routes:
            routes[model.id] = ModelRouting(model=model.id, bedrock=True)
            added = True
    if not added:
        return policy
    return replace(policy, models=replace(policy.models, routes=MappingProxyType(routes)))
