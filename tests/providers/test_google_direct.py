"""The direct Gemini adapter against the simulator: a Claude-shaped (canonical) request served by a Gemini
model, plain and streaming (SSE with CRLF frames), a tool-use conversation across providers, countTokens,
the headers it sends, and every failure class injected through the simulator's fault rules."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from byollm.errors import ByollmError, ErrorClass
from byollm.policy.types import Host
from byollm.providers.google_direct import GoogleDirect
from byollm.providers.http import HttpPool
from byollm.sim import SimServer
from providers.provider_support import (
    WEATHER_TOOL,
    CallFactory,
    accumulate,
    add_fault,
    collect_failure,
    journal,
)

MODEL = "gemini-2.5-pro"
ALLOWED_HEADERS = {"host", "accept", "accept-encoding", "content-length", "content-type", "user-agent",
                   "x-goog-api-key"}


def body(text: str = "Name a colour.", **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-6", "max_tokens": 200, "system": "Be brief.",
            "messages": [{"role": "user", "content": text}], **extra}



async def test_complete(pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient, sim: SimServer) -> None:
    call = make_call(Host.GOOGLE, MODEL, body(), extra_headers={"authorization": "Bearer byollm-canary"})
    done = await GoogleDirect(pool).complete(call)
    assert done.message["content"] == [{"type": "text", "text": f"[google:{MODEL}] You said: Name a colour."}]
    assert done.message["stop_reason"] == "end_turn"
    assert done.usage.input_tokens > 0
    assert done.usage.output_tokens > 0
    sent = (await journal(admin, "google"))[-1]
    assert sent["path"] == f"/google/v1beta/models/{MODEL}:generateContent"
    assert sent["query"] == ""  # the key is never in the URL
    headers = dict(sent["headers"])
    assert set(headers) <= ALLOWED_HEADERS
    assert headers["x-goog-api-key"] == sorted(sim.state.provider_keys("google"))[0]
    assert "canary" not in str(sent)
    assert orjson.loads(sent["body"])["systemInstruction"] == {"parts": [{"text": "Be brief."}]}


async def test_stream(pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient) -> None:
    events = [e async for e in GoogleDirect(pool).stream(make_call(Host.GOOGLE, MODEL, body(), stream=True))]
    message = accumulate(e.data for e in events)
    assert message["content"][0]["text"] == f"[google:{MODEL}] You said: Name a colour."
    assert message["usage"]["output_tokens"] > 0
    assert (await journal(admin, "google"))[-1]["query"] == "alt=sse"


@pytest.mark.parametrize("stream", [False, True])
async def test_claude_tool_conversation_answered_by_gemini(pool: HttpPool, make_call: CallFactory,
                                                           stream: bool) -> None:
    provider = GoogleDirect(pool)

    async def ask(request: dict[str, Any]) -> dict[str, Any]:
        call = make_call(Host.GOOGLE, MODEL, request, stream=stream)
        if stream:
            return accumulate([e.data async for e in provider.stream(call)])
        return dict((await provider.complete(call)).message)

    first = body("Use get_weather for Paris", tools=[WEATHER_TOOL])
    answer = await ask(first)
    assert answer["stop_reason"] == "tool_use"
    tool_use = answer["content"][-1]
    assert (tool_use["type"], tool_use["name"], tool_use["input"]) == ("tool_use", "get_weather", {"city": "Paris"})
    assert tool_use["id"].startswith("toolu_")
    follow = {**first, "messages": [*first["messages"], {"role": "assistant", "content": answer["content"]},
                                    {"role": "user", "content": [
                                        {"type": "tool_result", "tool_use_id": tool_use["id"], "content": "sunny"}]}]}
    final = await ask(follow)
    assert final["stop_reason"] == "end_turn"
    assert "get_weather returned:" in final["content"][0]["text"]
    assert "sunny" in final["content"][0]["text"]


async def test_count_tokens(pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient) -> None:
    provider = GoogleDirect(pool)
    request = body(tools=[WEATHER_TOOL])
    counted = await provider.count_tokens(make_call(Host.GOOGLE, MODEL, request))
    done = await provider.complete(make_call(Host.GOOGLE, MODEL, request))
    assert counted == done.usage.input_tokens
    assert (await journal(admin, "google"))[0]["path"] == f"/google/v1beta/models/{MODEL}:countTokens"


async def _fail(pool: HttpPool, call: Any, *, stream: bool) -> ByollmError:
    error, _ = await collect_failure(GoogleDirect(pool), call, stream=stream)
    return error


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("RESOURCE_EXHAUSTED", ErrorClass.QUOTA_EXCEEDED),
        ("INTERNAL", ErrorClass.UPSTREAM_UNAVAILABLE),
        ("UNAVAILABLE", ErrorClass.UPSTREAM_UNAVAILABLE),
        ("PERMISSION_DENIED", ErrorClass.INSUFFICIENT_PERMISSIONS),
        ("INVALID_ARGUMENT", ErrorClass.INVALID_REQUEST),
    ],
)
async def test_injected_errors(pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient, stream: bool,
                               error: str, expected: ErrorClass) -> None:
    await add_fault(admin, service="google", error=error, count=1)
    failure = await _fail(pool, make_call(Host.GOOGLE, MODEL, body(), stream=stream), stream=stream)
    assert failure.error_class is expected
    assert failure.context["upstream_error"] == error


@pytest.mark.parametrize("stream", [False, True])
async def test_bad_key_and_unknown_model(pool: HttpPool, make_call: CallFactory, stream: bool) -> None:
    rejected = await _fail(pool, make_call(Host.GOOGLE, MODEL, body(), stream=stream, key="AIzaWrong"), stream=stream)
    assert rejected.error_class is ErrorClass.PROVIDER_KEY_REJECTED  # a 400 carrying API_KEY_INVALID
    assert rejected.context["upstream_status"] == 400
    assert rejected.context["upstream_error"] == "API_KEY_INVALID"
    missing = await _fail(pool, make_call(Host.GOOGLE, "gemini-0", body(), stream=stream), stream=stream)
    assert missing.error_class is ErrorClass.REGION_MODEL_MISMATCH


async def test_mid_stream_error(pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient) -> None:
    await add_fault(admin, service="google", error="UNAVAILABLE", after_events=1)
    long_prompt = body("Tell me about " + "many things " * 10)
    call = make_call(Host.GOOGLE, MODEL, long_prompt, stream=True)
    error, seen = await collect_failure(GoogleDirect(pool), call, stream=True)
    assert seen[0] == "message_start"
    assert error.error_class is ErrorClass.UPSTREAM_UNAVAILABLE


@pytest.mark.parametrize("stream", [False, True])
async def test_timeout_and_reset(
    pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient, stream: bool
) -> None:
    await add_fault(admin, service="google", timeout=True, count=1)
    slow = await _fail(pool, make_call(Host.GOOGLE, MODEL, body(), stream=stream, timeout_s=0.5), stream=stream)
    assert (slow.error_class, slow.context["reason"]) == (ErrorClass.UPSTREAM_UNAVAILABLE, "timeout")
    await add_fault(admin, service="google", reset=True, count=1)
    dropped = await _fail(pool, make_call(Host.GOOGLE, MODEL, body(), stream=stream), stream=stream)
    assert dropped.error_class is ErrorClass.UPSTREAM_UNAVAILABLE


async def test_stream_cut_before_finish_is_unavailable(pool: HttpPool, make_call: CallFactory,
                                                       admin: httpx.AsyncClient) -> None:
    await add_fault(admin, service="google", reset=True, after_events=1)
    long_prompt = body("Tell me about " + "many things " * 10)
    error = await _fail(pool, make_call(Host.GOOGLE, MODEL, long_prompt, stream=True), stream=True)
    assert error.error_class is ErrorClass.UPSTREAM_UNAVAILABLE
    assert error.context["reason"] == "connection"
