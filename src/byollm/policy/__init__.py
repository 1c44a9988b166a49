"""The pure policy layer: domain values, validators, UIDs, Auto and the route planner. No I/O here."""

from __future__ import annotations

from byollm.policy.auto import AUTO, AutoChoice, choose_auto, is_auto, model_enabled
from byollm.policy.ids import is_uid, new_uid
from byollm.policy.planner import plan_routes, require_candidates

__all__ = [
    "AUTO",
    "AutoChoice",
    "choose_auto",
    "is_auto",
    "is_uid",
    "model_enabled",
    "new_uid",
    "plan_routes",
    "require_candidates",
]
