"""Table tests for each route-planning rule (the properties live in test_planner_properties.py)."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest
import yaml

from byollm.catalog import Catalog, load_catalog, parse_catalog_text
from byollm.errors import ByollmError, ErrorClass
from byollm.policy import plan_routes, require_candidates
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
TEAM_ROLE = "arn:aws:iam::111122223333:role/byollm-team"
AGENT_ROLE = "arn:aws:iam::111122223333:role/byollm-agent"
OPUS_GLOBAL = "global.anthropic.claude-opus-4-7-v1:0"
USER = Actor(ActorKind.INTERACTIVE_USER, "U" * 22)
SESSION = AvailableCredentials(delegated_session=True)


def team(
    *routes: ModelRouting,
    direct_disabled: bool = False,
    fallback: tuple[str, ...] = (),
    region: str = "us-east-1",
    role: str | None = TEAM_ROLE,
    agents: tuple[Agent, ...] = (),
    byok: bool = False,
) -> TeamPolicy:
    return TeamPolicy(
        team_uid="T" * 22,
        settings=TeamSettings(byok_allowed=byok),
        models=ModelPolicy(
            routes=MappingProxyType({r.model: r for r in routes}),
            direct_api_disabled=direct_disabled,
            fallback_order=fallback,
        ),
        bedrock=BedrockHostConfig(region=region, role_arn=role),
        agents=MappingProxyType({a.uid: a for a in agents}),
    )


def both(model: str, profile: str | None = None) -> ModelRouting:
    return ModelRouting(model, bedrock=True, direct=True, inference_profile=profile)


def plan(
    policy: TeamPolicy,
    model: str = "claude-opus-4-7",
    *,
    actor: Actor = USER,
    creds: AvailableCredentials = SESSION,
    credits: bool = True,
    catalog: Catalog = CATALOG,
    **request: object,
) -> RoutePlan:
    return plan_routes(
        policy,
        catalog,
        RouteRequest(model, **request),  # type: ignore[arg-type]
        actor=actor,
        credentials=creds,
        credits=CreditState(ai_credits_available=credits),
    )


def routes(p: RoutePlan) -> list[tuple[str, Host, CredentialSource]]:
    return [(c.model, c.host, c.credential) for c in p.candidates]


def causes(p: RoutePlan) -> set[tuple[str, Host, DropCause | None]]:
    return {(d.model, d.host, d.cause) for d in p.dropped}


# --- order ----------------------------------------------------------------------------------------------


def test_same_model_bedrock_then_byok_then_operator() -> None:
    p = plan(
        team(both("claude-opus-4-7"), byok=True),
        creds=AvailableCredentials(delegated_session=True, byok_providers=frozenset({Host.ANTHROPIC})),
    )
    assert routes(p) == [
        ("claude-opus-4-7", Host.BEDROCK, CredentialSource.DELEGATED_SESSION),
        ("claude-opus-4-7", Host.ANTHROPIC, CredentialSource.BYOK),
        ("claude-opus-4-7", Host.ANTHROPIC, CredentialSource.OPERATOR_KEY),
    ]
    bedrock, byok, operator = p.candidates
    assert (bedrock.upstream_model_id, bedrock.region, bedrock.billing) == (
        OPUS_GLOBAL,
        "us-east-1",
        BillingBucket.CUSTOMER_CLOUD,
    )
    assert (byok.upstream_model_id, byok.billing) == ("claude-opus-4-7", BillingBucket.USER_KEY)
    assert (operator.upstream_model_id, operator.billing) == ("claude-opus-4-7", BillingBucket.AI_CREDITS)
    assert bedrock.label == f"bedrock:{OPUS_GLOBAL}"
    assert p.model == "claude-opus-4-7"
    assert p.dropped == ()


def test_fallbacks_follow_in_admin_order_each_expanded() -> None:
    policy = team(
        both("claude-opus-4-7"),
        ModelRouting("gpt-5", direct=True),
        both("claude-haiku-4-5"),
        fallback=("gpt-5", "claude-opus-4-7", "claude-haiku-4-5"),
    )
    p = plan(policy, "opus")
    assert routes(p) == [
        ("claude-opus-4-7", Host.BEDROCK, CredentialSource.DELEGATED_SESSION),
        ("claude-opus-4-7", Host.ANTHROPIC, CredentialSource.OPERATOR_KEY),
        ("gpt-5", Host.OPENAI, CredentialSource.OPERATOR_KEY),
        ("claude-haiku-4-5", Host.BEDROCK, CredentialSource.DELEGATED_SESSION),
        ("claude-haiku-4-5", Host.ANTHROPIC, CredentialSource.OPERATOR_KEY),
    ]
    assert p.requested_model == "opus"


def test_unknown_fallback_id_is_ignored() -> None:
    p = plan(team(both("claude-opus-4-7"), fallback=("retired-model",)))
    assert [c.model for c in p.candidates] == ["claude-opus-4-7", "claude-opus-4-7"]


# --- Bedrock eligibility and upstream ids ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "region", "profile", "expected"),
    [
        ("claude-opus-4-7", "us-east-1", None, OPUS_GLOBAL),
        ("claude-opus-4-7", "eu-west-1", None, OPUS_GLOBAL),
        ("claude-opus-4-1", "us-east-2", None, "us.anthropic.claude-opus-4-1-20250805-v1:0"),
        (
            "claude-opus-4-7",
            "us-east-1",
            "us.anthropic.claude-opus-4-7-v1:0",
            "us.anthropic.claude-opus-4-7-v1:0",
        ),
        (
            "claude-opus-4-7",
            "us-east-1",
            "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/abc123def456",
            "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/abc123def456",
        ),
        (
            "claude-haiku-4-5",
            "eu-north-1",
            "anthropic.claude-haiku-4-5-20251001-v1:0",
            "anthropic.claude-haiku-4-5-20251001-v1:0",
        ),
    ],
)
def test_bedrock_upstream_default_and_override(
    model: str, region: str, profile: str | None, expected: str
) -> None:
    p = plan(team(both(model, profile), region=region), model)
    assert p.candidates[0].host is Host.BEDROCK
    assert p.candidates[0].upstream_model_id == expected
    assert p.candidates[0].region == region


@pytest.mark.parametrize(
    ("model", "region"),
    [("claude-opus-4-1", "eu-west-1"), ("claude-opus-4-7", "eu-north-1"), ("claude-sonnet-4-6", "sa-east-1")],
)
def test_model_absent_from_region_gets_no_bedrock_route(model: str, region: str) -> None:
    p = plan(team(both(model, f"us.{model}"), region=region), model)
    assert all(c.host is not Host.BEDROCK for c in p.candidates)
    assert (model, Host.BEDROCK, DropCause.NOT_IN_REGION) in causes(p)


def test_bedrock_only_model_outside_region_is_a_region_mismatch() -> None:
    with pytest.raises(ByollmError) as info:
        plan(team(ModelRouting("claude-opus-4-1", bedrock=True), region="eu-west-1"), "claude-opus-4-1")
    assert info.value.error_class is ErrorClass.REGION_MODEL_MISMATCH


def test_bedrock_enabled_for_direct_only_model_is_dropped() -> None:
    p = plan(team(ModelRouting("gpt-5", bedrock=True, direct=True)), "gpt-5")
    assert routes(p) == [("gpt-5", Host.OPENAI, CredentialSource.OPERATOR_KEY)]
    assert ("gpt-5", Host.BEDROCK, DropCause.NOT_IN_REGION) in causes(p)


def test_model_not_enabled_for_bedrock_has_no_bedrock_route() -> None:
    p = plan(team(ModelRouting("claude-opus-4-7", direct=True)))
    assert routes(p) == [("claude-opus-4-7", Host.ANTHROPIC, CredentialSource.OPERATOR_KEY)]
    assert ("claude-opus-4-7", Host.BEDROCK, DropCause.NOT_ENABLED) in causes(p)


def test_catalog_with_no_invocable_id_for_region_drops_bedrock() -> None:
    text = yaml.safe_dump(
        {
            "models": [
                {
                    "id": "acme",
                    "display_name": "Acme",
                    "direct": {"provider": "anthropic", "model_id": "acme"},
                    "bedrock": {
                        "foundation_model_id": "acme.a-v1:0",
                        "on_demand": False,
                        "regions": ["us-east-1", "eu-west-1"],
                        "profiles": {"us": {"regions": ["us-east-1"]}},
                    },
                    "context_window": 1000,
                    "max_output_tokens": 100,
                    "tools": True,
                    "price_per_mtok": {"input": 1, "output": 1},
                    "quality_rank": 1,
                }
            ]
        }
    )
    catalog = parse_catalog_text(text, "t.yaml")
    p = plan(team(both("acme"), region="eu-west-1"), "acme", catalog=catalog)
    assert ("acme", Host.BEDROCK, DropCause.NO_PROFILE) in causes(p)
    assert routes(p) == [("acme", Host.ANTHROPIC, CredentialSource.OPERATOR_KEY)]


# --- Bedrock credentials by actor -----------------------------------------------------------------------

AGENT = Agent(uid="A" * 22, name="triage", role_arn_override=AGENT_ROLE, default_model="claude-haiku-4-5")
PLAIN_AGENT = Agent(uid="B" * 22, name="plain")


@pytest.mark.parametrize(
    ("actor", "delegated", "team_role", "expected"),
    [
        (USER, True, TEAM_ROLE, (CredentialSource.DELEGATED_SESSION, None)),
        (USER, False, TEAM_ROLE, DropCause.NO_SESSION),  # the team role never serves an interactive user
        (Actor(ActorKind.USER_RUN, "U" * 22), False, TEAM_ROLE, (CredentialSource.WEB_IDENTITY, TEAM_ROLE)),
        (
            Actor(ActorKind.USER_RUN, "U" * 22, AGENT.uid),
            False,
            TEAM_ROLE,
            (CredentialSource.WEB_IDENTITY, AGENT_ROLE),
        ),
        (
            Actor(ActorKind.USER_RUN, "U" * 22, AGENT.uid),
            False,
            None,
            (CredentialSource.WEB_IDENTITY, AGENT_ROLE),
        ),
        (
            Actor(ActorKind.USER_RUN, "U" * 22, PLAIN_AGENT.uid),
            False,
            TEAM_ROLE,
            (CredentialSource.WEB_IDENTITY, TEAM_ROLE),
        ),
        (
            Actor(ActorKind.AGENT_RUN, AGENT.uid, AGENT.uid),
            True,
            TEAM_ROLE,
            (CredentialSource.WEB_IDENTITY, AGENT_ROLE),
        ),
        (
            Actor(ActorKind.AGENT_RUN, PLAIN_AGENT.uid, PLAIN_AGENT.uid),
            False,
            TEAM_ROLE,
            (CredentialSource.WEB_IDENTITY, TEAM_ROLE),
        ),
        (Actor(ActorKind.AGENT_RUN, PLAIN_AGENT.uid, PLAIN_AGENT.uid), False, None, DropCause.NO_ROLE),
        (Actor(ActorKind.USER_RUN, "U" * 22), True, None, DropCause.NO_ROLE),
    ],
)
def test_bedrock_credential_by_actor(
    actor: Actor,
    delegated: bool,
    team_role: str | None,
    expected: tuple[CredentialSource, str | None] | DropCause,
) -> None:
    policy = team(both("claude-opus-4-7"), role=team_role, agents=(AGENT, PLAIN_AGENT))
    p = plan(policy, actor=actor, creds=AvailableCredentials(delegated_session=delegated))
    bedrock = [c for c in p.candidates if c.host is Host.BEDROCK]
    if isinstance(expected, DropCause):
        assert bedrock == []
        assert ("claude-opus-4-7", Host.BEDROCK, expected) in causes(p)
        if expected is DropCause.NO_SESSION:  # issue 16: not served direct without the team's consent
            assert p.candidates == ()
        else:
            assert [c.host for c in p.candidates] == [Host.ANTHROPIC]  # a run without a role: direct serves
    else:
        assert [(c.credential, c.role_arn) for c in bedrock] == [expected]


def test_empty_model_on_agent_run_uses_agent_default() -> None:
    policy = team(both("claude-haiku-4-5"), agents=(AGENT,))
    p = plan(policy, "", actor=Actor(ActorKind.AGENT_RUN, AGENT.uid, AGENT.uid))
    assert p.model == "claude-haiku-4-5"


def test_empty_model_without_default_is_invalid() -> None:
    with pytest.raises(ByollmError) as info:
        plan(team(both("claude-haiku-4-5")), "  ")
    assert info.value.error_class is ErrorClass.INVALID_REQUEST


# --- direct routes, BYOK and credits --------------------------------------------------------------------


def test_direct_api_switch_disables_direct_and_byok() -> None:
    p = plan(
        team(both("claude-opus-4-7"), direct_disabled=True, byok=True),
        creds=AvailableCredentials(delegated_session=True, byok_providers=frozenset(Host)),
    )
    assert routes(p) == [("claude-opus-4-7", Host.BEDROCK, CredentialSource.DELEGATED_SESSION)]
    assert ("claude-opus-4-7", Host.ANTHROPIC, DropCause.DIRECT_DISABLED) in causes(p)


@pytest.mark.parametrize(
    ("byok_allowed", "keys", "expected", "dropped"),
    [
        (True, {Host.ANTHROPIC}, [CredentialSource.BYOK, CredentialSource.OPERATOR_KEY], None),
        (True, {Host.OPENAI}, [CredentialSource.OPERATOR_KEY], None),  # a key for another provider
        (True, set(), [CredentialSource.OPERATOR_KEY], None),
        (False, {Host.ANTHROPIC}, [CredentialSource.OPERATOR_KEY], DropCause.BYOK_NOT_ALLOWED),
    ],
)
def test_byok(
    byok_allowed: bool, keys: set[Host], expected: list[CredentialSource], dropped: DropCause | None
) -> None:
    p = plan(
        team(ModelRouting("claude-opus-4-7", direct=True), byok=byok_allowed),
        creds=AvailableCredentials(byok_providers=frozenset(keys)),
    )
    assert [c.credential for c in p.candidates] == expected
    assert {d.cause for d in p.dropped if d.host is not Host.BEDROCK} == ({dropped} if dropped else set())


def test_no_credits_no_operator_route_but_byok_and_bedrock_remain() -> None:
    p = plan(
        team(both("claude-opus-4-7"), byok=True),
        credits=False,
        creds=AvailableCredentials(delegated_session=True, byok_providers=frozenset({Host.ANTHROPIC})),
    )
    assert [c.credential for c in p.candidates] == [CredentialSource.DELEGATED_SESSION, CredentialSource.BYOK]
    assert ("claude-opus-4-7", Host.ANTHROPIC, DropCause.NO_CREDITS) in causes(p)
    assert not p.blocked_by_credits


def test_operator_keys_when_stated() -> None:
    p = plan(
        team(
            ModelRouting("claude-opus-4-7", direct=True),
            ModelRouting("gpt-5", direct=True),
            fallback=("gpt-5",),
        ),
        creds=AvailableCredentials(operator_keys=frozenset({Host.OPENAI})),
    )
    assert routes(p) == [("gpt-5", Host.OPENAI, CredentialSource.OPERATOR_KEY)]
    assert ("claude-opus-4-7", Host.ANTHROPIC, DropCause.NO_OPERATOR_KEY) in causes(p)


def test_require_candidates_credits_exhausted() -> None:
    p = plan(team(ModelRouting("claude-opus-4-7", direct=True)), credits=False)
    assert p.candidates == ()
    assert p.blocked_by_credits
    with pytest.raises(ByollmError) as info:
        p.require_candidates()
    assert info.value.error_class is ErrorClass.CREDITS_EXHAUSTED
    assert (
        "claude-opus-4-7@anthropic: the team has no AI credits left for operator-paid routes"
        in (info.value.context["dropped"])
    )


def test_require_candidates_no_fallback() -> None:
    p = plan(team(ModelRouting("claude-opus-4-7", bedrock=True)), creds=AvailableCredentials())
    assert p.candidates == ()
    with pytest.raises(ByollmError) as info:
        require_candidates(p)
    assert info.value.error_class is ErrorClass.LOCAL_CREDENTIALS_MISSING  # the user fixes it with `aws login`
    assert "no AWS session credentials" in info.value.context["dropped"][0]


def test_require_candidates_returns_candidates() -> None:
    p = plan(team(both("claude-opus-4-7")))
    assert p.require_candidates() == p.candidates


# --- fallbacks that cannot serve the request ------------------------------------------------------------


def test_fallback_too_small_is_skipped_with_reason() -> None:
    policy = team(
        ModelRouting("gpt-5", direct=True),
        both("claude-opus-4-7"),
        ModelRouting("gemini-2.5-pro", direct=True),
        fallback=("claude-opus-4-7", "gemini-2.5-pro"),
    )
    p = plan(policy, "gpt-5", estimated_input_tokens=250_000, max_output_tokens=8_000)
    assert [c.model for c in p.candidates] == ["gpt-5", "gemini-2.5-pro"]
    assert {(d.model, d.host, d.cause) for d in p.dropped} == {
        ("claude-opus-4-7", Host.BEDROCK, DropCause.DOES_NOT_FIT),
        ("claude-opus-4-7", Host.ANTHROPIC, DropCause.DOES_NOT_FIT),
    }


def test_fallback_output_limit_counts() -> None:
    policy = team(
        ModelRouting("gpt-5", direct=True),
        ModelRouting("claude-opus-4-1", direct=True),
        fallback=("claude-opus-4-1",),
    )
    p = plan(policy, "gpt-5", max_output_tokens=40_000)
    assert [c.model for c in p.candidates] == ["gpt-5"]


def test_fallback_without_tools_is_skipped_when_tools_are_used() -> None:
    docs = []
    for model_id, tools in (("big", True), ("notools", False)):
        docs.append(
            {
                "id": model_id,
                "display_name": model_id,
                "direct": {"provider": "openai", "model_id": model_id},
                "context_window": 1000,
                "max_output_tokens": 100,
                "tools": tools,
                "price_per_mtok": {"input": 1, "output": 1},
                "quality_rank": 1,
            }
        )
    catalog = parse_catalog_text(yaml.safe_dump({"models": docs}), "t.yaml")
    policy = team(
        ModelRouting("big", direct=True), ModelRouting("notools", direct=True), fallback=("notools",)
    )
    with_tools = plan(policy, "big", catalog=catalog, uses_tools=True)
    assert [c.model for c in with_tools.candidates] == ["big"]
    assert "does not support tools" in with_tools.dropped[0].reason
    without = plan(policy, "big", catalog=catalog)
    assert [c.model for c in without.candidates] == ["big", "notools"]


def test_requested_model_is_kept_even_if_the_estimate_exceeds_it() -> None:
    """The user chose it; the upstream gives the exact context error (estimates are estimates)."""
    p = plan(team(both("claude-opus-4-7")), estimated_input_tokens=500_000)
    assert [c.model for c in p.candidates] == ["claude-opus-4-7", "claude-opus-4-7"]


# --- request errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "model", "error"),
    [
        (team(both("claude-opus-4-7")), "claude-9", ErrorClass.MODEL_NOT_FOUND),
        (team(both("claude-opus-4-7")), "gpt-5", ErrorClass.MODEL_NOT_ALLOWED),
        (
            team(ModelRouting("gpt-5", direct=True), direct_disabled=True),
            "gpt-5",
            ErrorClass.MODEL_NOT_ALLOWED,
        ),
        (team(ModelRouting("claude-opus-4-7")), "opus", ErrorClass.MODEL_NOT_ALLOWED),
    ],
)
def test_request_errors(policy: TeamPolicy, model: str, error: ErrorClass) -> None:
    with pytest.raises(ByollmError) as info:
        plan(policy, model)
    assert info.value.error_class is error


def test_negative_sizes_are_invalid() -> None:
    with pytest.raises(ByollmError) as info:
        plan(team(both("claude-opus-4-7")), estimated_input_tokens=-1)
    assert info.value.error_class is ErrorClass.INVALID_REQUEST


def test_plan_is_deterministic() -> None:
    policy = team(
        both("claude-opus-4-7"),
        both("claude-haiku-4-5"),
        ModelRouting("gpt-5", direct=True),
        fallback=("gpt-5", "claude-haiku-4-5"),
        byok=True,
    )
    creds = AvailableCredentials(delegated_session=True, byok_providers=frozenset({Host.OPENAI}))
    assert plan(policy, "auto", creds=creds) == plan(policy, "auto", creds=creds)


# --- issue 16: requests without AWS credentials for a Bedrock-routed model ------------------------------------


def test_credentialless_request_for_a_bedrock_routed_model_is_refused_not_sent_direct() -> None:
    p = plan(team(both("claude-opus-4-7")), creds=AvailableCredentials())
    assert p.candidates == ()
    causes = {(d.host, d.cause) for d in p.dropped}
    assert (Host.BEDROCK, DropCause.NO_SESSION) in causes
    assert (Host.ANTHROPIC, DropCause.CREDENTIALLESS_DIRECT_REFUSED) in causes
    with pytest.raises(ByollmError) as info:
        p.require_candidates()
    assert info.value.error_class is ErrorClass.LOCAL_CREDENTIALS_MISSING
    assert "aws login" in info.value.error_class.remediation and "byollm exec" in info.value.error_class.remediation
    assert info.value.status == 401 and not info.value.retryable


def test_credentialless_direct_service_when_the_team_allows_it_is_a_counted_first_choice_skip() -> None:
    policy = replace(team(both("claude-opus-4-7")), settings=TeamSettings(credentialless_direct_allowed=True))
    p = plan(policy, creds=AvailableCredentials())
    assert [c.host for c in p.candidates] == [Host.ANTHROPIC]
    (skipped,) = p.skipped_first
    assert skipped.route.startswith("bedrock:") and "claude-opus-4-7" in skipped.route
    assert skipped.cause is DropCause.NO_SESSION


def test_a_direct_only_model_is_served_direct_without_aws_credentials() -> None:
    p = plan(team(ModelRouting("claude-opus-4-7", direct=True)), creds=AvailableCredentials())
    assert [c.host for c in p.candidates] == [Host.ANTHROPIC]
    assert p.skipped_first == ()


def test_a_users_own_key_still_serves_a_credentialless_request_and_counts_the_skip() -> None:
    policy = replace(team(both("claude-opus-4-7")), settings=TeamSettings(byok_allowed=True))
    p = plan(policy, creds=AvailableCredentials(byok_providers=frozenset({Host.ANTHROPIC})))
    assert [(c.host, c.billing) for c in p.candidates] == [(Host.ANTHROPIC, BillingBucket.USER_KEY)]
    assert [d.cause for d in p.dropped if d.host is Host.ANTHROPIC] == [DropCause.CREDENTIALLESS_DIRECT_REFUSED]
    assert len(p.skipped_first) == 1
