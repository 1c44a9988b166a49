"""Accounting that never misses a call: bodies checked completely before any upstream connection, wrong
types answered 400 naming the field in the caller's API shape, and every request settled once with the
status its client received (a forced 500 is logged and charged as a 500)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from byollm.api.frontends.anthropic_messages import AnthropicMessages
from byollm.api.frontends.base import ParsedRequest
from byollm.api.inference_routes import serve
from byollm.credentials.delegated import HEADER_EXPIRATION
from byollm.gateway.executor import Served, ServedStream
from byollm.store import Store
from byollm.store.ledger import ai_credits_used, period_of
from support.stack import Stack, running_stack

HELLO = [{"role": "user", "content": "hi"}]
ANTHROPIC_BASE: dict[str, Any] = {"model": "claude-opus-4-7", "max_tokens": 20, "messages": HELLO}
OPENAI_BASE: dict[str, Any] = {"model": "gpt-5", "messages": HELLO}


class _BrokenAfterTheUpstream(AnthropicMessages):
    """A front end whose rendering fails after the gateway was served: the way a bug would, after the
    upstream call was made and paid for."""

    def render(self, served: Served, parsed: ParsedRequest, request_id: str) -> bytes:
        raise RuntimeError("a rendering bug")

    async def render_stream(self, opened: ServedStream, parsed: ParsedRequest, request_id: str
                            ) -> AsyncIterator[bytes]:
        async for _event in opened.events:
            yield b"event: ping\ndata: {}\n\n"
            raise RuntimeError("a rendering bug mid-stream")


def _broken_door(app: FastAPI) -> None:
    broken = _BrokenAfterTheUpstream()

    @app.post("/v1/_test/broken-messages")
    async def broken_messages(request: Request) -> Response:
        return await serve(request, broken)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(Path(tmp_path_factory.mktemp("accounting")), configure=_broken_door) as s:
        yield s


def _rows(stack: Stack, team_uid: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        found = stack.request_log(team_uid)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _credits(stack: Stack, team_uid: str) -> Decimal:
    async def read() -> Decimal:
        async with Store.from_settings(stack.settings) as store, store.session(readonly=True) as session:
            return await ai_credits_used(session, team_uid=team_uid, period=period_of(datetime.now(UTC)))

    return asyncio.run(read())


ANTHROPIC_WRONG: list[tuple[dict[str, Any], str]] = [
    ({"tools": 5}, "tools"),
    ({"stop_sequences": 5}, "stop_sequences"),
    ({"stop_sequences": ["ok", 5]}, "stop_sequences.1"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, "messages.0.content.0.text"),
    ({"messages": [5]}, "messages.0"),
    ({"messages": "hi"}, "messages"),
    ({"system": 5}, "system"),
    ({"max_tokens": "20"}, "max_tokens"),
    ({"temperature": "hot"}, "temperature"),
    ({"stream": "yes"}, "stream"),
    ({"tool_choice": "auto"}, "tool_choice"),
    ({"metadata": 5}, "metadata"),
    ({"thinking": 5}, "thinking"),
    ({"tools": [{"name": 5}]}, "tools.0.name"),
]
OPENAI_WRONG: list[tuple[dict[str, Any], str]] = [
    ({"tools": 5}, "tools"),
    ({"stop": 5}, "stop"),
    ({"stream": True, "stream_options": "usage"}, "stream_options"),
    ({"stream": True, "stream_options": 5}, "stream_options"),
    ({"messages": [{"role": "assistant", "content": "x", "tool_calls": 5}]}, "messages.0.tool_calls"),
    ({"messages": [{"role": "assistant", "content": "x", "tool_calls": [5]}]}, "messages.0.tool_calls.0"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
    ({"messages": [{"role": 5, "content": "x"}]}, "messages.0.role"),
    ({"n": "2"}, "n"),
    ({"temperature": "hot"}, "temperature"),
    ({"response_format": 5}, "response_format"),
    ({"tool_choice": 5}, "tool_choice"),
    ({"logprobs": "yes"}, "logprobs"),
    ({"max_tokens": 2.5}, "max_tokens"),
    ({"presence_penalty": 3}, "presence_penalty"),
]


@pytest.mark.parametrize(("extra", "field"), ANTHROPIC_WRONG, ids=[f for _, f in ANTHROPIC_WRONG])
def test_wrong_types_on_messages_answer_400_naming_the_field(stack: Stack, extra: dict[str, Any], field: str) -> None:
    team = stack.new_team()
    stack.clear_journal()
    r = stack.gateway(team.token).post("/v1/messages", json={**ANTHROPIC_BASE, **extra})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["byollm"]["code"] == "invalid_request"
    assert body["error"]["message"].startswith(f"{field}: ")
    assert stack.journal() == []  # refused before any upstream connection


@pytest.mark.parametrize(("extra", "field"), OPENAI_WRONG, ids=[f for _, f in OPENAI_WRONG])
def test_wrong_types_on_chat_completions_answer_400_naming_the_field(stack: Stack, extra: dict[str, Any],
                                                                      field: str) -> None:
    team = stack.new_team()
    stack.clear_journal()
    r = stack.gateway(team.token).post("/v1/chat/completions", json={**OPENAI_BASE, **extra})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request" and error["type"] == "invalid_request_error"
    assert error["message"].startswith(f"{field}: ")
    assert stack.journal() == []


def test_stream_options_not_an_object_is_refused_before_any_upstream_call_through_the_sdk(stack: Stack) -> None:
    team = stack.new_team()
    stack.clear_journal()
    sdk = openai.OpenAI(base_url=stack.url + "/v1", api_key=team.token, max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="gpt-5", messages=HELLO, stream=True,  # type: ignore[arg-type]
                                    stream_options="include_usage")  # type: ignore[arg-type]
    assert "stream_options" in str(refused.value)
    assert stack.journal() == []
    assert _rows(stack, team.uid, 0) == []  # nothing was called, so nothing is logged or charged


def test_an_expiration_beyond_any_date_answers_400(stack: Stack) -> None:
    team = stack.new_team()
    headers = {**stack.delegated_headers(), HEADER_EXPIRATION: "99999999999999999999"}
    r = stack.gateway(team.token, headers).post("/v1/messages", json=ANTHROPIC_BASE)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["byollm"]["code"] == "partial_credentials"
    assert HEADER_EXPIRATION in r.json()["error"]["message"]


def test_a_500_after_the_upstream_answered_is_logged_as_500_and_charged_once(stack: Stack) -> None:
    team = stack.new_team({"claude-opus-4-7": {"direct": True}})
    r = stack.gateway(team.token).post("/v1/_test/broken-messages", json=ANTHROPIC_BASE)
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"
    (row,) = _rows(stack, team.uid, 1)
    assert row["request_id"] == r.headers["request-id"]
    assert (row["status"], row["error_code"]) == (500, "internal_error")
    assert row["route"].startswith("anthropic:") and row["output_tokens"] > 0
    assert row["credits"] > 0 and _credits(stack, team.uid) == row["credits"]  # the paid call, charged once


def test_a_stream_broken_by_byollm_is_logged_as_500_and_charged_once(stack: Stack) -> None:
    team = stack.new_team({"claude-opus-4-7": {"direct": True}})
    def read_to_the_end() -> None:
        with stack.gateway(team.token).stream("POST", "/v1/_test/broken-messages",
                                              json={**ANTHROPIC_BASE, "stream": True}) as r:
            assert r.status_code == 200
            for _ in r.iter_bytes():
                pass

    with pytest.raises(httpx.HTTPError):  # the 200 stream is cut off when the writer fails
        read_to_the_end()
    (row,) = _rows(stack, team.uid, 1)
    assert (row["status"], row["error_code"]) == (500, "internal_error")
    assert row["credits"] > 0 and _credits(stack, team.uid) == row["credits"]


def test_a_stream_the_client_abandons_at_once_is_still_logged(stack: Stack) -> None:
    """The client leaves as soon as the headers arrive: the relay may never start, and still the call
    the gateway made is logged (as a disconnect) and its input charged."""
    team = stack.new_team({"claude-opus-4-7": {"direct": True}})
    with stack.gateway(team.token).stream("POST", "/v1/messages", json={**ANTHROPIC_BASE, "stream": True}) as r:
        assert r.status_code == 200
    (row,) = _rows(stack, team.uid, 1)
    assert row["route"].startswith("anthropic:")
    assert row["status"] in (200, 499)


def test_upstream_usage_is_charged_even_when_a_stream_fails_midway(stack: Stack) -> None:
    team = stack.new_team({"claude-opus-4-7": {"direct": True}})
    stack.fault(service="anthropic", error="overloaded_error", after_events=4, count=1)
    with stack.gateway(team.token).stream("POST", "/v1/messages", json={**ANTHROPIC_BASE, "stream": True}) as r:
        text = b"".join(r.iter_bytes())
    assert b"event: error" in text
    (row,) = _rows(stack, team.uid, 1)
    assert row["status"] != 200 and row["input_tokens"] > 0
    assert row["credits"] > 0 and _credits(stack, team.uid) == row["credits"]


def test_a_client_leaving_mid_stream_is_logged_as_a_disconnect_not_a_500(stack: Stack) -> None:
    team = stack.new_team({"claude-opus-4-7": {"direct": True}})
    stack.sim_http.put("/_sim/behaviour", json={"time_to_first_token_s": 0, "per_token_s": 0.3})
    try:
        with stack.gateway(team.token).stream("POST", "/v1/messages",
                                              json={**ANTHROPIC_BASE, "stream": True}) as r:
            assert r.status_code == 200
            next(r.iter_raw())  # the first events, then the client goes away
    finally:
        stack.sim_http.put("/_sim/behaviour", json={"time_to_first_token_s": 0, "per_token_s": 0})
    (row,) = _rows(stack, team.uid, 1)
    assert (row["status"], row["error_code"]) == (499, "client_disconnected")
    assert row["input_tokens"] > 0 and row["credits"] > 0 and _credits(stack, team.uid) == row["credits"]
