"""The direct Anthropic adapter against the simulator: pass-through, streaming, tools, counting, the headers
it sends, and every failure class injected through the simulator's fault rules."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from byollm.errors import ByollmError, ErrorClass
from byollm.policy.types import Host
from byollm.providers.anthropic_direct import AnthropicDirect
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

MODEL = "claude-sonnet-4-6"
ALLOWED_HEADERS = {"host", "accept", "accept-encoding", "content-length", "content-type", "user-agent",
                   "x-api-key", "anthropic-version", "anthropic-beta"}


def body(text: str = "Name a colour.", **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet", "max_tokens": 200, "messages": [{"role": "user", "content": text}], **extra}



async def test_complete_passes_through(pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient) -> None:
    provider = AnthropicDirect(pool)
    done = await provider.complete(make_call(Host.ANTHROPIC, MODEL, body(stream=False)))
    assert done.message["content"][0]["text"] == f"[anthropic:{MODEL}] You said: Name a colour."
    assert done.raw is not None
    assert orjson.loads(done.raw) == done.message
    assert done.usage.input_tokens == done.message["usage"]["input_tokens"] > 0
    sent = (await journal(admin, "anthropic"))[-1]
    assert orjson.loads(sent["body"])["model"] == MODEL  # the route's id replaced the caller's name
    assert "stream" not in orjson.loads(sent["body"])


async def test_only_its_own_headers_are_sent(pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient,
                                             sim: SimServer) -> None:
    call = make_call(Host.ANTHROPIC, MODEL, body(), anthropic_beta=("tools-2024-05-16", "prompt-caching-2024-07-31"),
                     extra_headers={"authorization": "Bearer byollm-canary-token", "x-amz-security-token": "canary"})
    await AnthropicDirect(pool).complete(call)
    headers = dict((await journal(admin, "anthropic"))[-1]["headers"])
    assert set(headers) <= ALLOWED_HEADERS
    assert headers["x-api-key"] == sorted(sim.state.provider_keys("anthropic"))[0]
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "tools-2024-05-16,prompt-caching-2024-07-31"
    assert headers["user-agent"] == "byollm"
    assert "canary" not in str(await journal(admin, "anthropic"))


async def test_stream_keeps_raw_event_bytes(pool: HttpPool, make_call: CallFactory) -> None:
    events = [e async for e in AnthropicDirect(pool).stream(make_call(Host.ANTHROPIC, MODEL, body(), stream=True))]
    assert events[0].type == "message_start"
    assert events[-1].type == "message_stop"
    assert "ping" in [e.type for e in events]
    for event in events:
        assert event.raw is not None
        assert orjson.loads(event.raw) == event.data
    message = accumulate(e.data for e in events if e.type != "ping")
    assert message["content"][0]["text"] == f"[anthropic:{MODEL}] You said: Name a colour."


async def test_tools_round_trip(pool: HttpPool, make_call: CallFactory) -> None:
    provider = AnthropicDirect(pool)
    first = body("Use get_weather for Paris", tools=[WEATHER_TOOL])
    done = await provider.complete(make_call(Host.ANTHROPIC, MODEL, first))
    assert done.message["stop_reason"] == "tool_use"
    call = done.message["content"][-1]
    assert call["input"] == {"city": "Paris"}
    follow = {**first, "messages": [*first["messages"], {"role": "assistant", "content": done.message["content"]},
                                    {"role": "user", "content": [
                                        {"type": "tool_result", "tool_use_id": call["id"], "content": "sunny"}]}]}
    events = [e.data async for e in provider.stream(make_call(Host.ANTHROPIC, MODEL, follow, stream=True))]
    answer = accumulate(e for e in events if e["type"] != "ping")
    assert "get_weather returned: sunny" in answer["content"][0]["text"]


async def test_count_tokens_matches_usage(pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient) -> None:
    provider = AnthropicDirect(pool)
    request = body(tools=[WEATHER_TOOL], system="Be brief.")
    counted = await provider.count_tokens(make_call(Host.ANTHROPIC, MODEL, request))
    done = await provider.complete(make_call(Host.ANTHROPIC, MODEL, request))
    assert counted == done.usage.input_tokens
    sent = orjson.loads((await journal(admin, "anthropic"))[0]["body"])
    assert set(sent) == {"model", "messages", "system", "tools"}  # count_tokens refuses max_tokens


async def _fail(pool: HttpPool, call: Any, *, stream: bool) -> ByollmError:
    error, _ = await collect_failure(AnthropicDirect(pool), call, stream=stream)
    return error


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("fault", "expected", "upstream_error"),
    [
        ({"error": "rate_limit_error"}, ErrorClass.QUOTA_EXCEEDED, "rate_limit_error"),
        ({"error": "api_error"}, ErrorClass.UPSTREAM_UNAVAILABLE, "api_error"),
        ({"error": "overloaded_error"}, ErrorClass.UPSTREAM_UNAVAILABLE, "overloaded_error"),
        ({"error": "permission_error"}, ErrorClass.INSUFFICIENT_PERMISSIONS, "permission_error"),
        ({"error": "invalid_request_error"}, ErrorClass.INVALID_REQUEST, "invalid_request_error"),
        ({"error": "api_error", "status": 503}, ErrorClass.UPSTREAM_UNAVAILABLE, "api_error"),
    ],
)
async def test_injected_errors(pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient, stream: bool,
                               fault: dict[str, Any], expected: ErrorClass, upstream_error: str) -> None:
    await add_fault(admin, service="anthropic", count=1, **fault)
    error = await _fail(pool, make_call(Host.ANTHROPIC, MODEL, body(), stream=stream), stream=stream)
    assert error.error_class is expected
    assert error.context["provider"] == "anthropic"
    assert error.context["upstream_error"] == upstream_error
    assert str(error.context["upstream_request_id"]).startswith("req_")
    assert error.error_class.fails_over is (expected is not ErrorClass.INVALID_REQUEST)


@pytest.mark.parametrize("stream", [False, True])
async def test_bad_key_and_unknown_model(pool: HttpPool, make_call: CallFactory, stream: bool) -> None:
    rejected = await _fail(pool, make_call(Host.ANTHROPIC, MODEL, body(), stream=stream, key="sk-ant-wrong"),
                           stream=stream)
    assert rejected.error_class is ErrorClass.PROVIDER_KEY_REJECTED
    assert rejected.context["upstream_status"] == 401
    missing = await _fail(pool, make_call(Host.ANTHROPIC, "claude-nonexistent-9", body(), stream=stream),
                          stream=stream)
    assert missing.error_class is ErrorClass.REGION_MODEL_MISMATCH
    assert missing.context["upstream_status"] == 404
    assert missing.context["upstream_model"] == "claude-nonexistent-9"


async def test_mid_stream_error_event(pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient) -> None:
    await add_fault(admin, service="anthropic", error="overloaded_error", after_events=3)
    call = make_call(Host.ANTHROPIC, MODEL, body(), stream=True)
    error, seen = await collect_failure(AnthropicDirect(pool), call, stream=True)
    assert seen[0] == "message_start"
    assert error.error_class is ErrorClass.UPSTREAM_UNAVAILABLE
    assert error.context["upstream_error"] == "overloaded_error"
    assert "upstream_status" not in error.context


@pytest.mark.parametrize("stream", [False, True])
async def test_timeout(pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient, stream: bool) -> None:
    await add_fault(admin, service="anthropic", timeout=True, count=1)
    error = await _fail(pool, make_call(Host.ANTHROPIC, MODEL, body(), stream=stream, timeout_s=0.5), stream=stream)
    assert error.error_class is ErrorClass.UPSTREAM_UNAVAILABLE
    assert error.context["reason"] == "timeout"


async def test_stall_between_chunks(pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient) -> None:
    await add_fault(admin, service="anthropic", timeout=True, after_events=2)
    call = make_call(Host.ANTHROPIC, MODEL, body(), stream=True, read_timeout_s=0.3)
    error = await _fail(pool, call, stream=True)
    assert error.context["reason"] == "timeout"


@pytest.mark.parametrize("stream", [False, True])
async def test_connection_reset(pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient, stream: bool) -> None:
    await add_fault(admin, service="anthropic", reset=True, count=1)
    error = await _fail(pool, make_call(Host.ANTHROPIC, MODEL, body(), stream=stream), stream=stream)
    assert error.error_class is ErrorClass.UPSTREAM_UNAVAILABLE
    assert error.context["reason"] in ("connection", "malformed")


async def test_reset_mid_stream(pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient) -> None:
    await add_fault(admin, service="anthropic", reset=True, after_events=2)
    error = await _fail(pool, make_call(Host.ANTHROPIC, MODEL, body(), stream=True), stream=True)
    assert error.error_class is ErrorClass.UPSTREAM_UNAVAILABLE
    assert error.context["reason"] == "connection"


async def test_unreachable_host(pool: HttpPool, make_call: CallFactory) -> None:
    import dataclasses

    call = dataclasses.replace(make_call(Host.ANTHROPIC, MODEL, body()), base_url="http://127.0.0.1:9")
    error = await _fail(pool, call, stream=False)
    assert error.error_class is ErrorClass.UPSTREAM_UNAVAILABLE
    assert error.context["reason"] == "connection"


async def test_closing_the_stream_early_closes_upstream(pool: HttpPool, make_call: CallFactory) -> None:
    stream = AnthropicDirect(pool).stream(make_call(Host.ANTHROPIC, MODEL, body(), stream=True))
    first = await anext(stream)
    assert first.type == "message_start"
    await stream.aclose()  # a client disconnect: must not raise, must release the connection
    done = await AnthropicDirect(pool).complete(make_call(Host.ANTHROPIC, MODEL, body()))
    assert done.message["type"] == "message"


async def test_overloaded_529_fails_over(pool: HttpPool, make_call: CallFactory, admin: httpx.AsyncClient) -> None:
    await add_fault(admin, service="anthropic", error="overloaded_error", count=1)
    error = await _fail(pool, make_call(Host.ANTHROPIC, MODEL, body()), stream=False)
    assert error.context["upstream_status"] == 529
    assert error.error_class is ErrorClass.UPSTREAM_UNAVAILABLE
    assert error.error_class.fails_over
