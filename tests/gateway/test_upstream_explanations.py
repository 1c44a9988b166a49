"""The upstream's own explanation reaches the caller when it refuses a request as invalid: the official SDKs
show the words Bedrock or Anthropic used (credential-scrubbed, capped) inside byollm's taxonomy code and
remediation; "prompt is too long" keeps its wording and status, so Claude Code's compaction still fires."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from byollm.providers.classify import EXPLANATION_CHARS
from byollm.sim.engine import CONTEXT_WINDOW_TOKENS
from support.stack import Stack

ROUTES = [(True, "bedrock"), (False, "anthropic")]


def _client(stack: Stack, token: str, *, delegated: bool) -> anthropic.Anthropic:
    headers = stack.delegated_headers() if delegated else {}
    return anthropic.Anthropic(base_url=stack.url, api_key=token, default_headers=headers, max_retries=0)


def _refusal(stack: Stack, delegated: bool, messages: list[dict[str, Any]]) -> anthropic.BadRequestError:
    team = stack.new_team({"claude-opus-4-7": {"bedrock": True} if delegated else {"direct": True}})
    with pytest.raises(anthropic.BadRequestError) as refused:
        _client(stack, team.token, delegated=delegated).messages.create(
            model="claude-opus-4-7", max_tokens=20, messages=messages)  # type: ignore[arg-type]
    return refused.value


@pytest.mark.parametrize(("delegated", "host"), ROUTES, ids=[h for _, h in ROUTES])
def test_an_empty_messages_list_shows_the_upstreams_words(stack: Stack, delegated: bool, host: str) -> None:
    error = _refusal(stack, delegated, [])
    body: Any = error.body
    assert "at least one message is required" in body["error"]["message"]
    assert body["error"]["byollm"]["code"] == "invalid_request"
    assert body["error"]["byollm"]["remediation"] in body["error"]["message"]
    assert body["error"]["byollm"]["context"]["upstream_message"]


@pytest.mark.parametrize(("delegated", "host"), ROUTES, ids=[h for _, h in ROUTES])
def test_a_first_message_from_the_assistant_shows_the_upstreams_words(stack: Stack, delegated: bool,
                                                                       host: str) -> None:
    error = _refusal(stack, delegated, [{"role": "assistant", "content": "hello"}])
    assert 'first message must use the "user" role' in str(error)


def test_prompt_too_long_keeps_the_wording_and_the_status(stack: Stack) -> None:
    words = " ".join(["word"] * (CONTEXT_WINDOW_TOKENS + 5))
    error = _refusal(stack, False, [{"role": "user", "content": words}])
    body: Any = error.body
    assert error.status_code == 400 and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith(f"prompt is too long: {CONTEXT_WINDOW_TOKENS + 5} tokens > ")
    bedrock = _refusal(stack, True, [{"role": "user", "content": words}])
    assert "Input is too long for requested model." in str(bedrock)


def test_an_openai_refusal_shows_its_words_through_the_openai_sdk(stack: Stack) -> None:
    team = stack.new_team({"gpt-5": {"direct": True}})
    sdk = openai.OpenAI(base_url=stack.url + "/v1", api_key=team.token, max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="gpt-5", messages=[])
    assert "'messages' must be a non-empty array" in str(refused.value)


def test_an_upstream_explanation_is_scrubbed_of_credentials_and_capped(stack: Stack) -> None:
    team = stack.new_team({"claude-opus-4-7": {"direct": True}})
    secret = "AKIA" + "ABCDEFGHIJKLMNOP"
    stack.fault(service="anthropic", error="invalid_request_error", count=1,
                message=f"bad field near {secret} " + "x" * 3000)
    with pytest.raises(anthropic.BadRequestError) as refused:
        _client(stack, team.token, delegated=False).messages.create(
            model="claude-opus-4-7", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    body: Any = refused.value.body
    said = body["error"]["byollm"]["context"]["upstream_message"]
    assert said.startswith("bad field near ") and secret not in str(body)
    assert len(said) <= EXPLANATION_CHARS
