"""The simulated OpenAI Responses API, driven by the unmodified official ``openai`` SDK: the SDK's own types
(it parses every event into its model for the event's ``type``) are the check that field names are OpenAI's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from byollm.sim.server import SimServer

MODEL = "gpt-5"
WEATHER: Any = {"type": "function", "name": "get_weather", "description": "Current weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture
def gpt(sim: SimServer) -> Iterator[openai.OpenAI]:
    key = sorted(sim.state.provider_keys("openai"))[0]
    with openai.OpenAI(api_key=key, base_url=f"{sim.url}/openai/v1", max_retries=0, timeout=10) as c:
        yield c


def test_plain_response_with_instructions(gpt: openai.OpenAI) -> None:
    response = gpt.responses.create(model=MODEL, instructions="Be terse.", input="Say hello.")
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == f"[openai:{MODEL}] You said: Say hello."
    assert response.usage is not None and response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens


def test_streamed_events_in_openai_order(gpt: openai.OpenAI) -> None:
    events = list(gpt.responses.create(model=MODEL, input=[{"role": "user", "content": "Stream it"}], stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == f"[openai:{MODEL}] You said: Stream it"
    final = events[-1]
    assert final.type == "response.completed" and final.response.output_text == text


def test_function_call_round_trip_streamed(gpt: openai.OpenAI) -> None:
    events = list(gpt.responses.create(model=MODEL, input="Call get_weather with city=Oslo", tools=[WEATHER],
                                       stream=True))
    calls = [e.item for e in events if e.type == "response.output_item.done" and e.item.type == "function_call"]
    (call,) = calls
    arguments = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert call.type == "function_call" and json.loads(arguments) == json.loads(call.arguments) == {"city": "Oslo"}
    answer = gpt.responses.create(model=MODEL, tools=[WEATHER], input=[
        {"role": "user", "content": "Call get_weather with city=Oslo"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "-3C, snow"},
    ])
    assert "get_weather returned: -3C, snow" in answer.output_text


def test_errors_in_openai_shape(gpt: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as missing:
        gpt.responses.create(model=MODEL)  # type: ignore[call-overload]
    assert missing.value.param == "input"
    with pytest.raises(openai.BadRequestError) as unknown:
        gpt.responses.create(model=MODEL, input="hi", previous_response_id="resp_unknown")
    assert unknown.value.param == "previous_response_id"
    with pytest.raises(openai.NotFoundError):
        gpt.responses.create(model="gpt-unknown", input="hi")


def test_mid_stream_fault_sends_the_error_event(sim: SimServer, gpt: openai.OpenAI) -> None:
    sim.state.faults.add({"service": "openai", "error": "server_error", "after_events": 3, "count": 1})
    events = list(gpt.responses.create(model=MODEL, input="Stream it", stream=True))
    assert [e.type for e in events][:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    error = events[-1]
    assert len(events) == 4 and error.type == "error" and error.code == "server_error" and error.sequence_number == 3


def test_max_output_tokens_is_incomplete(gpt: openai.OpenAI) -> None:
    response = gpt.responses.create(model=MODEL, input="Say a long thing please now", max_output_tokens=3)
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
