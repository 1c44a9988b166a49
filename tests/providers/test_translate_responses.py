"""OpenAI Responses (client) <-> canonical (Anthropic Messages), and the pass-through's accounting reader:
tables for each mapping decision, the stream translator's event grammar, and hypothesis properties."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byollm.errors import ByollmError, ErrorClass
from byollm.providers.openai_responses import ResponsesFrames, passthrough_body, response_to_canonical, responses_url
from byollm.providers.translate_responses import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    CanonicalStreamToResponses,
    canonical_to_response,
    responses_request_to_canonical,
)

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
PATCH = {"type": "custom", "name": "apply_patch", "description": "Apply a patch"}


# ------------------------------------------------------------------------------------------ requests


def test_a_string_input_is_one_user_turn_and_instructions_the_system_prompt() -> None:
    body = responses_request_to_canonical({"model": "m", "instructions": "Be brief.", "input": "Hi"}).body
    assert body == {"model": "m", "max_tokens": DEFAULT_MAX_OUTPUT_TOKENS, "system": "Be brief.",
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}


def test_items_become_alternating_turns_with_tool_use_and_results_keyed_by_call_id() -> None:
    translated = responses_request_to_canonical({"model": "m", "max_output_tokens": 77, "tools": [WEATHER, PATCH],
                                                 "input": [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Rules."}]},
        {"role": "user", "content": [{"type": "input_text", "text": "Env."}]},
        {"role": "user", "content": "Weather?"},
        {"type": "reasoning", "id": "rs_1", "encrypted_content": "opaque", "summary": []},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"},
        {"type": "custom_tool_call", "call_id": "call_2", "name": "apply_patch", "input": "*** Begin Patch"},
        {"type": "function_call_output", "call_id": "call_1", "output": "snow"},
        {"type": "custom_tool_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "ok"}]},
        {"role": "system", "content": "Late rule."},
    ]})
    body = translated.body
    assert body["system"] == "Rules.\n\nLate rule." and body["max_tokens"] == 77
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == [{"type": "text", "text": "Env."}, {"type": "text", "text": "Weather?"}]
    assert body["messages"][1]["content"][1:] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "call_2", "name": "apply_patch", "input": {"input": "*** Begin Patch"}}]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "snow"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "ok"}]}]
    assert [t["name"] for t in body["tools"]] == ["get_weather", "apply_patch"]
    assert body["tools"][1]["input_schema"]["properties"] == {"input": {"type": "string"}}
    assert translated.custom_tools == {"apply_patch"} and translated.lost == ()


def test_images_and_files_become_blocks() -> None:
    body = responses_request_to_canonical({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
        {"type": "input_image", "image_url": "https://example.test/cat.png"},
        {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"},
    ]}]}).body
    assert body["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.test/cat.png"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}]


@pytest.mark.parametrize(("choice", "parallel", "expected"), [
    ("auto", True, None), ("none", True, {"type": "none"}), ("required", True, {"type": "any"}),
    ({"type": "function", "name": "get_weather"}, True, {"type": "tool", "name": "get_weather"}),
    ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
])
def test_tool_choice_and_parallel_calls(choice: Any, parallel: bool, expected: Any) -> None:
    body = responses_request_to_canonical({"model": "m", "input": "x", "tools": [WEATHER], "tool_choice": choice,
                                           "parallel_tool_calls": parallel}).body
    assert body.get("tool_choice") == expected


def test_hosted_tools_are_left_out_but_forcing_one_is_lost() -> None:
    offered = responses_request_to_canonical({"model": "m", "input": "x", "tools": [
        WEATHER, {"type": "web_search"}, {"type": "namespace", "name": "ns", "tools": []}]})
    assert [t["name"] for t in offered.body["tools"]] == ["get_weather"] and offered.lost == ()
    forced = responses_request_to_canonical({"model": "m", "input": "x", "tools": [{"type": "web_search"}],
                                             "tool_choice": {"type": "web_search"}})
    assert [f for f, _ in forced.lost] == ["tool_choice"] and "tools" not in forced.body


@pytest.mark.parametrize(("extra", "field"), [
    ({"text": {"format": {"type": "json_schema", "name": "x", "schema": {}}}}, "text.format"),
    ({"text": {"format": {"type": "json_object"}}}, "text.format"),
    ({"top_logprobs": 3}, "top_logprobs"),
])
def test_what_only_openai_can_honour_is_recorded_as_lost(extra: dict[str, Any], field: str) -> None:
    translated = responses_request_to_canonical({"model": "m", "input": "x", **extra})
    assert [f for f, _ in translated.lost] == [field]


def test_fields_that_change_nothing_in_the_answer_are_not_forwarded() -> None:
    body = responses_request_to_canonical({"model": "m", "input": "x", "store": False, "include": ["a"],
                                           "reasoning": {"effort": "high"}, "prompt_cache_key": "k",
                                           "metadata": {"a": "b"}, "text": {"format": {"type": "text"}},
                                           "temperature": 1.7, "top_p": 0.5}).body
    assert set(body) == {"model", "max_tokens", "messages", "temperature", "top_p"} and body["temperature"] == 1.0


@pytest.mark.parametrize(("request_body", "field"), [
    ({"input": "x"}, "model"),
    ({"model": "m"}, "input"),
    ({"model": "m", "input": "x", "previous_response_id": "resp_1"}, "previous_response_id"),
    ({"model": "m", "input": "x", "conversation": "conv_1"}, "conversation"),
    ({"model": "m", "input": "x", "background": True}, "background"),
    ({"model": "m", "input": 3}, "input"),
    ({"model": "m", "input": []}, "input"),
    ({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ({"model": "m", "input": [{"type": "local_shell_call"}]}, "input[0].type"),
    ({"model": "m", "input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input[0].content[0]"),
    ({"model": "m", "input": [{"type": "function_call", "name": "f"}]}, "input[0]"),
    ({"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{"}]},
     "input[0].arguments"),
    ({"model": "m", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
    ({"model": "m", "input": "x", "tools": [{"type": "telepathy"}]}, "tools[0].type"),
    ({"model": "m", "input": "x", "tool_choice": "sometimes"}, "tool_choice"),
    ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "m", "input": "x", "temperature": "hot"}, "temperature"),
    ({"model": "m", "input": "x", "instructions": ["a"]}, "instructions"),
])
def test_refusals_name_the_field(request_body: dict[str, Any], field: str) -> None:
    with pytest.raises(ByollmError) as refused:
        responses_request_to_canonical(request_body)
    assert refused.value.error_class is ErrorClass.INVALID_REQUEST
    assert refused.value.detail.startswith(f"{field}:"), refused.value.detail


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                      max_size=3), max_leaves=12)
item_like = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["message", "function_call", "function_call_output", "reasoning", "custom_tool_call"]),
    "role": st.sampled_from(["user", "assistant", "developer", "system", "tool"]),
    "content": st.text(max_size=10) | st.lists(st.fixed_dictionaries({"type": st.sampled_from(
        ["input_text", "output_text", "input_image", "refusal"]), "text": st.text(max_size=5)}), max_size=2),
    "call_id": st.text(max_size=5), "name": st.text(max_size=5), "arguments": st.text(max_size=8) | json_values,
    "output": json_values})


@settings(max_examples=300, deadline=None)
@given(request=st.fixed_dictionaries({}, optional={
    "model": st.text(max_size=5) | json_values, "input": st.text(max_size=10) | st.lists(item_like, max_size=4) |
    json_values, "instructions": json_values, "tools": st.lists(json_values, max_size=2) | json_values,
    "tool_choice": json_values, "max_output_tokens": json_values, "temperature": json_values,
    "parallel_tool_calls": json_values, "text": json_values}))
def test_any_request_translates_or_is_refused_as_invalid(request: dict[str, Any]) -> None:
    """Outside input never escapes as anything but the caller's own ``invalid_request``."""
    refused: ByollmError | None = None
    try:
        translated = responses_request_to_canonical(request)
    except ByollmError as error:
        refused = error
    if refused is not None:
        assert refused.error_class is ErrorClass.INVALID_REQUEST
        return
    body = translated.body
    assert body["messages"] and body["max_tokens"] >= 1
    roles = [m["role"] for m in body["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles))  # Anthropic's alternation
    json.dumps(body)


# ------------------------------------------------------------------------------------------ answers

MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "stop_reason": "tool_use",
           "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                       {"type": "text", "text": "Calling."},
                       {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
                       {"type": "tool_use", "id": "toolu_2", "name": "apply_patch", "input": {"input": "P"}}],
           "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 7}}


def test_a_message_becomes_a_response_object() -> None:
    response = canonical_to_response(MESSAGE, {"model": "claude-sonnet", "instructions": "I"}, "req_1",
                                     frozenset({"apply_patch"}), created=1)
    assert response["id"] == "resp_req_1" and response["object"] == "response" and response["status"] == "completed"
    assert response["model"] == "claude-sonnet" and response["instructions"] == "I"
    assert [item["type"] for item in response["output"]] == ["message", "function_call", "custom_tool_call"]
    assert response["output"][0]["content"][0] == {"type": "output_text", "text": "Calling.", "annotations": [],
                                                   "logprobs": []}
    assert response["output"][1]["call_id"] == "toolu_1" and json.loads(response["output"][1]["arguments"]) == {
        "city": "Oslo"}
    assert response["output"][2]["input"] == "P"
    assert response["usage"] == {"input_tokens": 15, "input_tokens_details": {"cached_tokens": 5},
                                 "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0},
                                 "total_tokens": 22}


@pytest.mark.parametrize(("stop", "status", "reason"), [("max_tokens", "incomplete", "max_output_tokens"),
                                                         ("refusal", "incomplete", "content_filter"),
                                                         ("end_turn", "completed", None)])
def test_stop_reasons_map_to_status(stop: str, status: str, reason: str | None) -> None:
    response = canonical_to_response({**MESSAGE, "stop_reason": stop}, {"model": "m"}, "r")
    assert response["status"] == status
    assert response["incomplete_details"] == ({"reason": reason} if reason else None)


def _stream(message: dict[str, Any]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [{"type": "message_start", "message": {**message, "content": [],
                                                                        "usage": {"input_tokens": 10}}}]
    for index, block in enumerate(message["content"]):
        opening = {**block, "input": {}} if block["type"] == "tool_use" else {**block, "text": ""}
        events.append({"type": "content_block_start", "index": index, "content_block": opening})
        if block["type"] == "text":
            events += [{"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": part}}
                       for part in (block["text"][:3], block["text"][3:])]
        elif block["type"] == "tool_use":
            raw = json.dumps(block["input"])
            events += [{"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": part}} for part in (raw[:4], raw[4:])]
        else:
            events.append({"type": "content_block_delta", "index": index,
                           "delta": {"type": "thinking_delta", "thinking": "hmm"}})
        events.append({"type": "content_block_stop", "index": index})
    events += [{"type": "message_delta", "delta": {"stop_reason": message["stop_reason"]},
                "usage": {"output_tokens": 7}}, {"type": "message_stop"}]
    return events


def test_the_stream_follows_the_responses_event_grammar() -> None:
    translator = CanonicalStreamToResponses({"model": "claude-sonnet"}, "req_1", frozenset({"apply_patch"}), created=1)
    out = [event for canonical in _stream(MESSAGE) for event in translator.feed(canonical)]
    assert [e["type"] for e in out] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added", "response.custom_tool_call_input.delta", "response.custom_tool_call_input.done",
        "response.output_item.done",
        "response.completed"]
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    assert [e["output_index"] for e in out if e["type"] == "response.output_item.added"] == [0, 1, 2]
    final = out[-1]["response"]
    whole = canonical_to_response(MESSAGE, {"model": "claude-sonnet"}, "req_1", frozenset({"apply_patch"}), created=1)
    streamed_call, whole_call = final["output"][1], whole["output"][1]
    assert json.loads(streamed_call.pop("arguments")) == json.loads(whole_call.pop("arguments"))  # spacing may differ
    assert final == {**whole, "usage": final["usage"]}
    assert final["usage"]["input_tokens"] == 10 and final["usage"]["output_tokens"] == 7
    args = "".join(e["delta"] for e in out if e["type"] == "response.function_call_arguments.delta")
    assert json.loads(args) == {"city": "Oslo"}


def test_a_cut_answer_ends_incomplete() -> None:
    translator = CanonicalStreamToResponses({"model": "m"}, "r")
    message = {**MESSAGE, "content": [{"type": "text", "text": "Once upon"}], "stop_reason": "max_tokens"}
    out = [event for canonical in _stream(message) for event in translator.feed(canonical)]
    assert out[-1]["type"] == "response.incomplete"
    assert out[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


# ------------------------------------------------------------------------------- pass-through reading


def test_the_pass_through_body_rewrites_only_the_model() -> None:
    raw = {"model": "gpt-latest", "input": "x", "text": {"format": {"type": "json_object"}}, "stream": True}
    assert json.loads(passthrough_body(raw, "gpt-5", stream=True)) == {**raw, "model": "gpt-5", "store": False}
    assert json.loads(passthrough_body({**raw, "store": True}, "gpt-5", stream=True))["store"] is True
    assert "stream" not in json.loads(passthrough_body(raw, "gpt-5", stream=False))
    assert responses_url("https://api.openai.com") == "https://api.openai.com/v1/responses"
    assert responses_url("http://sim/openai/v1/") == "http://sim/openai/v1/responses"


def test_a_response_is_read_for_the_books() -> None:
    message = response_to_canonical({"id": "resp_1", "model": "gpt-5", "output": [
        {"type": "reasoning", "summary": []},
        {"type": "message", "content": [{"type": "output_text", "text": "Hi"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}],
        "usage": {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 2}, "output_tokens": 3}})
    assert message["content"][0] == {"type": "text", "text": "Hi"} and message["stop_reason"] == "tool_use"
    assert message["usage"] == {"input_tokens": 10, "output_tokens": 3, "cache_creation_input_tokens": 0,
                                "cache_read_input_tokens": 2}


def test_stream_frames_mean_commit_points_and_usage() -> None:
    frames = ResponsesFrames()
    assert frames.meaning({"type": "response.created", "response": {}})[0] == "message_start"
    assert frames.meaning({"type": "response.in_progress"})[0] == "response.in_progress"
    kind, data = frames.meaning({"type": "response.output_text.delta", "delta": "Hi"})
    assert kind == "content_block_delta" and data["delta"] == {"type": "text_delta", "text": "Hi"}
    assert not frames.finished
    kind, data = frames.meaning({"type": "response.incomplete", "response": {
        "incomplete_details": {"reason": "max_output_tokens"}, "usage": {"input_tokens": 4, "output_tokens": 9}}})
    assert frames.finished and kind == "message_delta"
    assert data["delta"]["stop_reason"] == "max_tokens" and data["usage"]["output_tokens"] == 9


NAMESPACE = {"type": "namespace", "name": "agents", "description": "Sub-agents", "tools": [
    {"type": "function", "name": "spawn_agent", "description": "Spawn", "parameters": {
        "type": "object", "properties": {"task": {"type": "string"}}}},
    {"type": "function", "name": "x" * 70, "description": "too long once flattened"}]}


def test_namespace_tools_are_flattened_and_their_calls_come_back_namespaced() -> None:
    translated = responses_request_to_canonical({"model": "m", "tools": [NAMESPACE], "input": [
        {"role": "user", "content": "go"},
        {"type": "function_call", "call_id": "c1", "namespace": "agents", "name": "spawn_agent", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "spawned"}]})
    assert [t["name"] for t in translated.body["tools"]] == ["agents__spawn_agent"]
    assert translated.body["messages"][1]["content"][0]["name"] == "agents__spawn_agent"
    message = {**MESSAGE, "content": [{"type": "tool_use", "id": "toolu_9", "name": "agents__spawn_agent",
                                       "input": {"task": "t"}}]}
    request = {"model": "m", "tools": [NAMESPACE]}
    (item,) = canonical_to_response(message, request, "r")["output"]
    assert (item["type"], item["namespace"], item["name"]) == ("function_call", "agents", "spawn_agent")
    translator = CanonicalStreamToResponses(request, "r")
    out = [event for canonical in _stream(message) for event in translator.feed(canonical)]
    added = next(e["item"] for e in out if e["type"] == "response.output_item.added")
    done = next(e["item"] for e in out if e["type"] == "response.output_item.done")
    assert added["namespace"] == done["namespace"] == "agents" and done["name"] == "spawn_agent"
