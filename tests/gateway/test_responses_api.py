"""The official OpenAI SDK's Responses API (``client.responses.create``), unmodified, through byollm's
``/v1/responses``: served by a Claude model on Bedrock (delegated credentials) and by the direct Anthropic
API (translated), and by a direct OpenAI model (passed through); plain, streamed, with a function tool and
its output round trip; failover, the request log, credits and errors in OpenAI's shape."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest

from support.stack import DIRECT_MODELS, Stack

WEATHER: Any = {"type": "function", "name": "get_weather", "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
ROUTES = [("claude-opus-4-7", True, "bedrock"), ("claude-opus-4-7", False, "anthropic"), ("gpt-5", False, "openai")]
ROUTE_IDS = ["bedrock", "anthropic", "openai"]


def client(stack: Stack, token: str, *, delegated: bool) -> openai.OpenAI:
    headers = stack.delegated_headers() if delegated else {}
    return openai.OpenAI(base_url=stack.url + "/v1", api_key=token, default_headers=headers, max_retries=0)


def rows(stack: Stack, team_uid: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        found = stack.request_log(team_uid)
        if len(found) >= count or time.monotonic() > deadline:
            return sorted(found, key=lambda r: r["started_at"])
        time.sleep(0.1)


@pytest.mark.parametrize(("model", "delegated", "host"), ROUTES, ids=ROUTE_IDS)
def test_plain_response(stack: Stack, model: str, delegated: bool, host: str) -> None:
    team = stack.new_team(None if delegated else DIRECT_MODELS)  # issue 16: no creds, no Bedrock model
    raw = client(stack, team.token, delegated=delegated).responses.with_raw_response.create(
        model=model, instructions="Be brief.", input="Hello there")
    response = raw.parse()
    assert response.object == "response" and response.status == "completed"
    assert f"[{host}:" in response.output_text and response.output_text.endswith("You said: Hello there")
    assert response.usage is not None and response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert raw.headers["x-byollm-route"].startswith(f"{host}:")
    assert raw.headers["x-byollm-fallbacks"] == "0" and raw.headers["x-request-id"]
    (row,) = rows(stack, team.uid, 1)
    assert row["host"] == host and row["api"] == "openai" and row["stream"] is False and row["status"] == 200
    assert row["input_tokens"] > 0 and row["output_tokens"] == response.usage.output_tokens
    if host == "bedrock":
        assert row["billing"] == "customer_cloud" and row["credits"] == 0
    else:
        assert row["billing"] == "ai_credits" and row["credits"] > 0


@pytest.mark.parametrize(("model", "delegated", "host"), ROUTES, ids=ROUTE_IDS)
def test_streamed_response(stack: Stack, model: str, delegated: bool, host: str) -> None:
    team = stack.new_team(None if delegated else DIRECT_MODELS)  # issue 16: no creds, no Bedrock model
    sdk = client(stack, team.token, delegated=delegated)
    with sdk.responses.with_streaming_response.create(model=model, input=[{"role": "user", "content": "Stream it"}],
                                                       stream=True) as raw:
        assert raw.headers["x-byollm-route"].startswith(f"{host}:")
        assert raw.headers["content-type"].startswith("text/event-stream")
        events = list(raw.parse())
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.output_item.added" in kinds and "response.output_text.done" in kinds
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert f"[{host}:" in text and text.endswith("You said: Stream it")
    final = events[-1]
    assert final.type == "response.completed" and final.response.output_text == text
    assert final.response.usage is not None and final.response.usage.output_tokens > 0
    (row,) = rows(stack, team.uid, 1)
    assert row["stream"] is True and row["host"] == host
    assert row["output_tokens"] == final.response.usage.output_tokens


@pytest.mark.parametrize(("model", "delegated", "host"), ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
def test_function_tool_round_trip(stack: Stack, model: str, delegated: bool, host: str, streaming: bool) -> None:
    team = stack.new_team(None if delegated else DIRECT_MODELS)  # issue 16: no creds, no Bedrock model
    sdk = client(stack, team.token, delegated=delegated)
    prompt = {"role": "user", "content": "Call get_weather with city=Oslo"}
    if streaming:
        events = list(sdk.responses.create(model=model, input=[prompt], tools=[WEATHER], stream=True))
        (call,) = [e.item for e in events if e.type == "response.output_item.done" and e.item.type == "function_call"]
        deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
        assert json.loads(deltas) == json.loads(call.arguments)
        (done,) = [e for e in events if e.type == "response.function_call_arguments.done"]
        assert done.arguments == call.arguments and done.item_id == call.id
    else:
        response = sdk.responses.create(model=model, input=[prompt], tools=[WEATHER])
        (call,) = [item for item in response.output if item.type == "function_call"]
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id
    assert json.loads(call.arguments) == {"city": "Oslo"}
    answer = sdk.responses.create(model=model, tools=[WEATHER], input=[
        prompt,
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "-3C, snow"},
    ])
    assert f"[{host}:" in answer.output_text and "get_weather returned: -3C, snow" in answer.output_text


def test_openai_route_passes_the_callers_body_through(stack: Stack) -> None:
    """Fields only OpenAI understands reach it untouched; only ``model`` is rewritten to the route's id."""
    team = stack.new_team()
    stack.clear_journal()
    body = {"model": "gpt-5", "input": "Hello", "text": {"format": {"type": "json_object"}},
            "reasoning": {"effort": "low"}, "store": False, "metadata": {"ticket": "T-1"}}
    raw = stack.gateway(team.token).post("/v1/responses", json=body)
    assert raw.status_code == 200, raw.text
    assert raw.json()["id"].startswith("resp_") and raw.json()["text"] == {"format": {"type": "json_object"}}
    (sent,) = [e for e in stack.journal("openai") if e["path"].endswith("/v1/responses")]
    assert json.loads(sent["body"]) == body


def test_a_format_only_openai_can_honour_skips_claude_routes(stack: Stack) -> None:
    team = stack.new_team(fallback=["gpt-5"])
    sdk = client(stack, team.token, delegated=True)
    raw = sdk.responses.with_raw_response.create(model="claude-opus-4-7", input="Hello",
                                                 text={"format": {"type": "json_object"}})
    assert raw.headers["x-byollm-route"].startswith("openai:")
    (row,) = rows(stack, team.uid, 1)
    assert [a.error_code for a in row["attempts"]][-1] is None
    assert {a.error_code for a in row["attempts"][:-1]} == {"unsupported_by_route"}
    alone = stack.new_team({"claude-opus-4-7": {"bedrock": True}})
    with pytest.raises(openai.APIStatusError) as refused:
        client(stack, alone.token, delegated=True).responses.create(
            model="claude-opus-4-7", input="Hello", text={"format": {"type": "json_object"}})
    error: Any = refused.value.body
    # no route can take it: the caller's 400, naming the field (not a 424 blaming the routes)
    assert refused.value.status_code == 400 and error["code"] == "unsupported_by_route"
    assert error["message"].startswith("text.format:")
    (attempt,) = error["byollm"]["context"]["attempts"]
    assert attempt["code"] == "unsupported_by_route" and attempt["detail"].startswith("text.format:")


@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
def test_bedrock_failure_fails_over_visibly(stack: Stack, streaming: bool) -> None:
    team = stack.new_team()
    stack.fault(service="bedrock", error="ThrottlingException", count=1)
    sdk = client(stack, team.token, delegated=True)
    if streaming:
        with sdk.responses.with_streaming_response.create(model="claude-opus-4-7", input="Hi", stream=True) as raw:
            headers = raw.headers
            text = "".join(e.delta for e in raw.parse() if e.type == "response.output_text.delta")
    else:
        plain = sdk.responses.with_raw_response.create(model="claude-opus-4-7", input="Hi")
        headers, text = plain.headers, plain.parse().output_text
    assert headers["x-byollm-route"] == "anthropic:claude-opus-4-7" and headers["x-byollm-fallbacks"] == "1"
    assert "[anthropic:" in text
    (row,) = rows(stack, team.uid, 1)
    assert [a.error_code for a in row["attempts"]] == ["quota_exceeded", None]
    assert row["billing"] == "ai_credits" and row["credits"] > 0


@pytest.mark.parametrize("host", ["bedrock", "openai"])
def test_failure_after_the_stream_started_is_an_error_and_a_failed_response(stack: Stack, host: str) -> None:
    team = stack.new_team()
    model = "gpt-5" if host == "openai" else "claude-opus-4-7"
    stack.fault(service=host, error="server_error" if host == "openai" else "InternalServerException",
                after_events=6, count=1)
    events = list(client(stack, team.token, delegated=host == "bedrock").responses.create(
        model=model, input="Tell me a rather long story about the sea", stream=True))
    assert events[0].type == "response.created"
    error, failed = events[-2:]
    assert error.type == "error" and error.code == "upstream_unavailable"
    assert "upstream_unavailable" in error.message and "retry shortly" in error.message
    assert failed.type == "response.failed" and failed.response.status == "failed"
    assert failed.response.error is not None and failed.response.error.message == error.message
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_errors_are_openai_shaped_with_the_taxonomy(stack: Stack) -> None:
    team = stack.new_team()
    sdk = client(stack, team.token, delegated=True)
    with pytest.raises(openai.BadRequestError) as chained:
        sdk.responses.create(model="claude-opus-4-7", input="Hi", previous_response_id="resp_123")
    body: Any = chained.value.body
    assert body["code"] == "invalid_request" and "previous_response_id" in body["message"]
    assert body["byollm"]["remediation"] and chained.value.response.headers["x-byollm-error-code"] == "invalid_request"
    with pytest.raises(openai.AuthenticationError) as anonymous:
        openai.OpenAI(base_url=stack.url + "/v1", api_key="not-a-token", max_retries=0).responses.create(
            model="gpt-5", input="Hi")
    assert anonymous.value.code == "unauthenticated"
    malformed = httpx.post(stack.url + "/v1/responses", json={"model": "gpt-5"},
                           headers={"authorization": f"Bearer {team.token}"})
    assert malformed.status_code == 400 and "input" in malformed.json()["error"]["message"]


def test_codex_shaped_request_on_a_claude_route(stack: Stack) -> None:
    """What Codex sends: developer messages, hosted tools beside function tools, reasoning and include."""
    team = stack.new_team()
    request: Any = {
        "model": "claude-sonnet-4-6", "stream": True, "store": False, "parallel_tool_calls": True,
        "tool_choice": "auto", "reasoning": {"summary": "auto"}, "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "k", "client_metadata": {"thread_id": "t"},
        "tools": [{"type": "function", "name": "exec_command", "strict": False, "description": "Run a command",
                   "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}},
                  {"type": "web_search", "external_web_access": False},
                  {"type": "namespace", "name": "multi_agent_v1", "description": "x", "tools": []}],
        "input": [{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be a tool."}]},
                  {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "say hi"}]}],
    }
    stack.clear_journal()
    with stack.gateway(team.token, stack.delegated_headers()).stream("POST", "/v1/responses", json=request) as raw:
        assert raw.status_code == 200
        body = "".join(raw.iter_text())
    assert "event: response.completed" in body and "You said: say hi" in body
    (sent,) = [e for e in stack.journal("bedrock-runtime") if "invoke" in e["path"]]
    forwarded = json.loads(sent["body"])
    assert forwarded["system"] == "Be a tool." and [t["name"] for t in forwarded["tools"]] == ["exec_command"]


@pytest.mark.parametrize(("model", "delegated", "host"), ROUTES, ids=ROUTE_IDS)
def test_custom_tool_round_trip(stack: Stack, model: str, delegated: bool, host: str) -> None:
    """A free-form (``custom``) tool, as Codex offers ``apply_patch``: its call comes back as a
    ``custom_tool_call`` with the raw input string, streamed and not, and its output goes back in."""
    team = stack.new_team(None if delegated else DIRECT_MODELS)
    sdk = client(stack, team.token, delegated=delegated)
    patch: Any = {"type": "custom", "name": "apply_patch", "description": "Apply a patch to files"}
    prompt = {"role": "user", "content": 'Use apply_patch with input="*** Begin Patch"'}
    plain = sdk.responses.create(model=model, input=[prompt], tools=[patch])
    (call,) = [item for item in plain.output if item.type == "custom_tool_call"]
    assert call.name == "apply_patch" and call.input == "*** Begin Patch" and call.call_id
    events = list(sdk.responses.create(model=model, input=[prompt], tools=[patch], stream=True))
    (streamed,) = [e.item for e in events
                   if e.type == "response.output_item.done" and e.item.type == "custom_tool_call"]
    assert streamed.input == "*** Begin Patch"
    answer = sdk.responses.create(model=model, tools=[patch], input=[
        prompt,
        {"type": "custom_tool_call", "call_id": call.call_id, "name": call.name, "input": call.input},
        {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done!"},
    ])
    assert f"[{host}:" in answer.output_text and "apply_patch returned: Done!" in answer.output_text


@pytest.mark.parametrize(("model", "delegated", "host"), ROUTES, ids=ROUTE_IDS)
def test_input_tokens_are_counted_for_the_same_request(stack: Stack, model: str, delegated: bool, host: str) -> None:
    """``client.responses.input_tokens.count``: the count of what ``responses.create`` would send, on the route
    that would serve it (an output format only OpenAI honours does not skip a Claude route here)."""
    team = stack.new_team(None if delegated else DIRECT_MODELS)
    sdk = client(stack, team.token, delegated=delegated)
    request: Any = {"model": model, "instructions": "Be brief.", "input": "Count these words please",
                    "tools": [WEATHER], "text": {"format": {"type": "json_object"}}}
    raw = sdk.responses.input_tokens.with_raw_response.count(**request)
    counted = raw.parse()
    assert counted.object == "response.input_tokens" and counted.input_tokens > 0
    assert raw.headers["x-byollm-route"].startswith(f"{host}:")
    if host != "openai":  # the simulated Claude counts exactly what it is later billed for
        del request["text"]
        answer = sdk.responses.create(**request)
        assert answer.usage is not None and answer.usage.input_tokens == counted.input_tokens


@pytest.mark.parametrize(("model", "delegated", "host"), ROUTES[:2], ids=ROUTE_IDS[:2])
def test_namespace_tools_reach_claude_and_come_back_namespaced(stack: Stack, model: str, delegated: bool,
                                                               host: str) -> None:
    """Codex groups its sub-agent tools in a ``namespace``: a Claude route sees ``agents__spawn_agent`` and the
    caller gets a ``function_call`` with ``namespace`` and the tool's own name."""
    team = stack.new_team(None if delegated else DIRECT_MODELS)
    sdk = client(stack, team.token, delegated=delegated)
    group: Any = {"type": "namespace", "name": "agents", "description": "Sub-agents", "tools": [
        {"type": "function", "name": "spawn_agent", "description": "Spawn a sub-agent",
         "parameters": {"type": "object", "properties": {"task": {"type": "string"}}, "required": ["task"]}}]}
    prompt = {"role": "user", "content": "Use agents__spawn_agent with task=tests"}
    response = sdk.responses.create(model=model, input=[prompt], tools=[group])
    (call,) = [item for item in response.output if item.type == "function_call"]
    assert (call.namespace, call.name, json.loads(call.arguments)) == ("agents", "spawn_agent", {"task": "tests"})
    answer = sdk.responses.create(model=model, tools=[group], input=[
        prompt, {"type": "function_call", "call_id": call.call_id, "namespace": "agents", "name": "spawn_agent",
                 "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "agent 7 started"}])
    assert f"[{host}:" in answer.output_text and "agents__spawn_agent returned: agent 7 started" in answer.output_text
