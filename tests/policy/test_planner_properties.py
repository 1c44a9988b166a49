"""Hypothesis properties of plan_routes: they must hold for every generated policy, actor and request."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byollm.catalog import load_catalog
from byollm.errors import ByollmError, ErrorClass, NoRouteError
from byollm.policy import plan_routes
from byollm.policy.types import (
    Actor,
    ActorKind,
    Agent,
    AvailableCredentials,
    BedrockHostConfig,
    BillingBucket,
    CredentialSource,
    CreditState,
    DropCause,
    Host,
    ModelPolicy,
    ModelRouting,
    RoutePlan,
    RouteRequest,
    TeamPolicy,
    TeamSettings,
)

CATALOG = load_catalog()
MODEL_IDS = list(CATALOG.models)
NAMES = [*MODEL_IDS, "opus", "sonnet", "haiku", "gemini-pro", "auto", "AUTO", "no-such-model"]
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-north-1", "ap-south-1", "ap-southeast-2", "sa-east-1"]
OVERRIDES = [
    None,
    "us.anthropic.claude-opus-4-7-v1:0",
    "eu.anthropic.claude-sonnet-4-6-v1:0",
    "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/abc123def456",
]
ROLES = [None, "arn:aws:iam::111122223333:role/team"]
AGENT_ROLES = [None, "arn:aws:iam::111122223333:role/agent"]
DIRECT_HOSTS = [Host.ANTHROPIC, Host.OPENAI, Host.GOOGLE]
ALLOWED_ERRORS = {
    ErrorClass.INVALID_REQUEST,
    ErrorClass.MODEL_NOT_FOUND,
    ErrorClass.MODEL_NOT_ALLOWED,
    ErrorClass.AUTO_DISABLED,
    ErrorClass.REGION_MODEL_MISMATCH,
}
_MOSTLY_OFF = [False, False, False, True]
_MOSTLY_ON = [True, True, True, False]
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Case:
    policy: TeamPolicy
    request: RouteRequest
    actor: Actor
    credentials: AvailableCredentials
    credits: CreditState

    def run(self) -> RoutePlan:
        return plan_routes(
            self.policy,
            CATALOG,
            self.request,
            actor=self.actor,
            credentials=self.credentials,
            credits=self.credits,
        )

    def outcome(self) -> RoutePlan | ByollmError:
        try:
            return self.run()
        except ByollmError as exc:
            if exc.error_class not in ALLOWED_ERRORS:
                raise
            return exc


@st.composite
def cases(draw: st.DrawFn, force_model: str | None = None) -> Case:
    configured = draw(st.lists(st.sampled_from(MODEL_IDS), unique=True, min_size=1))
    routes = {
        m: ModelRouting(
            m,
            bedrock=draw(st.booleans()),
            direct=draw(st.sampled_from(_MOSTLY_ON)),
            inference_profile=draw(st.sampled_from(OVERRIDES)),
        )
        for m in configured
    }
    fallback = draw(st.lists(st.sampled_from([*MODEL_IDS, "retired-model"]), unique=True, max_size=6))
    agents = [
        Agent(
            uid=f"agent{i}".ljust(22, "x"),
            name=f"agent{i}",
            role_arn_override=draw(st.sampled_from(AGENT_ROLES)),
            default_model=draw(st.sampled_from([None, *MODEL_IDS])),
        )
        for i in range(draw(st.integers(0, 2)))
    ]
    policy = TeamPolicy(
        team_uid="T" * 22,
        settings=TeamSettings(byok_allowed=draw(st.booleans()),
                              credentialless_direct_allowed=draw(st.booleans())),
        models=ModelPolicy(
            routes=MappingProxyType(routes),
            direct_api_disabled=draw(st.sampled_from(_MOSTLY_OFF)),
            fallback_order=tuple(fallback),
        ),
        bedrock=BedrockHostConfig(
            region=draw(st.sampled_from(REGIONS)), role_arn=draw(st.sampled_from(ROLES))
        ),
        agents=MappingProxyType({a.uid: a for a in agents}),
    )
    kind = draw(st.sampled_from(list(ActorKind)))
    agent_uid = draw(st.sampled_from([None, "unknown-agent", *(a.uid for a in agents)]))
    if kind is ActorKind.INTERACTIVE_USER:
        agent_uid = None
    actor = Actor(kind, principal_uid="U" * 22, agent_uid=agent_uid)
    # Mostly ask for a configured model, so most examples reach a plan rather than a policy refusal.
    names = st.sampled_from(NAMES)
    request = RouteRequest(
        model=force_model or draw(st.one_of(st.sampled_from(configured), st.sampled_from(configured), names)),
        stream=draw(st.booleans()),
        estimated_input_tokens=draw(
            st.sampled_from([0, 500, 20_000, 150_000, 190_000, 250_000, 380_000, 2_000_000])
        ),
        max_output_tokens=draw(st.sampled_from([0, 512, 4_096, 40_000, 70_000, 100_000])),
        uses_tools=draw(st.booleans()),
    )
    credentials = AvailableCredentials(
        delegated_session=draw(st.booleans()),
        byok_providers=frozenset(draw(st.lists(st.sampled_from(DIRECT_HOSTS), unique=True))),
        operator_keys=draw(
            st.one_of(st.none(), st.lists(st.sampled_from(DIRECT_HOSTS), unique=True).map(frozenset))
        ),
    )
    return Case(policy, request, actor, credentials, CreditState(ai_credits_available=draw(st.booleans())))


def _planned(case: Case) -> RoutePlan | None:
    outcome = case.outcome()
    return outcome if isinstance(outcome, RoutePlan) else None


@PROPERTY_SETTINGS
@given(cases())
def test_no_disabled_route_appears(case: Case) -> None:
    plan = _planned(case)
    if plan is None:
        return
    models = case.policy.models
    for c in plan.candidates:
        if c.host is Host.BEDROCK:
            assert models.bedrock_enabled(c.model)
        else:
            assert not models.direct_api_disabled
            assert models.routing(c.model).direct
            assert c.host.value == CATALOG.models[c.model].provider
        if c.credential is CredentialSource.BYOK:
            assert case.policy.settings.byok_allowed
            assert c.host in case.credentials.byok_providers


@PROPERTY_SETTINGS
@given(cases())
def test_bedrock_precedes_direct_and_byok_precedes_operator_for_the_same_model(case: Case) -> None:
    plan = _planned(case)
    if plan is None:
        return
    rank = {
        CredentialSource.DELEGATED_SESSION: 0,
        CredentialSource.WEB_IDENTITY: 0,
        CredentialSource.BYOK: 1,
        CredentialSource.OPERATOR_KEY: 2,
    }
    for model in {c.model for c in plan.candidates}:
        order = [rank[c.credential] for c in plan.candidates if c.model == model]
        assert order == sorted(order)
        assert len(order) == len(set(order))  # each route once
        hosts = [c.host for c in plan.candidates if c.model == model]
        assert hosts == sorted(hosts, key=lambda h: h is not Host.BEDROCK)


@PROPERTY_SETTINGS
@given(st.one_of(cases(), cases(force_model="auto")))
def test_auto_is_refused_whenever_any_direct_model_is_disabled(case: Case) -> None:
    outcome = case.outcome()
    is_auto = case.request.model.strip().lower() == "auto"
    refused = isinstance(outcome, ByollmError) and outcome.error_class is ErrorClass.AUTO_DISABLED
    assert refused == (is_auto and case.policy.models.any_direct_disabled)
    if is_auto and isinstance(outcome, RoutePlan):
        assert outcome.auto_reason
        assert outcome.model in outcome.auto_reason
    if not is_auto and isinstance(outcome, RoutePlan):
        assert outcome.auto_reason is None


@PROPERTY_SETTINGS
@given(cases())
def test_override_wins_over_the_default_profile(case: Case) -> None:
    plan = _planned(case)
    if plan is None:
        return
    region = case.policy.bedrock.region
    for c in plan.candidates:
        if c.host is Host.BEDROCK:
            override = case.policy.models.routing(c.model).inference_profile
            expected = override or CATALOG.default_bedrock_upstream(c.model, region)
            assert c.upstream_model_id == expected
            assert c.region == region


@PROPERTY_SETTINGS
@given(cases())
def test_model_absent_from_region_never_gets_a_bedrock_route(case: Case) -> None:
    plan = _planned(case)
    if plan is None:
        return
    offered = CATALOG.bedrock_models_in(case.policy.bedrock.region)
    for c in plan.candidates:
        if c.host is Host.BEDROCK:
            assert c.model in offered


@PROPERTY_SETTINGS
@given(cases())
def test_no_operator_paid_route_without_credits(case: Case) -> None:
    plan = _planned(case)
    if plan is None:
        return
    for c in plan.candidates:
        assert (c.billing is BillingBucket.AI_CREDITS) == (c.credential is CredentialSource.OPERATOR_KEY)
        if not case.credits.ai_credits_available:
            assert c.billing is not BillingBucket.AI_CREDITS
        if c.credential is CredentialSource.OPERATOR_KEY and case.credentials.operator_keys is not None:
            assert c.host in case.credentials.operator_keys


@PROPERTY_SETTINGS
@given(cases())
def test_no_fallback_that_cannot_fit_the_request(case: Case) -> None:
    plan = _planned(case)
    if plan is None:
        return
    r = case.request
    for c in plan.candidates:
        if c.model != plan.model:
            assert CATALOG.models[c.model].fits(r.estimated_input_tokens, r.max_output_tokens, r.uses_tools)


@PROPERTY_SETTINGS
@given(cases())
def test_models_follow_primary_then_fallback_order(case: Case) -> None:
    plan = _planned(case)
    if plan is None:
        return
    chain = [plan.model, *(m for m in case.policy.models.fallback_order if m != plan.model)]
    seen = [
        m
        for i, m in enumerate(c.model for c in plan.candidates)
        if i == 0 or plan.candidates[i - 1].model != m
    ]
    assert len(seen) == len(set(seen))  # each model's routes are contiguous
    assert seen == [m for m in chain if m in seen]


@PROPERTY_SETTINGS
@given(cases())
def test_bedrock_credential_matches_the_actor(case: Case) -> None:
    plan = _planned(case)
    if plan is None:
        return
    agent = case.policy.agents.get(case.actor.agent_uid or "")
    for c in plan.candidates:
        if c.host is not Host.BEDROCK:
            assert c.role_arn is None
            assert c.region is None
            continue
        assert c.billing is BillingBucket.CUSTOMER_CLOUD
        if case.actor.kind is ActorKind.INTERACTIVE_USER:
            assert case.credentials.delegated_session
            assert (c.credential, c.role_arn) == (CredentialSource.DELEGATED_SESSION, None)
        else:
            expected_role = (agent.role_arn_override if agent else None) or case.policy.bedrock.role_arn
            assert expected_role is not None  # a cloud run with no role gets no Bedrock route
            assert (c.credential, c.role_arn) == (CredentialSource.WEB_IDENTITY, expected_role)


@PROPERTY_SETTINGS
@given(cases())
def test_errors_and_empty_plans_are_classified(case: Case) -> None:
    outcome = case.outcome()
    if isinstance(outcome, ByollmError):
        if (
            outcome.error_class is ErrorClass.MODEL_NOT_ALLOWED
            and case.request.model.strip().lower() != "auto"
        ):
            model = CATALOG.resolve(case.request.model)
            assert model is not None
            assert not any(c for c in _all_hosts_enabled(case, model.id))
        return
    if outcome.candidates:
        assert outcome.require_candidates() == outcome.candidates
        return
    with pytest.raises(ByollmError) as info:
        outcome.require_candidates()
    if isinstance(info.value, NoRouteError):
        assert info.value.error_class is ErrorClass.NO_FALLBACK_AVAILABLE
    elif info.value.error_class is ErrorClass.LOCAL_CREDENTIALS_MISSING:
        # only when a Bedrock route was lost for want of the user's session, and credits were not the issue
        assert not case.credentials.delegated_session
        assert any(d.cause is DropCause.NO_SESSION for d in outcome.dropped)
        assert not outcome.blocked_by_credits
    else:
        assert info.value.error_class is ErrorClass.CREDITS_EXHAUSTED
        assert not case.credits.ai_credits_available


def _all_hosts_enabled(case: Case, model_id: str) -> list[bool]:
    models = case.policy.models
    offered = model_id in CATALOG.bedrock_models_in(case.policy.bedrock.region)
    return [models.bedrock_enabled(model_id) and offered, models.direct_enabled(model_id)]


@PROPERTY_SETTINGS
@given(cases())
def test_planning_is_deterministic(case: Case) -> None:
    first, second = case.outcome(), case.outcome()
    if isinstance(first, ByollmError):
        assert isinstance(second, ByollmError)
        assert (first.error_class, first.detail) == (second.error_class, second.detail)
    else:
        assert first == second


def _bedrock_routed(case: Case, model_id: str) -> bool:
    """The team routes ``model_id`` through Bedrock: enabled there, offered in its region, and invocable."""
    policy = case.policy
    region = policy.bedrock.region
    model = CATALOG.models[model_id]
    return (policy.models.bedrock_enabled(model_id) and model.offered_on_bedrock_in(region)
            and (policy.models.routing(model_id).inference_profile
                 or CATALOG.default_bedrock_upstream(model_id, region)) is not None)


@PROPERTY_SETTINGS
@given(cases())
def test_a_credentialless_request_for_a_bedrock_routed_model_never_goes_direct_unless_allowed(case: Case) -> None:
    """Issue 16: a member's request without AWS credentials for a model the team serves through Bedrock
    gets no direct route (which would be paid silently) unless the team allows it; when it does, the lost
    Bedrock route is reported as the first, skipped choice."""
    outcome = case.outcome()
    if isinstance(outcome, ByollmError) or case.actor.kind is not ActorKind.INTERACTIVE_USER:
        return
    if case.credentials.delegated_session or not _bedrock_routed(case, outcome.model):
        assert not any(d.cause is DropCause.CREDENTIALLESS_DIRECT_REFUSED for d in outcome.dropped)
        return
    assert outcome.skipped_first and all(d.route.startswith("bedrock:") for d in outcome.skipped_first)
    if case.policy.settings.credentialless_direct_allowed:
        assert not any(d.cause is DropCause.CREDENTIALLESS_DIRECT_REFUSED for d in outcome.dropped)
        return
    # no Bedrock route without a session, and no route on the team's AI credits; only the user's own key
    assert all(c.billing is BillingBucket.USER_KEY for c in outcome.candidates)
    refused = [d for d in outcome.dropped if d.cause is DropCause.CREDENTIALLESS_DIRECT_REFUSED]
    assert all(d.host.is_direct and d.reason and d.credential is CredentialSource.OPERATOR_KEY for d in refused)
    if not outcome.candidates:
        with pytest.raises(ByollmError) as info:
            outcome.require_candidates()
        assert info.value.error_class in (ErrorClass.LOCAL_CREDENTIALS_MISSING, ErrorClass.CREDITS_EXHAUSTED)
