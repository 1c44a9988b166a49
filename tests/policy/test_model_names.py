"""How requested names become models: aliases, catalog names and the Claude family mapping (policy.names).

Claude Code 2.1 expands its aliases itself (``opus`` -> ``claude-opus-4-8``, ``sonnet`` -> ``claude-sonnet-5``),
names byollm's catalog has never heard of; these tests pin the rules that let such names reach the team's
best model of their family, and the 404 that names the usable models when nothing matches.
"""

from __future__ import annotations

from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byollm.catalog import load_catalog
from byollm.errors import ByollmError, ErrorClass
from byollm.policy import plan_routes
from byollm.policy.names import (
    CLAUDE_FAMILIES,
    ResolvedVia,
    alias_matches,
    best_of_family,
    claude_family,
    model_version,
    resolve_model_name,
)
from byollm.policy.types import (
    Actor,
    ActorKind,
    AvailableCredentials,
    CreditState,
    ModelAlias,
    ModelPolicy,
    ModelRouting,
    RoutePlan,
    RouteRequest,
    TeamPolicy,
    TeamSettings,
)

CATALOG = load_catalog()
MODEL_IDS = list(CATALOG.models)
USER = Actor(ActorKind.INTERACTIVE_USER, "U" * 22)


def team(*enabled: str, aliases: tuple[ModelAlias, ...] = (), mapping: bool = True) -> TeamPolicy:
    routes = {m: ModelRouting(m, bedrock=True, direct=True) for m in enabled}
    return TeamPolicy(team_uid="T" * 22, settings=TeamSettings(claude_family_mapping=mapping),
                      models=ModelPolicy(routes=MappingProxyType(routes), aliases=aliases))


def plan(policy: TeamPolicy, name: str):  # type: ignore[no-untyped-def]
    return plan_routes(policy, CATALOG, RouteRequest(model=name), actor=USER,
                       credentials=AvailableCredentials(delegated_session=True), credits=CreditState())


@pytest.mark.parametrize(("name", "family"), [
    ("claude-opus-4-8", "opus"), ("claude-sonnet-5", "sonnet"), ("claude-3-5-haiku-20241022", "haiku"),
    ("us.anthropic.claude-sonnet-5-v1:0", "sonnet"), ("CLAUDE-OPUS-9", "opus"), ("claude-haiku-4-5", "haiku"),
    ("opus", None), ("claude-9", None), ("claude-opus-sonnet", None), ("gpt-5", None), ("claudeopus-5", None),
    ("claude-opusx-5", None),
])
def test_claude_family_reads_the_family_word(name: str, family: str | None) -> None:
    assert claude_family(name) == family


def test_claude_codes_newer_defaults_reach_the_best_enabled_model_of_their_family() -> None:
    policy = team("claude-opus-4-7", "claude-opus-4-1", "claude-sonnet-4-6", "claude-haiku-4-5")
    for name, expected in [("claude-opus-4-8", "claude-opus-4-7"), ("claude-sonnet-5", "claude-sonnet-4-6"),
                           ("claude-haiku-5-0", "claude-haiku-4-5")]:
        p = plan(policy, name)
        assert p.model == expected
        assert p.resolved_via == f"family:{claude_family(name)}"
        assert p.requested_model == name


def test_the_family_mapping_picks_an_older_model_when_only_that_one_is_enabled() -> None:
    assert plan(team("claude-opus-4-1", "claude-sonnet-4-6"), "claude-opus-5").model == "claude-opus-4-1"


def test_an_admin_can_turn_the_family_mapping_off() -> None:
    with pytest.raises(ByollmError) as info:
        plan(team("claude-opus-4-7", mapping=False), "claude-opus-4-8")
    assert info.value.error_class is ErrorClass.MODEL_NOT_FOUND


def test_a_family_the_team_does_not_enable_is_not_found_naming_what_it_can_use() -> None:
    with pytest.raises(ByollmError) as info:
        plan(team("claude-sonnet-4-6", "gpt-5"), "claude-opus-4-8")
    error = info.value
    assert error.error_class is ErrorClass.MODEL_NOT_FOUND
    assert error.status == 404
    assert error.context["available"] == ["claude-sonnet-4-6", "gpt-5"]
    assert "claude-sonnet-4-6, gpt-5" in error.detail


def test_aliases_win_over_catalog_names_in_the_admins_order() -> None:
    aliases = (ModelAlias("claude-opus-*", "claude-sonnet-4-6"), ModelAlias("claude-*", "claude-haiku-4-5"))
    policy = team("claude-opus-4-7", "claude-sonnet-4-6", "claude-haiku-4-5", aliases=aliases)
    p = plan(policy, "claude-opus-4-7")
    assert (p.model, p.resolved_via) == ("claude-sonnet-4-6", "alias:claude-opus-*")
    assert plan(policy, "claude-sonnet-4-6").model == "claude-haiku-4-5"  # the second alias matches
    assert plan(policy, "opus").model == "claude-opus-4-7"  # no alias matches: the catalog name


def test_an_alias_to_a_model_the_team_does_not_enable_is_refused_naming_that_model() -> None:
    policy = team("claude-sonnet-4-6", aliases=(ModelAlias("claude-*-haiku-*", "claude-haiku-4-5"),))
    with pytest.raises(ByollmError) as info:
        plan(policy, "claude-3-5-haiku-20241022")
    assert info.value.error_class is ErrorClass.MODEL_NOT_ALLOWED
    assert info.value.context["model"] == "claude-haiku-4-5"


@pytest.mark.parametrize(("pattern", "name", "matches"), [
    ("claude-opus-*", "claude-opus-4-8", True), ("claude-opus-*", "Claude-Opus-5", True),
    ("claude-opus-*", "claude-opus", False), ("claude-*-haiku-*", "claude-3-5-haiku-20241022", True),
    ("claude-*-haiku-*", "claude-haiku-4-5", False), ("gpt-?", "gpt-5", True), ("gpt-?", "gpt-50", False),
    ("a.b", "axb", False), ("my-model", "my-model", True),
])
def test_alias_patterns(pattern: str, name: str, matches: bool) -> None:
    assert alias_matches(pattern, name) is matches


# --- properties ----------------------------------------------------------------------------------------------

FAMILY_NAMES = st.builds(
    lambda fam, major, minor, prefix: f"{prefix}claude-{fam}-{major}" + (f"-{minor}" if minor is not None else ""),
    st.sampled_from(CLAUDE_FAMILIES), st.integers(0, 99), st.none() | st.integers(0, 99),
    st.sampled_from(["", "us.anthropic.", "global.anthropic.", "anthropic."]),
)
ENABLED = st.lists(st.sampled_from(MODEL_IDS), unique=True)


@settings(max_examples=300, deadline=None)
@given(enabled=ENABLED, name=FAMILY_NAMES, mapping=st.booleans())
def test_a_claude_family_name_resolves_to_an_enabled_model_of_that_family_or_not_at_all(
        enabled: list[str], name: str, mapping: bool) -> None:
    policy = team(*enabled, mapping=mapping)
    resolution = resolve_model_name(policy, CATALOG, name)
    family = claude_family(name)
    assert family is not None
    if resolution is None:
        assert not mapping or best_of_family(policy, CATALOG, family) is None
        return
    if resolution.via is ResolvedVia.FAMILY:
        assert mapping
        assert claude_family(resolution.model.id) == family
        assert resolution.model.id in enabled
        # nothing enabled in the family is newer
        newer = [m for m in enabled if claude_family(m) == family
                 and model_version(m) > model_version(resolution.model.id)]
        assert newer == []
    else:
        assert resolution.via is ResolvedVia.CATALOG
        assert resolution.model is CATALOG.resolve(name)


@settings(max_examples=300, deadline=None)
@given(enabled=ENABLED, name=st.sampled_from([*MODEL_IDS, "opus", "sonnet", "claude-opus-4-8", "x-1", "gpt-9"]),
       target=st.sampled_from(MODEL_IDS), cut=st.integers(1, 12))
def test_an_alias_that_matches_always_wins_and_a_catalog_name_without_one_is_unchanged(
        enabled: list[str], name: str, target: str, cut: int) -> None:
    pattern = name[:cut] + "*"
    with_alias = resolve_model_name(team(*enabled, aliases=(ModelAlias(pattern, target),)), CATALOG, name)
    assert with_alias is not None and with_alias.model.id == target and with_alias.via is ResolvedVia.ALIAS
    without = resolve_model_name(team(*enabled), CATALOG, name)
    known = CATALOG.resolve(name)
    if known is not None:
        assert without is not None and without.model is known and without.via is ResolvedVia.CATALOG


@settings(max_examples=200, deadline=None)
@given(enabled=ENABLED, name=st.text(min_size=1, max_size=40))
def test_any_name_plans_or_fails_with_a_known_class(enabled: list[str], name: str) -> None:
    outcome: RoutePlan | ByollmError
    try:
        outcome = plan(team(*enabled), name)
    except ByollmError as error:
        outcome = error
    if isinstance(outcome, ByollmError):
        assert outcome.error_class in {ErrorClass.MODEL_NOT_FOUND, ErrorClass.MODEL_NOT_ALLOWED,
                                       ErrorClass.INVALID_REQUEST, ErrorClass.AUTO_DISABLED,
                                       ErrorClass.REGION_MODEL_MISMATCH}
        if outcome.error_class is ErrorClass.MODEL_NOT_FOUND:
            assert outcome.context["available"] == [m for m in MODEL_IDS if m in enabled]
    else:
        assert outcome.model in enabled
