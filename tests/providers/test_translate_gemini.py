"""Canonical -> Gemini generateContent, Gemini answers -> canonical, and the stream translator agreeing
with the complete-answer translator for any chunking."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byollm.errors import ByollmError, ErrorClass
from byollm.providers.translate_gemini import (
    GeminiStreamToCanonical,
    canonical_to_gemini_count_request,
    canonical_to_gemini_request,
    gemini_response_to_canonical,
)
from byollm.sim.direct_google import gemini_to_messages_body
from providers.provider_support import WEATHER_TOOL, accumulate

CONVERSATION: dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 300,
    "system": "Be brief.",
    "temperature": 0.3,
    "top_p": 0.8,
    "top_k": 4,
    "stop_sequences": ["END"],
    "tools": [WEATHER_TOOL],
    "tool_choice": {"type": "tool", "name": "get_weather"},
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "Weather in Paris?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        ]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
            {"type": "text", "text": "Thanks"},
        ]},
    ],
}


def test_conversation_to_gemini() -> None:
    assert canonical_to_gemini_request(CONVERSATION) == {
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Paris?"},
                                       {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"},
                                                          "id": "toolu_1"}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}, "id": "toolu_1"}},
                {"text": "Thanks"},
            ]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "Current weather for a city",
                                             "parametersJsonSchema": WEATHER_TOOL["input_schema"]}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
        "generationConfig": {"maxOutputTokens": 300, "temperature": 0.3, "topP": 0.8, "topK": 4,
                             "stopSequences": ["END"], "thinkingConfig": {"thinkingBudget": 1024}},
    }


def test_the_simulator_reads_our_request_as_the_same_conversation() -> None:
    """An independent Gemini reader (the simulator's) sees the same tools and tool pairing."""
    body = gemini_to_messages_body(canonical_to_gemini_request(CONVERSATION))
    assert body["system"] == "Be brief."
    assert body["tools"][0]["name"] == "get_weather"
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assistant = body["messages"][1]["content"][0]
    result = body["messages"][2]["content"][0]
    assert assistant["type"] == "tool_use"
    assert result == {"type": "tool_result", "tool_use_id": assistant["id"], "content": '{"result": "sunny"}'}


@pytest.mark.parametrize(
    ("choice", "config"),
    [({"type": "auto"}, {"mode": "AUTO"}), ({"type": "any"}, {"mode": "ANY"}), ({"type": "none"}, {"mode": "NONE"})],
)
def test_tool_choice(choice: dict[str, Any], config: dict[str, Any]) -> None:
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER_TOOL],
            "tool_choice": choice}
    assert canonical_to_gemini_request(body)["toolConfig"] == {"functionCallingConfig": config}


def test_error_results_and_count_request() -> None:
    body = {"max_tokens": 5, "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": True,
                                      "content": [{"type": "text", "text": "boom"}]}]},
    ]}
    request = canonical_to_gemini_request(body)
    assert request["contents"][2]["parts"][0]["functionResponse"]["response"] == {"error": "boom"}
    count = canonical_to_gemini_count_request(body, "gemini-2.5-pro")
    assert count["generateContentRequest"]["model"] == "models/gemini-2.5-pro"
    assert "generationConfig" not in count["generateContentRequest"]


def test_unmatched_tool_result_is_refused() -> None:
    body = {"max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "nope", "content": "x"}]}]}
    with pytest.raises(ByollmError) as caught:
        canonical_to_gemini_request(body)
    assert caught.value.error_class is ErrorClass.INVALID_REQUEST
    assert caught.value.context["field"] == "messages.0.content.0"


@pytest.mark.parametrize(
    ("finish", "has_call", "stop_reason"),
    [("STOP", False, "end_turn"), ("STOP", True, "tool_use"), ("MAX_TOKENS", False, "max_tokens"),
     ("SAFETY", False, "refusal"), ("RECITATION", False, "refusal"), ("OTHER", False, "end_turn")],
)
def test_finish_reasons(finish: str, has_call: bool, stop_reason: str) -> None:
    parts: list[dict[str, Any]] = [{"text": "x"}]
    if has_call:
        parts.append({"functionCall": {"name": "f", "args": {}}})
    resp = {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish}]}
    assert gemini_response_to_canonical(resp, "gemini-2.5-pro")["stop_reason"] == stop_reason


def test_response_to_canonical() -> None:
    resp = {
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "thinking...", "thought": True},
            {"text": "Let me "}, {"text": "check."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
        ]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 100, "cachedContentTokenCount": 30, "candidatesTokenCount": 8,
                          "thoughtsTokenCount": 4, "totalTokenCount": 112},
        "responseId": "abc",
    }
    ids = iter(["toolu_gen1"])
    assert gemini_response_to_canonical(resp, "gemini-2.5-pro", new_id=lambda: next(ids)) == {
        "id": "msg_abc", "type": "message", "role": "assistant", "model": "gemini-2.5-pro",
        "content": [{"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_gen1", "name": "get_weather", "input": {"city": "Oslo"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 70, "output_tokens": 12, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 30},
    }


def test_blocked_prompt_is_a_refusal_and_no_candidates_is_malformed() -> None:
    blocked = gemini_response_to_canonical({"promptFeedback": {"blockReason": "SAFETY"}}, "g")
    assert blocked["stop_reason"] == "refusal"
    assert blocked["content"] == []
    with pytest.raises(ValueError, match="candidates"):
        gemini_response_to_canonical({}, "g")


_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
_ident = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_args = st.dictionaries(_ident, st.integers(-1000, 1000) | _text, max_size=3)


@st.composite
def gemini_answers(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A complete Gemini answer and the same answer as a stream of chunks (text split anywhere)."""
    parts: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            parts.append({"text": draw(_text)})
        else:
            parts.append({"functionCall": {"name": draw(_ident), "args": draw(_args)}})
    finish = draw(st.sampled_from(["STOP", "MAX_TOKENS"]))
    usage = {"promptTokenCount": draw(st.integers(1, 1000)), "candidatesTokenCount": draw(st.integers(0, 1000))}
    pieces: list[dict[str, Any]] = []
    for part in parts:
        if "text" in part:
            text = part["text"]
            cuts = sorted(draw(st.lists(st.integers(1, len(text)), max_size=3)))
            bounds = [0, *cuts, len(text)]
            pieces.extend({"text": text[a:b]} for a, b in itertools.pairwise(bounds) if b > a)
        else:
            pieces.append(part)
    chunks = [{"candidates": [{"content": {"role": "model", "parts": [piece]}, "index": 0}],
               "usageMetadata": {"promptTokenCount": usage["promptTokenCount"]}, "responseId": "r"}
              for piece in pieces]
    chunks[-1]["candidates"][0]["finishReason"] = finish
    chunks[-1]["usageMetadata"] = usage
    complete = {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish}],
                "usageMetadata": usage, "responseId": "r"}
    return complete, chunks


@settings(max_examples=200, deadline=None)
@given(gemini_answers())
def test_stream_translation_agrees_with_complete_translation(answer: tuple[dict[str, Any], list[dict[str, Any]]]
                                                             ) -> None:
    complete, chunks = answer
    counter = itertools.count()
    expected = gemini_response_to_canonical(complete, "g", new_id=lambda: f"toolu_{next(counter)}")
    counter = itertools.count()
    translator = GeminiStreamToCanonical("g", new_id=lambda: f"toolu_{next(counter)}")
    events = [e for c in chunks for e in translator.feed(c)]
    assert translator.finished
    streamed = accumulate(events + translator.finish())
    assert streamed["content"] == expected["content"]
    assert streamed["stop_reason"] == expected["stop_reason"]
    assert streamed["usage"] == expected["usage"]
    assert streamed["id"] == expected["id"] == "msg_r"
