"""The direct OpenAI adapter against the simulator: a Claude-shaped (canonical) request served by an OpenAI
model, plain and streaming, a tool-use conversation across providers, the local token estimate, the
headers it sends, and every failure class injected through the simulator's fault rules."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import orjson
import pytest

from byollm.errors import ByollmError, ErrorClass
from byollm.policy.types import Host
from byollm.providers.http import HttpPool
from byollm.providers.openai_direct import OpenAIDirect
from byollm.sim import SimServer
from providers.provider_support import (
    WEATHER_TOOL,
    CallFactory,
    accumulate,
    add_fault,
    collect_failure,
    journal,
)

MODEL = "gpt-5"
ALLOWED_HEADERS = {"host", "accept", "accept-encoding", "content-length", "content-type", "user-agent",
                   "authorization"}


def body(text: str = "Name a colour.", **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-6", "max_tokens": 200, "system": "Be brief.",
            "messages": [{"role": "user", "content": text}], **extra}



async def test_complete(pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient, sim: SimServer) -> None:
    done = await OpenAIDirect(pool).complete(make_call(Host.OPENAI, MODEL, body()))
    assert done.message["content"] == [{"type": "text", "text": f"[openai:{MODEL}] You said: Name a colour."}]
    assert done.message["stop_reason"] == "end_turn"
    assert done.message["model"] == MODEL
    assert done.raw is None
    assert done.usage.input_tokens > 0
    assert done.usage.output_tokens > 0
    sent = (await journal(admin, "openai"))[-1]
    assert sent["path"] == "/openai/v1/chat/completions"
    request = orjson.loads(sent["body"])
    assert request["model"] == MODEL
    assert request["messages"][0] == {"role": "system", "content": "Be brief."}
    headers = dict(sent["headers"])
    assert set(headers) <= ALLOWED_HEADERS
    assert headers["authorization"] == "Bearer " + sorted(sim.state.provider_keys("openai"))[0]


async def test_extra_headers_and_client_values_are_never_forwarded(pool: HttpPool, make_call: CallFactory,
                                                                   admin: httpx.AsyncClient) -> None:
    call = make_call(Host.OPENAI, MODEL, body(), anthropic_beta=("beta-canary",),
                     extra_headers={"x-api-key": "byollm-canary", "x-amz-security-token": "aws-canary"})
    await OpenAIDirect(pool).complete(call)
    sent = (await journal(admin, "openai"))[-1]
    assert set(dict(sent["headers"])) <= ALLOWED_HEADERS
    assert "canary" not in str(sent)


async def test_stream(pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient) -> None:
    events = [e async for e in OpenAIDirect(pool).stream(make_call(Host.OPENAI, MODEL, body(), stream=True))]
    message = accumulate(e.data for e in events)
    assert message["content"][0]["text"] == f"[openai:{MODEL}] You said: Name a colour."
    assert message["usage"]["output_tokens"] > 0
    assert message["usage"]["input_tokens"] > 0
    assert all(e.type == e.data["type"] for e in events)
    request = orjson.loads((await journal(admin, "openai"))[-1]["body"])
    assert request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("stream", [False, True])
async def test_claude_tool_conversation_answered_by_openai(pool: HttpPool, make_call: CallFactory,
                                                           stream: bool) -> None:
    """A Claude request with tools falls back to GPT: the tool call comes back as tool_use, and the
    tool_result sent next is understood."""
    provider = OpenAIDirect(pool)

    async def ask(request: dict[str, Any]) -> dict[str, Any]:
        call = make_call(Host.OPENAI, MODEL, request, stream=stream)
        if stream:
            return accumulate([e.data async for e in provider.stream(call)])
        return dict((await provider.complete(call)).message)

    first = body("Use get_weather for Paris", tools=[WEATHER_TOOL], tool_choice={"type": "auto"})
    answer = await ask(first)
    assert answer["stop_reason"] == "tool_use"
    tool_use = answer["content"][-1]
    assert tool_use["type"] == "tool_use"
    assert tool_use["name"] == "get_weather"
    assert tool_use["input"] == {"city": "Paris"}
    follow = {**first, "messages": [*first["messages"], {"role": "assistant", "content": answer["content"]},
                                    {"role": "user", "content": [
                                        {"type": "tool_result", "tool_use_id": tool_use["id"], "content": "sunny"}]}]}
    final = await ask(follow)
    assert final["stop_reason"] == "end_turn"
    assert "get_weather returned: sunny" in final["content"][0]["text"]


async def test_count_tokens_is_a_local_estimate(
    pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient
) -> None:
    short = await OpenAIDirect(pool).count_tokens(make_call(Host.OPENAI, MODEL, body("hi")))
    long = await OpenAIDirect(pool).count_tokens(make_call(Host.OPENAI, MODEL, body("hi " * 400,
                                                                                    tools=[WEATHER_TOOL])))
    assert 0 < short < long
    assert 250 < long < 500
    assert (await journal(admin, "openai")) == []  # no upstream call


async def _fail(pool: HttpPool, call: Any, *, stream: bool) -> ByollmError:
    error, _ = await collect_failure(OpenAIDirect(pool), call, stream=stream)
    return error


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("rate_limit_exceeded", ErrorClass.QUOTA_EXCEEDED),
        ("insufficient_quota", ErrorClass.QUOTA_EXCEEDED),
        ("server_error", ErrorClass.UPSTREAM_UNAVAILABLE),
        ("service_unavailable", ErrorClass.UPSTREAM_UNAVAILABLE),
        ("invalid_request_error", ErrorClass.INVALID_REQUEST),
    ],
)
async def test_injected_errors(pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient, stream: bool,
                               error: str, expected: ErrorClass) -> None:
    await add_fault(admin, service="openai", error=error, count=1)
    failure = await _fail(pool, make_call(Host.OPENAI, MODEL, body(), stream=stream), stream=stream)
    assert failure.error_class is expected
    assert failure.context["provider"] == "openai"


@pytest.mark.parametrize("stream", [False, True])
async def test_bad_key_and_unknown_model(pool: HttpPool, make_call: CallFactory, stream: bool) -> None:
    rejected = await _fail(pool, make_call(Host.OPENAI, MODEL, body(), stream=stream, key="sk-wrong"), stream=stream)
    assert rejected.error_class is ErrorClass.PROVIDER_KEY_REJECTED
    assert rejected.context["upstream_error"] == "invalid_api_key"
    missing = await _fail(pool, make_call(Host.OPENAI, "gpt-0", body(), stream=stream), stream=stream)
    assert missing.error_class is ErrorClass.REGION_MODEL_MISMATCH
    assert missing.context["upstream_status"] == 404


async def test_mid_stream_error(pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient) -> None:
    await add_fault(admin, service="openai", error="server_error", after_events=2)
    call = make_call(Host.OPENAI, MODEL, body(), stream=True)
    error, seen = await collect_failure(OpenAIDirect(pool), call, stream=True)
    assert seen[0] == "message_start"
    assert error.error_class is ErrorClass.UPSTREAM_UNAVAILABLE
    assert "upstream_status" not in error.context


@pytest.mark.parametrize("stream", [False, True])
async def test_timeout_and_reset(
    pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient, stream: bool
) -> None:
    await add_fault(admin, service="openai", timeout=True, count=1)
    slow = await _fail(pool, make_call(Host.OPENAI, MODEL, body(), stream=stream, timeout_s=0.5), stream=stream)
    assert (slow.error_class, slow.context["reason"]) == (ErrorClass.UPSTREAM_UNAVAILABLE, "timeout")
    await add_fault(admin, service="openai", reset=True, count=1)
    dropped = await _fail(pool, make_call(Host.OPENAI, MODEL, body(), stream=stream), stream=stream)
    assert dropped.error_class is ErrorClass.UPSTREAM_UNAVAILABLE


async def test_stall_and_reset_mid_stream(pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient) -> None:
    await add_fault(admin, service="openai", timeout=True, after_events=2)
    stalled = await _fail(pool, make_call(Host.OPENAI, MODEL, body(), stream=True, read_timeout_s=0.3), stream=True)
    assert stalled.context["reason"] == "timeout"
    (await admin.delete("/faults")).raise_for_status()
    await add_fault(admin, service="openai", reset=True, after_events=2)
    dropped = await _fail(pool, make_call(Host.OPENAI, MODEL, body(), stream=True), stream=True)
    assert dropped.context["reason"] == "connection"


async def test_base_url_with_v1_suffix(pool: HttpPool, make_call: CallFactory) -> None:
    call = make_call(Host.OPENAI, MODEL, body())
    call = dataclasses.replace(call, base_url=call.base_url + "/v1/")
    done = await OpenAIDirect(pool).complete(call)
    assert done.message["stop_reason"] == "end_turn"
