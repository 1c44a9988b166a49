"""The simulated Gemini API, driven by the unmodified ``google-genai`` SDK and by plain HTTP."""

from __future__ import annotations

import json

import httpx
import pytest
from google import genai
from google.genai import errors, types

from byollm.sim.server import SimServer

MODEL = "gemini-2.5-flash"
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Current weather for a city",
    parameters=types.Schema(
        type=types.Type.OBJECT,
        properties={"city": types.Schema(type=types.Type.STRING)},
        required=["city"],
    ),
)
NO_AUTO_CALLS = types.AutomaticFunctionCallingConfig(disable=True)


@pytest.fixture
def key(sim: SimServer) -> str:
    return sorted(sim.state.provider_keys("google"))[0]


@pytest.fixture
def gemini(sim: SimServer, key: str) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=f"{sim.url}/google"))


def test_generate_content(gemini: genai.Client) -> None:
    response = gemini.models.generate_content(
        model=MODEL,
        contents="Describe the sea.",
        config=types.GenerateContentConfig(system_instruction="Be brief."),
    )
    assert response.text == f"[google:{MODEL}] You said: Describe the sea."
    assert response.candidates is not None
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None
    assert usage.total_token_count == (usage.prompt_token_count or 0) + (usage.candidates_token_count or 0)
    counted = gemini.models.count_tokens(model=MODEL, contents="Describe the sea.")
    assert counted.total_tokens == engine_prompt_tokens("Describe the sea.")


def engine_prompt_tokens(prompt: str) -> int:
    from byollm.sim import engine

    return engine.count_input_tokens({"messages": [{"role": "user", "content": prompt}]})


def test_stream_generate_content(gemini: genai.Client) -> None:
    chunks = list(gemini.models.generate_content_stream(model=MODEL, contents="Stream about rivers."))
    assert len(chunks) > 1
    text = "".join(chunk.text or "" for chunk in chunks)
    assert text == f"[google:{MODEL}] You said: Stream about rivers."
    last = chunks[-1]
    assert last.candidates is not None
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata is not None
    assert last.usage_metadata.candidates_token_count


def test_function_calling_round_trip(gemini: genai.Client) -> None:
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])], automatic_function_calling=NO_AUTO_CALLS
    )
    prompt = types.Content(role="user", parts=[types.Part(text="Use get_weather for Kyoto")])
    first = gemini.models.generate_content(model=MODEL, contents=[prompt], config=config)
    assert first.function_calls is not None
    call = first.function_calls[0]
    assert call.name == "get_weather"
    assert call.args == {"city": "Kyoto"}
    assert first.candidates is not None
    model_turn = first.candidates[0].content
    assert model_turn is not None
    answer = types.Content(
        role="user",
        parts=[types.Part.from_function_response(name="get_weather", response={"forecast": "rain"})],
    )
    final = gemini.models.generate_content(model=MODEL, contents=[prompt, model_turn, answer], config=config)
    assert final.function_calls is None
    assert 'get_weather returned: {"forecast": "rain"}' in (final.text or "")


def test_forced_function_call_in_a_stream(gemini: genai.Client) -> None:
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(mode=types.FunctionCallingConfigMode.ANY)
        ),
        automatic_function_calling=NO_AUTO_CALLS,
    )
    chunks = list(gemini.models.generate_content_stream(model=MODEL, contents="hello", config=config))
    calls = [call for chunk in chunks for call in chunk.function_calls or []]
    assert [c.name for c in calls] == ["get_weather"]


def test_key_errors_and_unknown_model(sim: SimServer, key: str) -> None:
    bad = genai.Client(api_key="AIza-wrong", http_options=types.HttpOptions(base_url=f"{sim.url}/google"))
    with pytest.raises(errors.ClientError) as invalid:
        bad.models.generate_content(model=MODEL, contents="x")
    assert invalid.value.code == 400
    assert invalid.value.status == "INVALID_ARGUMENT"
    good = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=f"{sim.url}/google"))
    with pytest.raises(errors.ClientError) as missing:
        good.models.generate_content(model="gemini-0", contents="x")
    assert missing.value.code == 404
    no_key = httpx.post(f"{sim.url}/google/v1beta/models/{MODEL}:generateContent", json={"contents": []})
    assert no_key.status_code == 403
    assert no_key.json()["error"]["status"] == "PERMISSION_DENIED"


def test_key_in_query_and_json_array_stream(sim: SimServer, key: str) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "array please"}]}]}
    response = httpx.post(
        f"{sim.url}/google/v1beta/models/{MODEL}:streamGenerateContent", params={"key": key}, json=body
    )
    assert response.status_code == 200
    chunks = json.loads(response.text)
    text = "".join(part["text"] for chunk in chunks for part in chunk["candidates"][0]["content"]["parts"])
    assert text == f"[google:{MODEL}] You said: array please"


@pytest.mark.parametrize(
    ("status", "exception", "code"),
    [
        ("RESOURCE_EXHAUSTED", errors.ClientError, 429),
        ("UNAVAILABLE", errors.ServerError, 503),
        ("INTERNAL", errors.ServerError, 500),
    ],
)
def test_injected_errors(
    sim: SimServer, gemini: genai.Client, status: str, exception: type[errors.APIError], code: int
) -> None:
    sim.state.faults.add({"service": "google", "model": MODEL, "error": status, "count": 1})
    with pytest.raises(exception) as raised:
        gemini.models.generate_content(model=MODEL, contents="x")
    assert raised.value.code == code
    assert raised.value.status == status
    gemini.models.generate_content(model=MODEL, contents="x")


def test_mid_stream_error(sim: SimServer, gemini: genai.Client) -> None:
    sim.state.faults.add({"service": "google", "error": "UNAVAILABLE", "after_events": 2, "count": 1})
    received = 0
    with pytest.raises(errors.ServerError) as raised:  # noqa: PT012 - the error arrives mid-iteration
        for _ in gemini.models.generate_content_stream(model=MODEL, contents="a reply long enough to split"):
            received += 1
    assert received == 2
    assert raised.value.code == 503
