"""Model names that follow the world, through the real SDKs: team aliases set with the admin API, the Claude
family mapping (and the switch that turns it off), both visible in ``/v1/models`` and the response headers,
and the 404 an unknown name gets in each API's own shape."""

from __future__ import annotations

import anthropic
import openai
import pytest

from support.stack import DIRECT_MODELS, Stack


def anthropic_client(stack: Stack, token: str, *, delegated: bool = True) -> anthropic.Anthropic:
    headers = stack.delegated_headers() if delegated else {}
    return anthropic.Anthropic(base_url=stack.url, api_key=token, default_headers=headers, max_retries=0)


def openai_client(stack: Stack, token: str) -> openai.OpenAI:
    # with the member's AWS session: a credential-less request for a Bedrock-routed model is refused (issue 16)
    return openai.OpenAI(base_url=stack.url + "/v1", api_key=token, max_retries=0,
                         default_headers=stack.delegated_headers())


HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(("requested", "served"), [
    ("claude-opus-4-8", "claude-opus-4-7"),  # Claude Code 2.1's default and `--model opus`
    ("claude-sonnet-5", "claude-sonnet-4-6"),  # `--model sonnet`
    ("claude-haiku-4-6", "claude-haiku-4-5"),  # `--model haiku`
])
@pytest.mark.parametrize("delegated", [True, False], ids=["bedrock", "direct"])
def test_a_newer_claude_name_is_served_by_the_teams_best_model_of_its_family(
        stack: Stack, requested: str, served: str, delegated: bool) -> None:
    # without AWS credentials only models the team does not route through Bedrock are served (issue 16)
    team = stack.new_team(None if delegated else DIRECT_MODELS)
    raw = anthropic_client(stack, team.token, delegated=delegated).messages.with_raw_response.create(
        model=requested, max_tokens=50, messages=HI)
    assert raw.parse().role == "assistant"
    assert raw.headers["x-byollm-model"] == served
    assert raw.headers["x-byollm-requested-model"] == requested
    assert raw.headers["x-byollm-model-rule"] == f"family:{requested.split('-')[1]}"
    assert raw.headers["x-byollm-route"].startswith("bedrock:" if delegated else "anthropic:")


def test_streams_and_count_tokens_follow_the_family_mapping_too(stack: Stack) -> None:
    team = stack.new_team()
    client = anthropic_client(stack, team.token)
    with client.messages.stream(model="claude-opus-4-8", max_tokens=50, messages=HI) as stream:
        text = stream.get_final_text()
        assert stream.response.headers["x-byollm-model"] == "claude-opus-4-7"
    assert text
    counted = client.messages.with_raw_response.count_tokens(model="claude-sonnet-5", messages=HI)
    assert counted.parse().input_tokens > 0
    assert counted.headers["x-byollm-model"] == "claude-sonnet-4-6"


def test_turning_the_family_mapping_off_makes_newer_names_unknown(stack: Stack) -> None:
    team = stack.new_team()
    assert team.settings(claude_family_mapping=False)["claude_family_mapping"] is False
    with pytest.raises(anthropic.NotFoundError) as caught:
        anthropic_client(stack, team.token).messages.create(model="claude-opus-4-8", max_tokens=50, messages=HI)
    assert caught.value.body["error"]["byollm"]["code"] == "model_not_found"  # type: ignore[index]
    assert team.settings(claude_family_mapping=True)["claude_family_mapping"] is True
    ok = anthropic_client(stack, team.token).messages.with_raw_response.create(
        model="claude-opus-4-8", max_tokens=50, messages=HI)
    assert ok.headers["x-byollm-model"] == "claude-opus-4-7"


def test_an_unknown_model_is_404_in_the_openai_shape_naming_the_usable_models(stack: Stack) -> None:
    team = stack.new_team({"gpt-5": {"direct": True}, "claude-sonnet-4-6": {"direct": True}})
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client(stack, team.token).chat.completions.create(model="gpt-17-turbo", messages=HI)  # type: ignore[arg-type]
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "model_not_found"
    assert "claude-sonnet-4-6, gpt-5" in error["message"]
    assert caught.value.response.headers["x-byollm-error-code"] == "model_not_found"


def test_an_alias_set_by_an_admin_is_honoured_listed_and_reported(stack: Stack) -> None:
    team = stack.new_team()
    policy = team.policy(aliases=[{"pattern": "claude-opus-*", "target": "sonnet"},
                                  {"pattern": "team-fast", "target": "claude-haiku-4-5"}])
    assert policy["aliases"] == [{"pattern": "claude-opus-*", "target": "claude-sonnet-4-6"},
                                 {"pattern": "team-fast", "target": "claude-haiku-4-5"}]
    client = anthropic_client(stack, team.token)
    raw = client.messages.with_raw_response.create(model="claude-opus-4-7", max_tokens=50, messages=HI)
    assert raw.headers["x-byollm-model"] == "claude-sonnet-4-6"
    assert raw.headers["x-byollm-requested-model"] == "claude-opus-4-7"
    assert raw.headers["x-byollm-model-rule"] == "alias:claude-opus-*"
    fast = openai_client(stack, team.token).chat.completions.with_raw_response.create(model="team-fast", messages=HI)  # type: ignore[arg-type]
    assert fast.headers["x-byollm-model"] == "claude-haiku-4-5"

    listed = {m.id: m for m in client.models.list(limit=100)}
    assert "claude-opus-4-7" not in listed  # every request for it is served as sonnet
    alias = listed["claude-opus-*"].model_dump()
    assert alias["byollm"]["alias_of"] == "claude-sonnet-4-6" and alias["byollm"]["routes"]
    openai_ids = [m.id for m in openai_client(stack, team.token).models.list()]
    assert "team-fast" in openai_ids and "claude-sonnet-4-6" in openai_ids

    team.policy(aliases=[])
    again = client.messages.with_raw_response.create(model="claude-opus-4-7", max_tokens=50, messages=HI)
    assert again.headers["x-byollm-model"] == "claude-opus-4-7" and "x-byollm-model-rule" not in again.headers


@pytest.mark.parametrize(("aliases", "field"), [
    ([{"pattern": "*", "target": "claude-opus-4-7"}], "aliases[0].pattern"),
    ([{"pattern": "a b", "target": "claude-opus-4-7"}], "aliases[0].pattern"),
    ([{"pattern": "x-*", "target": "no-such-model"}], "aliases[0].target"),
    ([{"pattern": "x-*", "target": "opus"}, {"pattern": "X-*", "target": "opus"}], "aliases[1].pattern"),
])
def test_malformed_aliases_are_refused_naming_the_field(stack: Stack, aliases: list[dict[str, str]],
                                                        field: str) -> None:
    team = stack.new_team()
    r = team.admin.patch(f"/teams/{team.uid}/policy", json={"aliases": aliases})
    assert r.status_code == 400, r.text
    assert field in r.json()["error"]["message"]


def test_the_anthropic_model_list_pages_as_the_sdk_asks(stack: Stack) -> None:
    team = stack.new_team()
    client = anthropic_client(stack, team.token)
    every = [m.id for m in client.models.list(limit=100)]
    assert len(every) >= 5
    paged = [m.id for m in client.models.list(limit=2)]  # the SDK's auto-pager follows after_id
    assert paged == every
    first = client.models.list(limit=2)
    assert first.has_more and [m.id for m in first.data] == every[:2]
