"""The simulated OpenAI Chat Completions API, driven by the unmodified official ``openai`` SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from byollm.sim.server import SimServer

MODEL = "gpt-5"
WEATHER_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}


@pytest.fixture
def key(sim: SimServer) -> str:
    return sorted(sim.state.provider_keys("openai"))[0]


@pytest.fixture
def gpt(sim: SimServer, key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key=key, base_url=f"{sim.url}/openai/v1", max_retries=0, timeout=10) as c:
        yield c


def test_plain_completion(gpt: openai.OpenAI) -> None:
    completion = gpt.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Say hello."}],
    )
    assert completion.object == "chat.completion"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.content == f"[openai:{MODEL}] You said: Say hello."
    assert completion.usage is not None
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_streaming_with_usage(gpt: openai.OpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Stream me a reply."}]
    chunks = list(
        gpt.chat.completions.create(model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True})
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    plain = gpt.chat.completions.create(model=MODEL, messages=messages)
    assert text == plain.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert plain.usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_tool_calls_loop_plain_and_streamed(gpt: openai.OpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Call get_weather for Madrid for 2 days"}]
    first = gpt.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert first.choices[0].finish_reason == "tool_calls"
    calls = first.choices[0].message.tool_calls
    assert calls is not None
    call = calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Madrid", "days": 2}

    streamed = list(gpt.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL], stream=True))
    arguments = "".join(
        tc.function.arguments or ""
        for c in streamed
        for tc in (c.choices[0].delta.tool_calls or [])
        if tc.function is not None
    )
    assert json.loads(arguments) == json.loads(call.function.arguments)

    messages += [
        first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
        {"role": "tool", "tool_call_id": call.id, "content": "Clear skies"},
    ]
    final = gpt.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert final.choices[0].finish_reason == "stop"
    assert "get_weather returned: Clear skies" in (final.choices[0].message.content or "")


def test_models_endpoint(gpt: openai.OpenAI) -> None:
    assert sorted(m.id for m in gpt.models.list()) == ["gpt-5", "gpt-5-mini"]
    assert gpt.models.retrieve("gpt-5-mini").id == "gpt-5-mini"


def test_auth_and_model_errors(sim: SimServer, key: str) -> None:
    bad = openai.OpenAI(api_key="sk-wrong", base_url=f"{sim.url}/openai/v1", max_retries=0)
    with bad, pytest.raises(openai.AuthenticationError) as auth:
        bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert auth.value.code == "invalid_api_key"
    assert auth.value.request_id
    good = openai.OpenAI(api_key=key, base_url=f"{sim.url}/openai/v1", max_retries=0)
    with good, pytest.raises(openai.NotFoundError) as missing:
        good.chat.completions.create(model="gpt-0", messages=[{"role": "user", "content": "x"}])
    assert missing.value.code == "model_not_found"
    raw = httpx.post(f"{sim.url}/openai/v1/chat/completions", json={"model": MODEL, "messages": []})
    assert raw.status_code == 401
    assert set(raw.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("error", "exception", "status"),
    [
        ("rate_limit_exceeded", openai.RateLimitError, 429),
        ("insufficient_quota", openai.RateLimitError, 429),
        ("server_error", openai.InternalServerError, 500),
        ("service_unavailable", openai.InternalServerError, 503),
    ],
)
def test_injected_errors(
    sim: SimServer, gpt: openai.OpenAI, error: str, exception: type[Exception], status: int
) -> None:
    sim.state.faults.add({"service": "openai", "model": MODEL, "error": error, "count": 1})
    with pytest.raises(exception) as raised:
        gpt.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert isinstance(raised.value, openai.APIStatusError)
    assert raised.value.status_code == status
    gpt.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])


def test_mid_stream_error(sim: SimServer, gpt: openai.OpenAI) -> None:
    sim.state.faults.add({"service": "openai", "error": "server_error", "after_events": 2, "count": 1})
    received = 0
    stream = gpt.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "a long enough reply please"}], stream=True
    )
    with pytest.raises(openai.APIError) as raised:  # noqa: PT012 - the error arrives mid-iteration
        for _ in stream:
            received += 1
    assert received == 2
    assert raised.value.body == {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }


def test_connection_reset(sim: SimServer, gpt: openai.OpenAI) -> None:
    sim.state.faults.add({"service": "openai", "reset": True, "count": 1})
    with pytest.raises(openai.APIConnectionError):
        gpt.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
