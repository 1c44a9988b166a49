"""Auto: refused whenever any direct model is disabled; otherwise a deterministic, explained choice."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from byollm.catalog import load_catalog
from byollm.errors import ByollmError, ErrorClass
from byollm.policy import choose_auto, plan_routes
from byollm.policy.types import (
    Actor,
    ActorKind,
    AvailableCredentials,
    BedrockHostConfig,
    CreditState,
    Host,
    ModelPolicy,
    ModelRouting,
    RoutePlan,
    RouteRequest,
    TeamPolicy,
)

CATALOG = load_catalog()
USER = Actor(ActorKind.INTERACTIVE_USER, "U" * 22)


def team(*routes: ModelRouting, direct_disabled: bool = False, region: str = "us-east-1") -> TeamPolicy:
    return TeamPolicy(
        team_uid="T" * 22,
        models=ModelPolicy(
            routes=MappingProxyType({r.model: r for r in routes}), direct_api_disabled=direct_disabled
        ),
        bedrock=BedrockHostConfig(region=region),
    )


def direct(*models: str) -> tuple[ModelRouting, ...]:
    return tuple(ModelRouting(m, direct=True) for m in models)


ALL_DIRECT = direct(*CATALOG.models)


def auto(
    policy: TeamPolicy, *, credits: bool = True, session: bool = True, name: str = "auto", **request: object
) -> RoutePlan:
    return plan_routes(
        policy,
        CATALOG,
        RouteRequest(name, **request),  # type: ignore[arg-type]
        actor=USER,
        credentials=AvailableCredentials(delegated_session=session),
        credits=CreditState(ai_credits_available=credits),
    )


@pytest.mark.parametrize(
    "policy",
    [
        team(*ALL_DIRECT, direct_disabled=True),
        team(*direct("gpt-5"), ModelRouting("claude-opus-4-7", bedrock=True, direct=False)),
        team(*direct("gpt-5"), ModelRouting("gemini-2.5-flash", direct=False)),
        team(ModelRouting("claude-opus-4-7", bedrock=True)),
    ],
)
def test_auto_refused_when_any_direct_model_is_disabled(policy: TeamPolicy) -> None:
    with pytest.raises(ByollmError) as info:
        auto(policy)
    assert info.value.error_class is ErrorClass.AUTO_DISABLED
    assert info.value.status == 403


def test_auto_refusal_names_the_disabled_models() -> None:
    with pytest.raises(
        ByollmError, match=r"disabled direct-API access for claude-opus-4-7, gemini-2\.5-flash"
    ):
        auto(team(ModelRouting("gemini-2.5-flash"), ModelRouting("claude-opus-4-7", bedrock=True)))


@pytest.mark.parametrize("name", ["auto", "AUTO", " Auto "])
def test_auto_name_is_case_insensitive(name: str) -> None:
    assert auto(team(*ALL_DIRECT), name=name).auto_reason is not None


def test_auto_with_tools_prefers_agentic_quality() -> None:
    p = auto(team(*ALL_DIRECT), uses_tools=True, estimated_input_tokens=20_000, max_output_tokens=4_000)
    assert p.model == "claude-opus-4-7"
    assert p.auto_reason is not None
    assert "uses tools" in p.auto_reason
    assert "claude-opus-4-7" in p.auto_reason


def test_auto_small_request_prefers_fast_models() -> None:
    p = auto(
        team(*direct("claude-opus-4-7", "claude-haiku-4-5", "gemini-2.5-flash")),
        estimated_input_tokens=200,
        max_output_tokens=256,
    )
    assert p.model == "claude-haiku-4-5"
    assert p.auto_reason is not None
    assert "small" in p.auto_reason


def test_auto_general_request_takes_best_quality() -> None:
    p = auto(
        team(*direct("gpt-5", "claude-sonnet-4-6", "gemini-2.5-pro")),
        estimated_input_tokens=50_000,
        max_output_tokens=8_000,
    )
    assert p.model == "claude-sonnet-4-6"


@pytest.mark.parametrize(
    ("size", "expected"),
    [(150_000, "claude-opus-4-7"), (170_000, "gpt-5"), (300_000, "gpt-5"), (330_000, "gemini-2.5-pro")],
)
def test_auto_large_requests_need_fit_and_headroom(size: int, expected: str) -> None:
    p = auto(team(*ALL_DIRECT), estimated_input_tokens=size, max_output_tokens=8_000)
    assert p.model == expected


def test_auto_prefers_a_model_with_a_usable_route() -> None:
    """Without credits only Bedrock can serve: Auto picks the Bedrock-enabled model, Bedrock first."""
    policy = team(
        *direct("claude-opus-4-7", "gpt-5"), ModelRouting("claude-haiku-4-5", bedrock=True, direct=True)
    )
    p = auto(policy, credits=False, estimated_input_tokens=20_000, max_output_tokens=4_000)
    assert p.model == "claude-haiku-4-5"
    assert p.candidates[0].host is Host.BEDROCK


def test_auto_routes_through_bedrock_first_when_enabled() -> None:
    routes = [ModelRouting("claude-opus-4-7", bedrock=True, direct=True), *direct("gpt-5")]
    p = auto(team(*routes), estimated_input_tokens=20_000, max_output_tokens=4_000)
    assert p.model == "claude-opus-4-7"
    assert [c.host for c in p.candidates] == [Host.BEDROCK, Host.ANTHROPIC]
    assert p.auto_reason is not None
    assert "through Bedrock first" in p.auto_reason


def test_auto_ignores_bedrock_outside_region() -> None:
    routes = [ModelRouting("claude-opus-4-1", bedrock=True, direct=True), *direct("gpt-5-mini")]
    p = auto(team(*routes, region="eu-west-1"), estimated_input_tokens=20_000, max_output_tokens=4_000)
    assert p.model == "claude-opus-4-1"  # still enabled directly; rank 5 beats rank 6
    assert [c.host for c in p.candidates] == [Host.ANTHROPIC]
    assert p.auto_reason is not None
    assert "through the direct API" in p.auto_reason


def test_auto_without_enabled_models() -> None:
    with pytest.raises(ByollmError) as info:
        auto(team())
    assert info.value.error_class is ErrorClass.MODEL_NOT_ALLOWED


def test_auto_when_nothing_fits() -> None:
    with pytest.raises(ByollmError) as info:
        auto(team(*direct("claude-opus-4-7")), estimated_input_tokens=300_000)
    assert info.value.error_class is ErrorClass.INVALID_REQUEST
    assert "200000" in info.value.detail


def test_choose_auto_is_deterministic_and_pure() -> None:
    policy = team(*ALL_DIRECT)
    request = RouteRequest("auto", estimated_input_tokens=1000)
    first = choose_auto(policy, CATALOG, request, usable=lambda m: True)
    assert all(choose_auto(policy, CATALOG, request, usable=lambda m: True) == first for _ in range(5))
