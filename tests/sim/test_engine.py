"""The simulated model: deterministic replies, consistent token counts, tool use, limits, stream events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from byollm.sim import engine

WEATHER_TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "units": {"type": "string", "enum": ["fahrenheit", "celsius"]},
            "days": {"type": "integer"},
            "verbose": {"type": "boolean"},
        },
        "required": ["city", "units", "days"],
    },
}


def body(prompt: str | list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    return {"max_tokens": 256, "messages": messages, **extra}


def test_plain_reply_names_service_and_model_and_echoes_the_prompt() -> None:
    reply = engine.reply_to(body("What is 2+2?"), service="bedrock", model="anthropic.claude-x-v1:0")
    assert reply.content == [{"type": "text", "text": "[bedrock:anthropic.claude-x-v1:0] You said: What is 2+2?"}]
    assert reply.stop_reason == "end_turn"
    assert reply == engine.reply_to(body("What is 2+2?"), service="bedrock", model="anthropic.claude-x-v1:0")


def test_usage_agrees_with_count_tokens_and_the_tokenizer() -> None:
    request = body("Hello, world!", system="Be brief.", tools=[WEATHER_TOOL])
    reply = engine.reply_to(request, service="anthropic", model="m")
    assert reply.input_tokens == engine.count_input_tokens(request)
    assert engine.count_text_tokens("Hello, world!") == 4
    assert reply.output_tokens == sum(engine.count_text_tokens(b["text"]) for b in reply.content)
    longer = engine.count_input_tokens(body("Hello, world! And more words here."))
    assert longer > engine.count_input_tokens(body("Hello, world!"))


def test_mentioning_an_offered_tool_yields_tool_use_built_from_its_schema() -> None:
    request = body("Use get_weather for Paris, units=celsius, next 3 days", tools=[WEATHER_TOOL])
    reply = engine.reply_to(request, service="anthropic", model="m")
    assert reply.stop_reason == "tool_use"
    call = reply.content[-1]
    assert call["type"] == "tool_use"
    assert call["name"] == "get_weather"
    assert call["id"].startswith("toolu_")
    assert call["input"] == {"city": "Paris", "units": "celsius", "days": 3}


def test_tool_choice_rules() -> None:
    other = {"name": "lookup", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}
    forced = body("hello", tools=[WEATHER_TOOL, other], tool_choice={"type": "tool", "name": "lookup"})
    assert engine.reply_to(forced, service="s", model="m").content[-1]["name"] == "lookup"
    anything = body("hello", tools=[WEATHER_TOOL, other], tool_choice={"type": "any"})
    assert engine.reply_to(anything, service="s", model="m").content[-1]["name"] == "get_weather"
    none = body("call get_weather", tools=[WEATHER_TOOL], tool_choice={"type": "none"})
    assert engine.reply_to(none, service="s", model="m").stop_reason == "end_turn"
    unmentioned = body("hello", tools=[WEATHER_TOOL])
    assert engine.reply_to(unmentioned, service="s", model="m").stop_reason == "end_turn"


def test_a_tool_result_turn_is_answered_with_text_quoting_the_result() -> None:
    first = body("Use get_weather for Oslo", tools=[WEATHER_TOOL])
    call = engine.reply_to(first, service="anthropic", model="m")
    tool_use = call.content[-1]
    follow_up = body(
        [
            *first["messages"],
            {"role": "assistant", "content": call.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_use["id"], "content": "Snow, -3C"}],
            },
        ],
        tools=[WEATHER_TOOL],
    )
    reply = engine.reply_to(follow_up, service="anthropic", model="m")
    assert reply.stop_reason == "end_turn"
    assert reply.content[0]["text"] == "[anthropic:m] Tool get_weather returned: Snow, -3C"


def test_max_tokens_truncates_and_stop_sequences_cut() -> None:
    reply = engine.reply_to(body("one two three four five", max_tokens=5), service="s", model="m")
    assert reply.stop_reason == "max_tokens"
    assert reply.output_tokens == 5
    stopped = engine.reply_to(body("alpha beta STOP gamma", stop_sequences=["STOP"]), service="s", model="m")
    assert stopped.stop_reason == "stop_sequence"
    assert stopped.stop_sequence == "STOP"
    assert stopped.content[0]["text"].endswith("alpha beta ")


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "max_tokens: Field required"),
        ({"max_tokens": 10}, "messages: Field required"),
        ({"max_tokens": 10, "messages": []}, "at least one message"),
        ({"max_tokens": 10, "messages": [{"role": "assistant", "content": "x"}]}, "first message"),
        ({"max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ],
)
def test_invalid_bodies_are_refused(request_body: dict[str, Any], message: str) -> None:
    with pytest.raises(engine.InvalidRequestError, match=message):
        engine.reply_to(request_body, service="s", model="m")


def test_message_and_stream_events_carry_the_same_reply() -> None:
    reply = engine.reply_to(body("Please call get_weather for Rome", tools=[WEATHER_TOOL]), service="a", model="m")
    message = engine.anthropic_message(reply, model="m", message_id="msg_1")
    assert message["type"] == "message"
    assert message["usage"]["output_tokens"] == reply.output_tokens
    events = engine.anthropic_stream_events(reply, model="m", message_id="msg_1")
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert events[0]["message"]["content"] == []
    assert events[0]["message"]["usage"]["input_tokens"] == reply.input_tokens
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta" and e["index"] == 0)
    assert text == reply.content[0]["text"]
    partial = "".join(
        e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta" and e["index"] == 1
    )
    assert json.loads(partial) == reply.content[1]["input"]
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert events[-2]["usage"]["output_tokens"] == reply.output_tokens
