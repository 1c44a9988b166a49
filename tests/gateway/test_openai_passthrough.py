"""OpenAI callers on OpenAI routes pass through: the official OpenAI SDK's body reaches OpenAI as sent (the
model id rewritten), so response_format, penalties, logprobs and n work; on Claude routes response_format
becomes Anthropic's structured output, and what has no equivalent is refused naming the field."""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest

from support.stack import DIRECT_MODELS, Stack

SCHEMA: dict[str, Any] = {"type": "object", "properties": {"city": {"type": "string"}, "degrees": {"type": "integer"}},
                          "required": ["city", "degrees"], "additionalProperties": False}
JSON_SCHEMA_FORMAT: Any = {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True}}
ASK: Any = [{"role": "user", "content": "Weather as JSON for city=Oslo degrees=3"}]


def _sdk(stack: Stack, token: str, *, delegated: bool = False) -> openai.OpenAI:
    headers = stack.delegated_headers() if delegated else {}
    return openai.OpenAI(base_url=stack.url + "/v1", api_key=token, default_headers=headers, max_retries=0)


def _sent_upstream(stack: Stack, service: str | None = None) -> list[dict[str, Any]]:
    """The inference bodies the simulator received (of ``service``, or of any)."""
    bodies = []
    for entry in stack.journal(service):
        if entry["method"] == "POST" and entry.get("body_encoding") == "utf-8" and '"messages"' in entry["body"]:
            bodies.append(json.loads(entry["body"]))
    return bodies


def _rows(stack: Stack, team_uid: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        found = stack.request_log(team_uid)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_response_format_penalties_logprobs_and_n_pass_through_to_openai(stack: Stack) -> None:
    team = stack.new_team({"gpt-5": {"direct": True}})
    stack.clear_journal()
    raw = _sdk(stack, team.token).chat.completions.with_raw_response.create(
        model="gpt-5", messages=ASK, response_format=JSON_SCHEMA_FORMAT, presence_penalty=0.5,
        frequency_penalty=-0.25, logprobs=True, top_logprobs=1, n=2, seed=7)
    completion = raw.parse()
    assert raw.headers["x-byollm-route"].startswith("openai:")
    assert [c.index for c in completion.choices] == [0, 1]
    answer = json.loads(completion.choices[1].message.content or "")
    assert answer == {"city": "Oslo", "degrees": 3}
    assert completion.choices[0].logprobs is not None and completion.choices[0].logprobs.content
    (sent,) = _sent_upstream(stack, "openai")
    assert sent["response_format"] == JSON_SCHEMA_FORMAT and sent["n"] == 2 and sent["logprobs"] is True
    assert sent["presence_penalty"] == 0.5 and sent["frequency_penalty"] == -0.25 and sent["seed"] == 7
    (row,) = _rows(stack, team.uid, 1)
    assert row["status"] == 200 and row["output_tokens"] > 0 and row["credits"] > 0


@pytest.mark.parametrize("include_usage", [False, True])
def test_a_passed_through_stream_relays_openais_chunks(stack: Stack, include_usage: bool) -> None:
    team = stack.new_team({"gpt-5": {"direct": True}})
    stack.clear_journal()
    options: Any = {"include_usage": True} if include_usage else None
    chunks = list(_sdk(stack, team.token).chat.completions.create(
        model="gpt-5", messages=ASK, stream=True, response_format=JSON_SCHEMA_FORMAT, stream_options=options))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"city": "Oslo", "degrees": 3}
    assert (chunks[-1].usage is not None) is include_usage
    (sent,) = _sent_upstream(stack, "openai")
    assert sent["stream_options"] == {"include_usage": True}  # always asked: credits need the usage
    (row,) = _rows(stack, team.uid, 1)
    assert row["status"] == 200 and row["input_tokens"] > 0 and row["output_tokens"] > 0


def test_openai_refusals_of_its_own_features_reach_the_caller(stack: Stack) -> None:
    team = stack.new_team({"gpt-5": {"direct": True}})
    with pytest.raises(openai.BadRequestError) as refused:
        _sdk(stack, team.token).chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}],
                                                         response_format={"type": "json_object"})
    assert "must contain the word 'json'" in str(refused.value)


@pytest.mark.parametrize(("delegated", "host"), [(True, "bedrock"), (False, "anthropic")])
@pytest.mark.parametrize("streaming", [False, True])
def test_response_format_becomes_structured_output_on_claude_routes(stack: Stack, delegated: bool, host: str,
                                                                    streaming: bool) -> None:
    """Anthropic's structured output (``output_config.format``), on Bedrock and the direct API alike."""
    team = stack.new_team({"claude-opus-4-7": {"bedrock": True} if delegated else {"direct": True}})
    stack.clear_journal()
    sdk = _sdk(stack, team.token, delegated=delegated)
    if streaming:
        chunks = list(sdk.chat.completions.create(model="claude-opus-4-7", messages=ASK, stream=True,
                                                  response_format=JSON_SCHEMA_FORMAT))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        completion = sdk.chat.completions.create(model="claude-opus-4-7", messages=ASK,
                                                 response_format=JSON_SCHEMA_FORMAT)
        text = completion.choices[0].message.content or ""
    assert json.loads(text) == {"city": "Oslo", "degrees": 3}
    (sent,) = _sent_upstream(stack)
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}


@pytest.mark.parametrize(("extra", "field"), [({"logprobs": True}, "logprobs"), ({"n": 2}, "n"),
                                              ({"presence_penalty": 1.0}, "presence_penalty")])
def test_what_claude_cannot_do_is_refused_naming_it_or_served_by_an_openai_fallback(
        stack: Stack, extra: dict[str, Any], field: str) -> None:
    alone = stack.new_team({"claude-opus-4-7": {"direct": True}})
    with pytest.raises(openai.BadRequestError) as refused:
        _sdk(stack, alone.token).chat.completions.create(model="claude-opus-4-7", messages=ASK, **extra)
    error: Any = refused.value.body
    assert error["code"] == "unsupported_by_route" and error["message"].startswith(f"{field}: ")
    with_fallback = stack.new_team(DIRECT_MODELS, fallback=["gpt-5"])  # no AWS credentials (issue 16)
    raw = _sdk(stack, with_fallback.token).chat.completions.with_raw_response.create(
        model="claude-opus-4-7", messages=ASK, **extra)
    assert raw.headers["x-byollm-route"].startswith("openai:")
