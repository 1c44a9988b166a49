"""Auto model selection: pick the best enabled model for a request, deterministically, and say why.

Rules (product spec, "Does BYOLLM work with Auto?"):

- Auto is refused (``auto_disabled``) whenever the admin disabled ANY direct-API model, whatever the Bedrock
  configuration: a team that restricts direct access has made model choice a policy matter.
- Otherwise Auto considers every model the team enables (Bedrock-eligible in the team's region, or enabled
  through the direct API) that can serve the request's shape (context window and output limit for the
  estimated size; tool support when tools are used), and ranks them by, in order:

  1. usable now: the model has at least one route with this request's credentials and credits;
  2. headroom: the request needs at most 80% of the context window (sizes are estimates);
  3. task fit: tool use prefers ``agentic`` models; a small tool-less request (input <= 4,000 and output
     <= 1,024 tokens) prefers ``fast`` models; anything else has no preference;
  4. quality rank (1 is best);
  5. Bedrock-eligible first (the team's own cloud, no AI credits);
  6. catalog order.

  Streaming does not change the choice: every catalog model streams.

The planner then expands the chosen model like any other (Bedrock first when it is Bedrock-eligible).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from byollm.catalog.types import Catalog, CatalogModel
from byollm.errors import ByollmError, ErrorClass
from byollm.policy.types import RouteRequest, TeamPolicy

__all__ = [
    "AUTO",
    "QUICK_MAX_INPUT_TOKENS",
    "QUICK_MAX_OUTPUT_TOKENS",
    "AutoChoice",
    "choose_auto",
    "is_auto",
    "model_enabled",
]

AUTO = "auto"
QUICK_MAX_INPUT_TOKENS = 4_000
QUICK_MAX_OUTPUT_TOKENS = 1_024
_HEADROOM = 0.8


def is_auto(name: str) -> bool:
    return name.strip().lower() == AUTO


@dataclass(frozen=True, slots=True)
class AutoChoice:
    model: str  # catalog id
    reason: str


def model_enabled(policy: TeamPolicy, model: CatalogModel) -> bool:
    """Whether the team enables ``model`` on at least one host it can actually use.

    Bedrock counts only when the model is also offered in the team's region (the two-list rule).
    """
    bedrock = policy.models.bedrock_enabled(model.id) and model.offered_on_bedrock_in(policy.bedrock.region)
    return bedrock or policy.models.direct_enabled(model.id)


def _direct_disabled_detail(policy: TeamPolicy) -> str:
    if policy.models.direct_api_disabled:
        return "Auto is off because the team disabled every direct-API model; choose a specific model"
    names = sorted(r.model for r in policy.models.routes.values() if not r.direct)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"Auto is off because the team disabled direct-API access for {shown}; choose a specific model"


def _task(request: RouteRequest) -> tuple[str | None, str]:
    """The tag this request's shape prefers, and how to say so."""
    if request.uses_tools:
        return "agentic", "the request uses tools, so agentic models rank first"
    if (
        request.estimated_input_tokens <= QUICK_MAX_INPUT_TOKENS
        and request.max_output_tokens <= QUICK_MAX_OUTPUT_TOKENS
    ):
        return "fast", "the request is small, so fast models rank first"
    return None, "no task preference, so quality decides"


def choose_auto(
    policy: TeamPolicy,
    catalog: Catalog,
    request: RouteRequest,
    *,
    usable: Callable[[CatalogModel], bool],
) -> AutoChoice:
    """Choose the model Auto serves this request with; ``usable`` says whether a model has any route now.

    Raises ``auto_disabled`` when any direct model is disabled, ``model_not_allowed`` when the team enables
    no model, and ``invalid_request`` when no enabled model can hold the request.
    """
    if policy.models.any_direct_disabled:
        raise ByollmError(ErrorClass.AUTO_DISABLED, _direct_disabled_detail(policy))
    enabled = [m for m in catalog.models.values() if model_enabled(policy, m)]
    if not enabled:
        raise ByollmError(ErrorClass.MODEL_NOT_ALLOWED, "Auto has no model to choose: the team enables none")
    needed = request.estimated_input_tokens + request.max_output_tokens
    fitting = [
        m
        for m in enabled
        if m.fits(request.estimated_input_tokens, request.max_output_tokens, request.uses_tools)
    ]
    if not fitting:
        largest = max(m.context_window for m in enabled)
        tools = " with tools" if request.uses_tools else ""
        raise ByollmError(
            ErrorClass.INVALID_REQUEST,
            f"no enabled model can serve a request of about {needed} tokens{tools}"
            f" (the largest enabled context window is {largest} tokens); shorten the request",
        )
    tag, task_text = _task(request)
    region = policy.bedrock.region

    def rank(m: CatalogModel) -> tuple[bool, bool, bool, int, bool, int]:
        return (
            not usable(m),
            needed > m.context_window * _HEADROOM,
            tag is not None and tag not in m.tags,
            m.quality_rank,
            not (policy.models.bedrock_enabled(m.id) and m.offered_on_bedrock_in(region)),
            catalog.order(m.id),
        )

    best = min(fitting, key=rank)
    bedrock = policy.models.bedrock_enabled(best.id) and best.offered_on_bedrock_in(region)
    notes = [task_text]
    if not usable(best):
        notes.append("no enabled model has a usable route right now")
    via = "through Bedrock first" if bedrock else "through the direct API"
    reason = (
        f"Auto chose {best.display_name} ({best.id}) from {len(fitting)} enabled model(s) that fit about"
        f" {needed} tokens: {'; '.join(notes)}; it is the best ranked (quality rank {best.quality_rank}),"
        f" served {via}"
    )
    return AutoChoice(model=best.id, reason=reason)
