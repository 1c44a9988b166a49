"""The official Anthropic SDK, unmodified, through byollm: Bedrock route (delegated AWS session credentials)
and direct route (no AWS credentials), plain, streaming and tool use; count_tokens; Claude Code's
environment convention."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

from support.stack import DIRECT_MODELS, Stack, Team

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def team_for(stack: Stack, delegated: bool) -> Team:
    """Without AWS credentials the direct route serves only models the team does not route through Bedrock."""
    return stack.new_team(None if delegated else DIRECT_MODELS)


def client(stack: Stack, token: str, *, delegated: bool) -> anthropic.Anthropic:
    headers = stack.delegated_headers() if delegated else {}
    return anthropic.Anthropic(base_url=stack.url, api_key=token, default_headers=headers, max_retries=0)


@pytest.mark.parametrize(("delegated", "host"), [(True, "bedrock"), (False, "anthropic")])
def test_plain_message(stack: Stack, delegated: bool, host: str) -> None:
    team = team_for(stack, delegated)
    raw = client(stack, team.token, delegated=delegated).messages.with_raw_response.create(
        model="claude-opus-4-7", max_tokens=200, messages=[{"role": "user", "content": "Say hello"}])
    message = raw.parse()
    text = "".join(b.text for b in message.content if b.type == "text")
    assert message.role == "assistant" and message.stop_reason == "end_turn"
    assert f"[{host}:" in text  # the simulator names the service that served it
    assert raw.headers["x-byollm-route"].startswith(f"{host}:")
    assert raw.headers["x-byollm-fallbacks"] == "0"
    if host == "bedrock":
        assert raw.headers["x-byollm-route"] == "bedrock:global.anthropic.claude-opus-4-7-v1:0"
    assert float(raw.headers["x-byollm-overhead-ms"]) >= 0
    assert raw.headers["x-request-id"].startswith("req_")
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


@pytest.mark.parametrize(("delegated", "host"), [(True, "bedrock"), (False, "anthropic")])
def test_streaming_message(stack: Stack, delegated: bool, host: str) -> None:
    team = team_for(stack, delegated)
    with client(stack, team.token, delegated=delegated).messages.stream(
        model="sonnet", max_tokens=200, messages=[{"role": "user", "content": "Stream something"}]
    ) as stream:
        chunks = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(chunks) > 1
    assert f"[{host}:" in "".join(chunks)
    assert final.usage.output_tokens > 0 and final.stop_reason == "end_turn"


@pytest.mark.parametrize("delegated", [True, False])
@pytest.mark.parametrize("streaming", [False, True])
def test_tool_use_loop(stack: Stack, delegated: bool, streaming: bool) -> None:
    team = team_for(stack, delegated)
    sdk = client(stack, team.token, delegated=delegated)
    messages: list[dict] = [{"role": "user", "content": "Use get_weather for city=Paris"}]  # type: ignore[type-arg]
    if streaming:
        with sdk.messages.stream(model="claude-haiku-4-5", max_tokens=300, tools=[WEATHER_TOOL],
                                 messages=messages) as stream:
            first = stream.get_final_message()
    else:
        first = sdk.messages.create(model="claude-haiku-4-5", max_tokens=300, tools=[WEATHER_TOOL], messages=messages)
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and call.input.get("city") == "Paris"
    messages += [
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}]},
    ]
    second = sdk.messages.create(model="claude-haiku-4-5", max_tokens=300, tools=[WEATHER_TOOL], messages=messages)
    assert second.stop_reason == "end_turn"
    assert "18C and sunny" in "".join(b.text for b in second.content if b.type == "text")


@pytest.mark.parametrize(("delegated", "host"), [(True, "bedrock"), (False, "anthropic")])
def test_count_tokens(stack: Stack, delegated: bool, host: str) -> None:
    team = team_for(stack, delegated)
    sdk = client(stack, team.token, delegated=delegated)
    raw = sdk.messages.with_raw_response.count_tokens(
        model="claude-opus-4-7", messages=[{"role": "user", "content": "How many tokens is this?"}])
    assert raw.parse().input_tokens > 0
    assert raw.headers["x-byollm-route"].startswith(f"{host}:")


@pytest.mark.parametrize("variable", ["ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY"])
def test_claude_code_environment_convention(stack: Stack, variable: str, monkeypatch: pytest.MonkeyPatch) -> None:
    team = team_for(stack, False)  # no AWS credentials in this convention
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", stack.url)
    monkeypatch.setenv(variable, team.token)
    message = anthropic.Anthropic(max_retries=0).messages.create(
        model="claude-sonnet-4-6", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].type == "text"


def test_errors_reach_the_sdk_as_typed_exceptions_with_remediation(stack: Stack) -> None:
    team = stack.new_team()
    with pytest.raises(anthropic.AuthenticationError) as auth:
        anthropic.Anthropic(base_url=stack.url, api_key="byo_" + "x" * 43, max_retries=0).messages.create(
            model="opus", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert "unauthenticated" in str(auth.value)
    with pytest.raises(anthropic.NotFoundError) as bad:  # as Anthropic answers, so Claude Code says "run --model"
        client(stack, team.token, delegated=False).messages.create(
            model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    body = bad.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "not_found_error"
    assert body["error"]["byollm"]["code"] == "model_not_found"
    assert body["error"]["byollm"]["remediation"]
    assert "claude-sonnet-4-6" in body["error"]["message"]  # names what the team can use
    assert "claude-sonnet-4-6" in body["error"]["byollm"]["context"]["available"]


CLAUDE_CODE_BETAS = ["claude-code-20250219", "interleaved-thinking-2025-05-14",
                     "fine-grained-tool-streaming-2025-05-14", "mcp-servers-2025-12-04",
                     "context-management-2025-06-27"]


@pytest.mark.parametrize("streaming", [False, True])
def test_betas_bedrock_refuses_are_dropped_on_the_bedrock_route(stack: Stack, streaming: bool) -> None:
    """Bedrock answers 400 "invalid beta flag" for any beta it does not list, and refuses ``defer_loading`` on
    a tool; the SDK's ``betas=[...]`` and a deferred tool still get an answer, and Bedrock receives only the
    listed betas and no ``defer_loading``."""
    team = team_for(stack, True)
    sdk = client(stack, team.token, delegated=True)
    stack.clear_journal()
    tools = [WEATHER_TOOL, {**WEATHER_TOOL, "name": "get_forecast", "defer_loading": True}]
    kwargs: dict[str, Any] = {"model": "claude-opus-4-7", "max_tokens": 200, "betas": CLAUDE_CODE_BETAS,
                              "tools": tools, "messages": [{"role": "user", "content": "Say hello"}]}
    if streaming:
        with sdk.beta.messages.stream(**kwargs) as stream:
            message = stream.get_final_message()
    else:
        message = sdk.beta.messages.create(**kwargs)
    assert message.stop_reason in ("end_turn", "tool_use")
    invokes = [json.loads(e["body"]) for e in stack.journal("bedrock-runtime") if "/invoke" in e["path"]]
    assert len(invokes) == 1
    assert invokes[0]["anthropic_beta"] == ["interleaved-thinking-2025-05-14", "context-management-2025-06-27"]
    assert all("defer_loading" not in tool for tool in invokes[0]["tools"])
    assert [tool["name"] for tool in invokes[0]["tools"]] == ["get_weather", "get_forecast"]


def test_the_direct_route_forwards_every_beta(stack: Stack) -> None:
    team = team_for(stack, False)
    stack.clear_journal()
    client(stack, team.token, delegated=False).beta.messages.create(
        model="claude-opus-4-7", max_tokens=50, betas=CLAUDE_CODE_BETAS,
        messages=[{"role": "user", "content": "Say hello"}])
    sent = [e for e in stack.journal("anthropic") if e["path"].endswith("/v1/messages")]
    assert len(sent) == 1
    headers = {str(k).lower(): str(v) for k, v in sent[0]["headers"]}
    assert headers["anthropic-beta"].split(",") == CLAUDE_CODE_BETAS


def test_a_listed_beta_the_model_lacks_is_named_in_the_error(stack: Stack) -> None:
    """AWS lists ``context-1m-2025-08-07`` for the API, so byollm forwards it rather than silently serving a
    smaller context window; a model that lacks it answers "invalid beta flag" (the documentation does not say
    which models do, so a fault plays that Bedrock answer) and the caller is told which betas were sent."""
    team = team_for(stack, True)
    stack.fault(service="bedrock", error="ValidationException", message="invalid beta flag", count=1)
    try:
        with pytest.raises(anthropic.BadRequestError) as refused:
            client(stack, team.token, delegated=True).beta.messages.create(
                model="claude-opus-4-7", max_tokens=50, betas=["claude-code-20250219", "context-1m-2025-08-07"],
                messages=[{"role": "user", "content": "Say hello"}])
    finally:
        stack.clear_faults()
    body = refused.value.body
    assert isinstance(body, dict)
    message = body["error"]["message"]
    assert message.startswith("invalid beta flag") and "(context-1m-2025-08-07)" in message
    assert "claude-code" not in message  # the hint was never sent, so it is not the culprit
    assert body["error"]["byollm"]["code"] == "invalid_request"
