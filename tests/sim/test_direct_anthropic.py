"""The simulated Anthropic Messages API, driven by the unmodified official ``anthropic`` SDK."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anthropic
import httpx
import pytest

from byollm.sim.server import SimServer

MODEL = "claude-sonnet-4-6"
WEATHER_TOOL: anthropic.types.ToolParam = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
def key(sim: SimServer) -> str:
    return sorted(sim.state.provider_keys("anthropic"))[0]


@pytest.fixture
def claude(sim: SimServer, key: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key=key, base_url=f"{sim.url}/anthropic", max_retries=0, timeout=10) as c:
        yield c


def test_plain_message(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "Name a colour."}]
    )
    assert message.type == "message"
    assert message.id.startswith("msg_")
    assert message.stop_reason == "end_turn"
    first = message.content[0]
    assert first.type == "text"
    assert first.text == f"[anthropic:{MODEL}] You said: Name a colour."
    counted = claude.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "Name a colour."}])
    assert counted.input_tokens == message.usage.input_tokens


def test_streaming_matches_the_plain_reply(claude: anthropic.Anthropic) -> None:
    messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Stream this back to me."}]
    with claude.messages.stream(model=MODEL, max_tokens=200, messages=messages) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    plain = claude.messages.create(model=MODEL, max_tokens=200, messages=messages)
    assert plain.content[0].type == "text"
    assert streamed == plain.content[0].text
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert final.usage.input_tokens == plain.usage.input_tokens


def test_tool_use_loop(claude: anthropic.Anthropic) -> None:
    messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Use get_weather for Lisbon"}]
    first = claude.messages.create(model=MODEL, max_tokens=300, messages=messages, tools=[WEATHER_TOOL])
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.name == "get_weather"
    assert call.input == {"city": "Lisbon"}
    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 24C"}],
        },
    ]
    with claude.messages.stream(model=MODEL, max_tokens=300, messages=messages, tools=[WEATHER_TOOL]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn"
    assert final.content[0].type == "text"
    assert "get_weather returned: Sunny, 24C" in final.content[0].text


def test_streamed_tool_use_arrives_as_json_deltas(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model=MODEL,
        max_tokens=300,
        messages=[{"role": "user", "content": "anything"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
    ) as stream:
        final = stream.get_final_message()
    call = final.content[-1]
    assert call.type == "tool_use"
    assert call.input == {"city": "anything"}


def test_max_tokens_stop(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=MODEL, max_tokens=3, messages=[{"role": "user", "content": "a long prompt to be cut"}]
    )
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


def test_bad_key_unknown_model_and_missing_version(sim: SimServer, key: str) -> None:
    bad = anthropic.Anthropic(api_key="sk-ant-wrong", base_url=f"{sim.url}/anthropic", max_retries=0)
    with bad, pytest.raises(anthropic.AuthenticationError) as auth:
        bad.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert auth.value.status_code == 401
    assert auth.value.request_id
    assert auth.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
    }
    with anthropic.Anthropic(api_key=key, base_url=f"{sim.url}/anthropic", max_retries=0) as good:
        with pytest.raises(anthropic.NotFoundError):
            good.messages.create(model="claude-9", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        with pytest.raises(anthropic.BadRequestError):
            good.messages.create(model=MODEL, max_tokens=5, messages=[])
    raw = httpx.post(
        f"{sim.url}/anthropic/v1/messages",
        headers={"x-api-key": key},
        json={"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
    )
    assert raw.status_code == 400
    assert raw.json()["error"]["type"] == "invalid_request_error"
    assert raw.headers["request-id"].startswith("req_")


@pytest.mark.parametrize(
    ("error", "exception", "status"),
    [
        ("invalid_request_error", anthropic.BadRequestError, 400),
        ("permission_error", anthropic.PermissionDeniedError, 403),
        ("rate_limit_error", anthropic.RateLimitError, 429),
        ("api_error", anthropic.InternalServerError, 500),
        ("overloaded_error", anthropic.OverloadedError, 529),
    ],
)
def test_injected_errors_raise_the_sdk_typed_exception(
    sim: SimServer, claude: anthropic.Anthropic, error: str, exception: type[Exception], status: int
) -> None:
    sim.state.faults.add({"service": "anthropic", "model": MODEL, "error": error, "count": 1})
    with pytest.raises(exception) as raised:
        claude.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert isinstance(raised.value, anthropic.APIStatusError)
    assert raised.value.status_code == status
    assert raised.value.body["error"]["type"] == error  # type: ignore[index]
    # the rule was for one call only
    claude.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])


def test_mid_stream_error_event(sim: SimServer, claude: anthropic.Anthropic) -> None:
    sim.state.faults.add({"service": "anthropic", "error": "overloaded_error", "after_events": 3, "count": 1})
    received: list[str] = []
    stream = claude.messages.stream(
        model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "a long enough reply"}]
    )
    with pytest.raises(anthropic.APIStatusError) as raised, stream as events:  # noqa: PT012 - fails mid-iteration
        for event in events:
            received.append(event.type)
    assert received[:2] == ["message_start", "content_block_start"]
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


def test_connection_reset_and_timeout_faults(sim: SimServer, key: str) -> None:
    base = f"{sim.url}/anthropic"
    messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": "x"}]
    sim.state.faults.add({"service": "anthropic", "reset": True, "count": 1})
    with (
        anthropic.Anthropic(api_key=key, base_url=base, max_retries=0) as c,
        pytest.raises(anthropic.APIConnectionError),
    ):
        c.messages.create(model=MODEL, max_tokens=5, messages=messages)
    sim.state.faults.add({"service": "anthropic", "timeout": True, "count": 1})
    with (
        anthropic.Anthropic(api_key=key, base_url=base, max_retries=0, timeout=0.5) as c,
        pytest.raises(anthropic.APITimeoutError),
    ):
        c.messages.create(model=MODEL, max_tokens=5, messages=messages)


def test_streaming_is_paced_by_the_world_latency(sim: SimServer, claude: anthropic.Anthropic) -> None:
    behaviour = sim.state.world.behaviour
    behaviour.per_model[MODEL] = (0.3, 0.01)
    try:
        started = time.monotonic()
        with claude.messages.stream(
            model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "one two three"}]
        ) as stream:
            first_text = next(iter(stream.text_stream))
            first_at = time.monotonic() - started
            rest = "".join(stream.text_stream)
        total = time.monotonic() - started
    finally:
        del behaviour.per_model[MODEL]
    assert first_text
    assert rest
    assert first_at >= 0.3
    assert total >= 0.3 + 0.01 * 10
