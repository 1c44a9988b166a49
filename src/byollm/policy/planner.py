"""The route planner: turn one request into the ordered routes the gateway should try, and why others fell.

``plan_routes`` is pure (no I/O, no clock, no globals) and cheap: the gateway calls it on every request with
a catalog whose indexes were built once at start.

Order of the plan::

    requested model (or Auto's choice)      fallback models, in the admin's fallback_order
      1. Bedrock                              each expanded the same way, after skipping any that
      2. direct API with the user's key         cannot hold the request (context window, output
      3. direct API with the operator's key     limit, tools)

Rules, each one checked where the route is built:

- Bedrock-eligible = offered on Bedrock in the team's region (catalog) AND enabled for Bedrock by the admin.
  Its upstream id is the admin's override if set, else the catalog default (global profile, else the
  geography's profile, else the on-demand model id).
- Bedrock credentials depend on the actor: an interactive user's delegated session (none sent: dropped, and
  when the requested model is one the team serves through Bedrock, every operator-paid route of the plan is
  dropped too unless the team set ``credentialless_direct_allowed``: a tool that forgot the session must not
  quietly run on the team's AI credits; the user's own key, sent on purpose, still serves);
  a cloud run, user- or agent-triggered, uses web identity with the named agent's role override, else the
  team role (neither: dropped).
- Direct routes need the model enabled for the direct API and the team's direct-API switch on; the switch
  also disables BYOK. A BYOK route needs ``byok_allowed`` and a key for that provider and is billed to the
  user's key; the operator's key is billed to AI credits and dropped when the team has none left.
- A disabled route never appears as a candidate; every route the policy enables but something else ruled
  out is listed in ``plan.dropped`` with a reason.

Errors raised here (the request cannot be planned at all):

- ``model_not_found``: a name that is no alias, no catalog name and no Claude family the team enables
  (``policy.names`` resolves names), naming the models the team can use;
- ``invalid_request``: negative sizes, or Auto with no enabled model large enough;
- ``model_not_allowed``: a known model the team enables on no host;
- ``region_model_mismatch``: enabled only for Bedrock, but not offered in the team's region;
- ``auto_disabled``: Auto while any direct model is disabled.

A plan with no candidates is returned, not raised: ``plan.require_candidates()`` raises
``credits_exhausted`` when credits were the reason, else ``no_fallback_available``.
"""

from __future__ import annotations

from dataclasses import dataclass

from byollm.catalog.types import Catalog, CatalogModel
from byollm.errors import ByollmError, ErrorClass
from byollm.policy.auto import choose_auto, is_auto, model_enabled
from byollm.policy.names import Resolution, enabled_model_ids, resolve_model_name
from byollm.policy.types import (
    Actor,
    ActorKind,
    AvailableCredentials,
    BillingBucket,
    CredentialSource,
    CreditState,
    DropCause,
    DroppedRoute,
    Host,
    RouteCandidate,
    RoutePlan,
    RouteRequest,
    TeamPolicy,
)

__all__ = ["plan_routes", "require_candidates"]


@dataclass(frozen=True, slots=True)
class _BedrockAccess:
    """The Bedrock credential for this actor, or why there is none (decided once per plan)."""

    credential: CredentialSource
    role_arn: str | None = None
    missing: DropCause | None = None
    reason: str = ""


def _bedrock_access(policy: TeamPolicy, actor: Actor, credentials: AvailableCredentials) -> _BedrockAccess:
    if actor.kind is ActorKind.INTERACTIVE_USER:
        if credentials.delegated_session:
            return _BedrockAccess(CredentialSource.DELEGATED_SESSION)
        return _BedrockAccess(
            CredentialSource.DELEGATED_SESSION,
            missing=DropCause.NO_SESSION,
            reason="no AWS session credentials came with the request (run `aws login`, then retry)",
        )
    agent = policy.agents.get(actor.agent_uid) if actor.agent_uid is not None else None
    role = (agent.role_arn_override if agent is not None else None) or policy.bedrock.role_arn
    if role is None:
        whose = f"agent {agent.name!r} nor the team" if agent is not None else "the team"
        return _BedrockAccess(
            CredentialSource.WEB_IDENTITY,
            missing=DropCause.NO_ROLE,
            reason=f"cloud runs need an IAM role ARN and neither {whose} has one configured",
        )
    return _BedrockAccess(CredentialSource.WEB_IDENTITY, role_arn=role)


@dataclass(slots=True)
class _Planner:
    """One planning call's inputs, with the actor's Bedrock access decided once for every model."""

    policy: TeamPolicy
    catalog: Catalog
    request: RouteRequest
    credentials: AvailableCredentials
    credits: CreditState
    bedrock: _BedrockAccess
    refuse_direct: str | None = None  # a credential-less request for this Bedrock-routed model (module doc)

    def bedrock_upstream(self, model: CatalogModel) -> str | None:
        """The id a Bedrock route of ``model`` would send, or None when the team's policy gives it none."""
        region = self.policy.bedrock.region
        if not self.policy.models.bedrock_enabled(model.id) or not model.offered_on_bedrock_in(region):
            return None
        return self.policy.models.routing(model.id).inference_profile or self.catalog.default_bedrock_upstream(
            model.id, region
        )

    def routes(self, model: CatalogModel) -> tuple[list[RouteCandidate], list[DroppedRoute]]:
        """Every enabled route of one model in Bedrock -> BYOK -> operator order, and the dropped ones."""
        out: list[RouteCandidate] = []
        dropped: list[DroppedRoute] = []
        self._bedrock_route(model, out, dropped)
        self._direct_routes(model, out, dropped)
        return out, dropped

    def _bedrock_route(
        self, model: CatalogModel, out: list[RouteCandidate], dropped: list[DroppedRoute]
    ) -> None:
        policy = self.policy
        region = policy.bedrock.region
        offered = model.offered_on_bedrock_in(region)
        if not policy.models.bedrock_enabled(model.id):
            if offered:
                dropped.append(
                    DroppedRoute(
                        model.id,
                        Host.BEDROCK,
                        "not enabled for Bedrock by the team's policy",
                        DropCause.NOT_ENABLED,
                    )
                )
            return
        if not offered:
            where = f"in {region}" if model.bedrock is not None else "at all"
            dropped.append(
                DroppedRoute(
                    model.id, Host.BEDROCK, f"not offered on Bedrock {where}", DropCause.NOT_IN_REGION
                )
            )
            return
        upstream = policy.models.routing(model.id).inference_profile or self.catalog.default_bedrock_upstream(
            model.id, region
        )
        if upstream is None:
            dropped.append(
                DroppedRoute(
                    model.id,
                    Host.BEDROCK,
                    f"no inference profile or on-demand id serves {region};"
                    " set an inference-profile override",
                    DropCause.NO_PROFILE,
                )
            )
            return
        access = self.bedrock
        if access.missing is not None:
            dropped.append(
                DroppedRoute(
                    model.id, Host.BEDROCK, access.reason, access.missing, access.credential, upstream
                )
            )
            return
        out.append(
            RouteCandidate(
                model=model.id,
                host=Host.BEDROCK,
                upstream_model_id=upstream,
                credential=access.credential,
                billing=BillingBucket.CUSTOMER_CLOUD,
                region=region,
                role_arn=access.role_arn,
            )
        )

    def _direct_routes(
        self, model: CatalogModel, out: list[RouteCandidate], dropped: list[DroppedRoute]
    ) -> None:
        policy = self.policy
        host = Host(model.provider)
        if policy.models.direct_api_disabled:
            dropped.append(
                DroppedRoute(
                    model.id,
                    host,
                    "the team disabled every direct-API model (and BYOK)",
                    DropCause.DIRECT_DISABLED,
                )
            )
            return
        if not policy.models.routing(model.id).direct:
            dropped.append(
                DroppedRoute(
                    model.id,
                    host,
                    "not enabled for the direct API by the team's policy",
                    DropCause.NOT_ENABLED,
                )
            )
            return
        if host in self.credentials.byok_providers:
            if policy.settings.byok_allowed:
                out.append(
                    RouteCandidate(
                        model.id, host, model.direct_model_id, CredentialSource.BYOK, BillingBucket.USER_KEY
                    )
                )
            else:
                dropped.append(
                    DroppedRoute(
                        model.id,
                        host,
                        "the team does not allow your own provider keys",
                        DropCause.BYOK_NOT_ALLOWED,
                        CredentialSource.BYOK,
                    )
                )
        operator_keys = self.credentials.operator_keys
        if self.refuse_direct:
            dropped.append(
                DroppedRoute(
                    model.id,
                    host,
                    f"the request carried no AWS credentials and the team serves {self.refuse_direct} through"
                    " Bedrock; it does not serve such requests on its AI credits",
                    DropCause.CREDENTIALLESS_DIRECT_REFUSED,
                    CredentialSource.OPERATOR_KEY,
                )
            )
        elif operator_keys is not None and host not in operator_keys:
            dropped.append(
                DroppedRoute(
                    model.id,
                    host,
                    f"the operator has no {host.value} API key",
                    DropCause.NO_OPERATOR_KEY,
                    CredentialSource.OPERATOR_KEY,
                )
            )
        elif not self.credits.ai_credits_available:
            dropped.append(
                DroppedRoute(
                    model.id,
                    host,
                    "the team has no AI credits left for operator-paid routes",
                    DropCause.NO_CREDITS,
                    CredentialSource.OPERATOR_KEY,
                )
            )
        else:
            out.append(
                RouteCandidate(
                    model.id,
                    host,
                    model.direct_model_id,
                    CredentialSource.OPERATOR_KEY,
                    BillingBucket.AI_CREDITS,
                )
            )

    def does_not_fit(self, model: CatalogModel) -> list[DroppedRoute]:
        """Drop entries for a fallback too small for the request: one per host the team enables it on."""
        request = self.request
        if model.fits(request.estimated_input_tokens, request.max_output_tokens, request.uses_tools):
            return []
        if request.uses_tools and not model.supports_tools:
            why = "fallback skipped: it does not support tools"
        else:
            why = (
                f"fallback skipped: about {request.estimated_input_tokens} input"
                f" + {request.max_output_tokens} output tokens do not fit"
                f" (context window {model.context_window}, output limit {model.max_output_tokens})"
            )
        hosts = []
        if self.policy.models.bedrock_enabled(model.id) and model.offered_on_bedrock_in(
            self.policy.bedrock.region
        ):
            hosts.append(Host.BEDROCK)
        if self.policy.models.direct_enabled(model.id):
            hosts.append(Host(model.provider))
        return [DroppedRoute(model.id, h, why, DropCause.DOES_NOT_FIT) for h in hosts]


def _check_request(request: RouteRequest) -> None:
    if request.estimated_input_tokens < 0 or request.max_output_tokens < 0:
        raise ByollmError(ErrorClass.INVALID_REQUEST, "token counts cannot be negative")


_NAMED_AT_MOST = 20


def _resolve_requested(policy: TeamPolicy, catalog: Catalog, name: str) -> Resolution:
    resolution = resolve_model_name(policy, catalog, name)
    if resolution is None:
        usable = enabled_model_ids(policy, catalog)
        shown = ", ".join(usable[:_NAMED_AT_MOST]) + (" and more" if len(usable) > _NAMED_AT_MOST else "")
        raise ByollmError(
            ErrorClass.MODEL_NOT_FOUND,
            f"unknown model {name[:100]!r}; your team can use: {shown or 'no model yet'}",
            model=name[:100],
            available=usable,
        )
    model = resolution.model
    if not model_enabled(policy, model):
        region = policy.bedrock.region
        if policy.models.bedrock_enabled(model.id) and not policy.models.direct_enabled(model.id):
            raise ByollmError(
                ErrorClass.REGION_MODEL_MISMATCH,
                f"{model.id} is enabled only through Bedrock, and Bedrock does not offer it in {region}",
                model=model.id,
                region=region,
            )
        raise ByollmError(
            ErrorClass.MODEL_NOT_ALLOWED,
            f"{model.id} is not enabled for this team"
            + (" (direct-API models are disabled)" if policy.models.direct_api_disabled else ""),
            model=model.id,
        )
    return resolution


def plan_routes(
    policy: TeamPolicy,
    catalog: Catalog,
    request: RouteRequest,
    *,
    actor: Actor,
    credentials: AvailableCredentials,
    credits: CreditState,
) -> RoutePlan:
    """Plan the ordered routes for ``request``; see the module docstring for the rules and errors.

    An empty ``request.model`` on a named agent's run means that agent's default model.
    """
    _check_request(request)
    planner = _Planner(
        policy, catalog, request, credentials, credits, _bedrock_access(policy, actor, credentials)
    )
    name = request.model.strip()
    if not name and actor.agent_uid is not None:
        agent = policy.agents.get(actor.agent_uid)
        name = (agent.default_model or "") if agent is not None else ""
    if not name:
        raise ByollmError(ErrorClass.INVALID_REQUEST, "the request names no model")

    auto_reason: str | None = None
    resolved_via = "auto"
    if is_auto(name):
        choice = choose_auto(policy, catalog, request, usable=lambda m: bool(planner.routes(m)[0]))
        primary = catalog.models[choice.model]
        auto_reason = choice.reason
    else:
        resolution = _resolve_requested(policy, catalog, name)
        primary = resolution.model
        resolved_via = resolution.label

    if (
        planner.bedrock.missing is DropCause.NO_SESSION
        and not policy.settings.credentialless_direct_allowed
        and planner.bedrock_upstream(primary) is not None
    ):
        planner.refuse_direct = primary.id
    candidates, dropped = planner.routes(primary)
    seen = {primary.id}
    for model_id in policy.models.fallback_order:
        if model_id in seen:
            continue
        seen.add(model_id)
        model = catalog.get(model_id)
        if model is None:
            continue  # a model the catalog no longer has; the admin API refuses new ones
        misfit = planner.does_not_fit(model) if model_enabled(policy, model) else []
        if misfit:
            dropped.extend(misfit)
            continue
        routes, lost = planner.routes(model)
        candidates.extend(routes)
        dropped.extend(lost)
    return RoutePlan(
        requested_model=request.model,
        model=primary.id,
        candidates=tuple(candidates),
        dropped=tuple(dropped),
        auto_reason=auto_reason,
        resolved_via=resolved_via,
    )


def require_candidates(plan: RoutePlan) -> tuple[RouteCandidate, ...]:
    """Same as ``plan.require_candidates()``: the candidates, else raise the error for an empty plan."""
    return plan.require_candidates()
