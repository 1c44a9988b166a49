"""The official OpenAI SDK, unmodified, through byollm's OpenAI-compatible endpoint, served by a Claude
model on Bedrock, by the direct Anthropic API, and by a direct OpenAI model; plain, streaming, tools."""

from __future__ import annotations

import json

import openai
import pytest

from support.stack import DIRECT_MODELS, Stack, Team

TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}}

ROUTES = [("claude-opus-4-7", True, "bedrock"), ("claude-opus-4-7", False, "anthropic"), ("gpt-5", False, "openai")]


def team_for(stack: Stack, delegated: bool) -> Team:
    """Without AWS credentials the direct route serves only models the team does not route through Bedrock."""
    return stack.new_team(None if delegated else DIRECT_MODELS)


def client(stack: Stack, token: str, *, delegated: bool) -> openai.OpenAI:
    headers = stack.delegated_headers() if delegated else {}
    return openai.OpenAI(base_url=stack.url + "/v1", api_key=token, default_headers=headers, max_retries=0)


@pytest.mark.parametrize(("model", "delegated", "host"), ROUTES)
def test_plain_completion(stack: Stack, model: str, delegated: bool, host: str) -> None:
    team = team_for(stack, delegated)
    raw = client(stack, team.token, delegated=delegated).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}])
    completion = raw.parse()
    assert completion.choices[0].message.role == "assistant"
    assert f"[{host}:" in (completion.choices[0].message.content or "")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    assert raw.headers["x-byollm-route"].startswith(f"{host}:")


@pytest.mark.parametrize(("model", "delegated", "host"), ROUTES)
def test_streaming_completion(stack: Stack, model: str, delegated: bool, host: str) -> None:
    team = team_for(stack, delegated)
    chunks = list(client(stack, team.token, delegated=delegated).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Stream please"}], stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert f"[{host}:" in text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]


@pytest.mark.parametrize(("model", "delegated", "host"), ROUTES)
@pytest.mark.parametrize("streaming", [False, True])
def test_tool_calls(stack: Stack, model: str, delegated: bool, host: str, streaming: bool) -> None:
    team = team_for(stack, delegated)
    sdk = client(stack, team.token, delegated=delegated)
    messages: list[dict] = [{"role": "user", "content": "Call get_weather with city=Oslo"}]  # type: ignore[type-arg]
    if streaming:
        chunks = list(sdk.chat.completions.create(model=model, messages=messages, tools=[TOOL], stream=True))
        calls: dict[int, dict[str, str]] = {}
        for c in chunks:
            for d in (c.choices[0].delta.tool_calls or []) if c.choices else []:
                entry = calls.setdefault(d.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += d.id or ""
                entry["name"] += (d.function.name or "") if d.function else ""
                entry["arguments"] += (d.function.arguments or "") if d.function else ""
        (call,) = calls.values()
        call_id, name, arguments = call["id"], call["name"], call["arguments"]
    else:
        completion = sdk.chat.completions.create(model=model, messages=messages, tools=[TOOL])
        assert completion.choices[0].finish_reason == "tool_calls"
        tool_call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
        call_id, name, arguments = tool_call.id, tool_call.function.name, tool_call.function.arguments
    assert name == "get_weather" and json.loads(arguments)["city"] == "Oslo"
    messages += [
        {"role": "assistant", "tool_calls": [{"id": call_id, "type": "function",
                                              "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "-3C, snow"},
    ]
    answer = sdk.chat.completions.create(model=model, messages=messages, tools=[TOOL])
    assert "-3C, snow" in (answer.choices[0].message.content or "")
