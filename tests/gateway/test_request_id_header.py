"""The official SDKs read the ``request-id`` header into ``_request_id`` (and into an error's ``request_id``):
byollm sends it, beside ``x-request-id``, on answers, streams and errors alike."""

from __future__ import annotations

import asyncio

import anthropic
import httpx
import openai
import pytest

from byollm.api.app import ByollmApp
from byollm.api.errors import install_error_handlers
from support.stack import DIRECT_MODELS, Stack

HELLO = [{"role": "user", "content": "hi"}]


def _anthropic(stack: Stack, token: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.url, api_key=token, max_retries=0)


def _openai(stack: Stack, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.url + "/v1", api_key=token, max_retries=0)


def test_anthropic_message_carries_the_request_id(stack: Stack) -> None:
    team = stack.new_team(DIRECT_MODELS)  # no AWS credentials here: the direct route serves (issue 16)
    raw = _anthropic(stack, team.token).messages.with_raw_response.create(
        model="claude-opus-4-7", max_tokens=20, messages=HELLO)  # type: ignore[arg-type]
    message = raw.parse()
    assert message._request_id is not None and message._request_id.startswith("req_")
    assert message._request_id == raw.headers["x-request-id"]


def test_anthropic_stream_carries_the_request_id(stack: Stack) -> None:
    team = stack.new_team(DIRECT_MODELS)
    with _anthropic(stack, team.token).messages.stream(model="claude-opus-4-7", max_tokens=20,
                                                        messages=HELLO) as stream:  # type: ignore[arg-type]
        stream.until_done()
        assert stream.request_id is not None and stream.request_id.startswith("req_")


def test_openai_completion_carries_the_request_id(stack: Stack) -> None:
    team = stack.new_team()
    completion = _openai(stack, team.token).chat.completions.create(model="gpt-5", messages=HELLO)  # type: ignore[arg-type]
    assert completion._request_id is not None and completion._request_id.startswith("req_")


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_errors_carry_the_request_id(stack: Stack, api: str) -> None:
    team = stack.new_team()
    error: anthropic.APIStatusError | openai.APIStatusError
    if api == "anthropic":
        with pytest.raises(anthropic.BadRequestError) as caught:
            _anthropic(stack, team.token).messages.create(model="claude-opus-4-7", max_tokens=0, messages=HELLO)  # type: ignore[arg-type]
        error = caught.value
    else:
        with pytest.raises(openai.BadRequestError) as raised:
            _openai(stack, team.token).chat.completions.create(model="gpt-5", messages=[])
        error = raised.value
    assert error.request_id is not None and error.request_id.startswith("req_")
    assert error.response.headers["request-id"] == error.response.headers["x-request-id"]


def test_unauthenticated_and_unknown_paths_carry_the_request_id(stack: Stack) -> None:
    with pytest.raises(anthropic.AuthenticationError) as caught:
        _anthropic(stack, "byo_" + "x" * 43).messages.create(model="opus", max_tokens=5, messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.request_id is not None
    r = stack.admin.get(stack.url + "/no/such/path")
    assert r.headers["request-id"].startswith("req_")


def test_an_unhandled_error_answers_with_the_request_id() -> None:
    """The server-error layer runs outside FastAPI's middleware: the id is added around all of it."""
    app = ByollmApp(max_body_bytes=1000)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    install_error_handlers(app)

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/boom")

    r = asyncio.run(call())
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert r.headers["request-id"] == r.headers["x-request-id"] == r.json()["error"]["request_id"]
