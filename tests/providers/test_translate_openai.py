"""Canonical <-> OpenAI Chat Completions: tables for each mapping and hypothesis round trips."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byollm.errors import ByollmError, ErrorClass
from byollm.providers.translate_openai import (
    DEFAULT_MAX_TOKENS,
    CanonicalStreamToOpenAI,
    OpenAIStreamToCanonical,
    canonical_to_openai_request,
    canonical_to_openai_response,
    openai_only_fields,
    openai_request_to_canonical,
    openai_response_to_canonical,
)
from providers.provider_support import WEATHER_TOOL, accumulate

# ------------------------------------------------------------------ provider direction: requests

TOOL_CONVERSATION: dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 300,
    "system": [{"type": "text", "text": "Be brief."}],
    "temperature": 0.2,
    "top_p": 0.9,
    "top_k": 5,
    "stop_sequences": ["END"],
    "tools": [WEATHER_TOOL],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    "messages": [
        {"role": "user", "content": "Use get_weather for Paris"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Calling."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]},
            {"type": "text", "text": "And now?"},
        ]},
    ],
}


def test_tool_conversation_to_openai() -> None:
    request = canonical_to_openai_request(TOOL_CONVERSATION, "gpt-5")
    assert request == {
        "model": "gpt-5",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Use get_weather for Paris"},
            {"role": "assistant", "content": "Calling.", "tool_calls": [
                {"id": "toolu_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
            {"role": "user", "content": "And now?"},
        ],
        "max_completion_tokens": 300,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Current weather for a city",
            "parameters": WEATHER_TOOL["input_schema"]}}],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none"),
     ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}})],
)
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER_TOOL],
            "tool_choice": choice}
    assert canonical_to_openai_request(body, "gpt-5")["tool_choice"] == expected


def test_images_errors_and_streaming_options() -> None:
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
    ]}, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": True,
                                      "content": "boom"}]}]}
    request = canonical_to_openai_request(body, "gpt-5", stream=True)
    assert request["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]
    assert request["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    assert request["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": "Error: boom"}
    assert request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}


def test_server_tools_are_refused_naming_the_field() -> None:
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}]}
    with pytest.raises(ByollmError) as caught:
        canonical_to_openai_request(body, "gpt-5")
    assert caught.value.error_class is ErrorClass.UNSUPPORTED_BY_ROUTE  # the route is skipped, not the request
    assert caught.value.context["field"] == "tools.0"


# ------------------------------------------------------------------ provider direction: answers

@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal")],
)
def test_finish_reasons(finish: str, stop_reason: str) -> None:
    resp = {"id": "chatcmpl-1", "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"},
                                             "finish_reason": finish}]}
    assert openai_response_to_canonical(resp, "gpt-5")["stop_reason"] == stop_reason


def test_response_with_tool_calls_and_cached_usage() -> None:
    resp = {
        "id": "chatcmpl-9",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me check.",
            "tool_calls": [
                {"id": "call_a", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
                {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": "not json"}},
            ]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 40}},
    }
    assert openai_response_to_canonical(resp, "gpt-5") == {
        "id": "msg_chatcmpl-9", "type": "message", "role": "assistant", "model": "gpt-5",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "call_b", "name": "get_weather", "input": {"_unparsed_arguments": "not json"}},
        ],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 60, "output_tokens": 7, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 40},
    }


def test_refusal() -> None:
    resp = {"choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": None, "refusal": "I can't help with that."}}]}
    message = openai_response_to_canonical(resp, "gpt-5")
    assert message["stop_reason"] == "refusal"
    assert message["content"] == [{"type": "text", "text": "I can't help with that."}]


def test_no_choices_is_malformed() -> None:
    with pytest.raises(ValueError, match="choices"):
        openai_response_to_canonical({"choices": []}, "gpt-5")


def test_stream_with_parallel_tool_calls_and_usage() -> None:
    def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        return {"id": "chatcmpl-s", "object": "chat.completion.chunk", "choices": choices, **extra}

    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Checking "}),
        chunk({"content": "both."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Rome"}'}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                               "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]}),
        chunk({}, "tool_calls"),
        chunk(None, usage={"prompt_tokens": 50, "completion_tokens": 20}),
    ]
    translator = OpenAIStreamToCanonical("gpt-5")
    events = [e for c in chunks for e in translator.feed(c)]
    assert translator.finished
    events += translator.finish()
    assert [e["type"] for e in events[:3]] == ["message_start", "content_block_start", "content_block_delta"]
    message = accumulate(events)
    assert message["content"] == [
        {"type": "text", "text": "Checking both."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Rome"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Oslo"}},
    ]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"]["input_tokens"] == 50
    assert message["usage"]["output_tokens"] == 20


# ------------------------------------------------------------------ client direction

def test_openai_request_to_canonical_with_tools() -> None:
    req = {
        "model": "claude-sonnet-4-6",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather in Paris?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                                    "parameters": WEATHER_TOOL["input_schema"]}}],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "temperature": 1.5,
        "stop": "END",
        "stream": True,
        "stream_options": {"include_usage": True},
        "seed": 3,
    }
    assert openai_request_to_canonical(req) == {
        "model": "claude-sonnet-4-6",
        "max_tokens": DEFAULT_MAX_TOKENS,
        "system": "Be brief.\n\nUse tools.",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Weather in Paris?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
                {"type": "text", "text": "Thanks"},
            ]},
        ],
        "temperature": 1.0,
        "stop_sequences": ["END"],
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER_TOOL["input_schema"]}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "stream": True,
    }


@pytest.mark.parametrize(
    ("extra", "field"),
    [({"tools": [{"type": "custom", "custom": {}}]}, "tools[0]"),
     ({"temperature": "hot"}, "temperature"), ({"max_tokens": 0}, "max_tokens"),
     ({"max_completion_tokens": 2.5}, "max_completion_tokens"), ({"top_p": -1}, "top_p"),
     ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format.json_schema.schema"),
     ({"messages": [{"role": "assistant", "content": None, "tool_calls": [
         {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]},
      "messages[0].tool_calls[0].function.arguments")],
)
def test_unreadable_fields_are_refused_by_name(extra: dict[str, Any], field: str) -> None:
    req = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}
    with pytest.raises(ByollmError) as caught:
        openai_request_to_canonical(req)
    assert caught.value.error_class is ErrorClass.INVALID_REQUEST
    assert caught.value.context["field"] == field


@pytest.mark.parametrize(
    ("extra", "field"),
    [({"n": 2}, "n"), ({"logprobs": True}, "logprobs"), ({"logit_bias": {"1": 2}}, "logit_bias"),
     ({"frequency_penalty": 0.5}, "frequency_penalty"), ({"presence_penalty": -1}, "presence_penalty"),
     ({"response_format": {"type": "grammar"}}, "response_format"),
     ({"functions": [{"name": "f"}]}, "functions"), ({"modalities": ["text", "audio"]}, "modalities")],
)
def test_fields_without_an_anthropic_equivalent_are_named_for_the_openai_route(extra: dict[str, Any],
                                                                                  field: str) -> None:
    req = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}
    assert [name for name, _ in openai_only_fields(req)] == [field]
    assert field not in openai_request_to_canonical(req)


@pytest.mark.parametrize(("response_format", "schema"), [
    ({"type": "json_object"}, {"type": "object"}),
    ({"type": "json_schema", "json_schema": {"name": "city", "schema": {
        "type": "object", "properties": {"city": {"type": "string"}}}}},
     {"type": "object", "properties": {"city": {"type": "string"}}}),
])
def test_response_format_becomes_anthropic_structured_output(response_format: dict[str, Any],
                                                             schema: dict[str, Any]) -> None:
    req = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "response_format": response_format}
    assert openai_only_fields(req) == ()
    assert openai_request_to_canonical(req)["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


def test_harmless_defaults_are_accepted() -> None:
    req = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 1, "frequency_penalty": 0,
           "presence_penalty": 0, "response_format": {"type": "text"}, "max_tokens": 10}
    assert openai_request_to_canonical(req)["max_tokens"] == 10


def test_canonical_to_openai_response() -> None:
    message = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": "Calling."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 3,
                  "cache_creation_input_tokens": 2},
    }
    assert canonical_to_openai_response(message, "claude-sonnet-4-6", "req1", created=1) == {
        "id": "chatcmpl-req1", "object": "chat.completion", "created": 1, "model": "claude-sonnet-4-6",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Calling.", "refusal": None,
            "tool_calls": [{"id": "toolu_1", "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}}],
        "usage": {"prompt_tokens": 15, "completion_tokens": 5, "total_tokens": 20,
                  "prompt_tokens_details": {"cached_tokens": 3}},
    }


def test_canonical_stream_to_openai_with_usage() -> None:
    events = [
        {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 12, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]
    translator = CanonicalStreamToOpenAI("claude", "r1", include_usage=True, created=5)
    chunks = [c for e in events for c in translator.feed(e)]
    deltas = [c["choices"][0]["delta"] if c["choices"] else None for c in chunks]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
        {"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
        {},
        None,
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["usage"] == {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21,
                                   "prompt_tokens_details": {"cached_tokens": 0}}
    assert {c["id"] for c in chunks} == {"chatcmpl-r1"}


# ------------------------------------------------------------------ round trips

_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)
_ident = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
_json_obj = st.dictionaries(_ident, st.integers(-(2**63), 2**63 - 1) | _text | st.booleans(), max_size=3)


@st.composite
def openai_conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Alternating OpenAI conversations: user text, assistant text and/or tool calls, their tool results."""
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(_text)})
    for turn in range(draw(st.integers(1, 4))):
        # a user turn first and after every plain answer; after tool results the assistant may go on
        if turn == 0 or messages[-1]["role"] != "tool" or draw(st.booleans()):
            messages.append({"role": "user", "content": draw(_text)})
        calls = [
            {"id": f"call_{turn}_{i}", "type": "function",
             "function": {"name": draw(_ident), "arguments": json.dumps(draw(_json_obj), separators=(",", ":"))}}
            for i in range(draw(st.integers(0, 2)))
        ]
        assistant: dict[str, Any] = {"role": "assistant", "content": draw(st.none() | _text) if calls else draw(_text)}
        if calls:
            assistant["tool_calls"] = calls
        messages.append(assistant)
        for call in calls:
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": draw(_text)})
    return messages


@settings(max_examples=150, deadline=None)
@given(openai_conversations())
def test_openai_conversation_round_trips_through_canonical(messages: list[dict[str, Any]]) -> None:
    """Client's OpenAI request -> canonical -> sent to an OpenAI model: the same conversation arrives."""
    canonical = openai_request_to_canonical({"model": "m", "messages": messages, "max_tokens": 50})
    roles = [m["role"] for m in canonical["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles)), "turns must alternate"
    back = canonical_to_openai_request(canonical, "gpt-5")["messages"]
    expected = []
    for message in messages:
        if "tool_calls" in message:
            message = {**message, "tool_calls": [
                {**c, "function": {**c["function"], "arguments": _compact(c["function"]["arguments"])}}
                for c in message["tool_calls"]]}
        expected.append(message)
    assert back == expected


def _compact(arguments: str) -> str:
    return json.dumps(json.loads(arguments), separators=(",", ":"), ensure_ascii=False)


@st.composite
def canonical_messages(draw: st.DrawFn) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if draw(st.booleans()):
        content.append({"type": "text", "text": draw(_text)})
    for i in range(draw(st.integers(0 if content else 1, 3))):
        content.append({"type": "tool_use", "id": f"toolu_{i}", "name": draw(_ident), "input": draw(_json_obj)})
    called = any(b["type"] == "tool_use" for b in content)
    stop_reason = "tool_use" if called else draw(st.sampled_from(["end_turn", "max_tokens", "refusal"]))
    return {
        "id": "msg_x", "type": "message", "role": "assistant", "model": "m", "content": content,
        "stop_reason": stop_reason, "stop_sequence": None,
        "usage": {"input_tokens": draw(st.integers(0, 10**6)), "output_tokens": draw(st.integers(0, 10**6)),
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": draw(st.integers(0, 10**6))},
    }


def _events(message: dict[str, Any], text_pieces: int) -> list[dict[str, Any]]:
    start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 1}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opening = {"type": "text", "text": ""}
            events.append({"type": "content_block_start", "index": index, "content_block": opening})
            text = block["text"]
            step = max(1, len(text) // text_pieces)
            for at in range(0, len(text), step):
                events.append({"type": "content_block_delta", "index": index,
                               "delta": {"type": "text_delta", "text": text[at:at + step]}})
        else:
            events.append({"type": "content_block_start", "index": index,
                           "content_block": {**block, "input": {}}})
            encoded = json.dumps(block["input"])
            for at in range(0, len(encoded), 5):
                events.append({"type": "content_block_delta", "index": index,
                               "delta": {"type": "input_json_delta", "partial_json": encoded[at:at + 5]}})
        events.append({"type": "content_block_stop", "index": index})
    events.append({"type": "message_delta", "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                   "usage": {"output_tokens": message["usage"]["output_tokens"]}})
    events.append({"type": "message_stop"})
    return events


@settings(max_examples=150, deadline=None)
@given(canonical_messages())
def test_canonical_answer_round_trips_through_an_openai_response(message: dict[str, Any]) -> None:
    """An OpenAI model's answer, as the gateway returns it to an OpenAI client, reads back the same."""
    response = canonical_to_openai_response(message, "m", "r")
    back = openai_response_to_canonical(response, "m")
    assert back["content"] == message["content"]
    assert back["stop_reason"] == message["stop_reason"]
    assert back["usage"] == message["usage"]


@settings(max_examples=150, deadline=None)
@given(canonical_messages(), st.integers(1, 5))
def test_canonical_stream_round_trips_through_openai_chunks(message: dict[str, Any], pieces: int) -> None:
    """Canonical events -> chunks for an OpenAI client -> back to canonical events: the same message."""
    to_openai = CanonicalStreamToOpenAI("m", "r", include_usage=True)
    chunks = [c for e in _events(message, pieces) for c in to_openai.feed(e)]
    to_canonical = OpenAIStreamToCanonical("m", "msg_x")
    events = [e for c in chunks for e in to_canonical.feed(c)] + to_canonical.finish()
    back = accumulate(events)
    assert back["content"] == message["content"]
    assert back["stop_reason"] == message["stop_reason"]
    assert back["usage"] == message["usage"]
