"""Issue 16 items 1 and 2: no paid routing without a word.

A member's request without AWS credentials for a model the team serves through Bedrock is refused with
``local_credentials_missing`` (both API shapes, no upstream call) unless the team allows direct service for
such requests; then it is served direct and reported as a fallback with its reason. Every fallback names each
failed route and class, the billing bucket and the credits it cost, in the headers (and, for a stream, in a
trailing SSE comment, which the official SDKs skip) and in the request log.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest

from support.stack import Stack

PROMPT = {"role": "user", "content": "Tell me something"}
OPUS = "claude-opus-4-7"
BOTH = {OPUS: {"bedrock": True, "direct": True}}


def _rows(stack: Stack, team_uid: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        rows = stack.request_log(team_uid)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_credentialless_request_for_a_bedrock_routed_model_gets_local_credentials_missing(stack: Stack) -> None:
    team = stack.new_team(BOTH)
    assert team.settings()["credentialless_direct_allowed"] is False  # off by default, and visible
    stack.clear_journal()
    sdk = anthropic.Anthropic(base_url=stack.url, api_key=team.token, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as failed:
        sdk.messages.create(model=OPUS, max_tokens=10, messages=[PROMPT])  # type: ignore[list-item]
    info = failed.value.body["error"]["byollm"]  # type: ignore[index]
    assert info["code"] == "local_credentials_missing"
    assert "aws login" in info["remediation"] and "byollm exec" in info["remediation"]
    assert failed.value.response.headers["x-should-retry"] == "false"

    oai = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=team.token, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        oai.chat.completions.create(model=OPUS, messages=[PROMPT])  # type: ignore[list-item]
    assert refused.value.response.headers["x-byollm-error-code"] == "local_credentials_missing"
    assert "aws login" in refused.value.response.text
    assert stack.journal() == []  # nothing went upstream: no silent paid route


def test_allowed_credentialless_direct_service_is_a_counted_explained_fallback(stack: Stack) -> None:
    team = stack.new_team(BOTH, credentialless_direct_allowed=True)
    sdk = anthropic.Anthropic(base_url=stack.url, api_key=team.token, max_retries=0)
    raw = sdk.messages.with_raw_response.create(model=OPUS, max_tokens=20, messages=[PROMPT])  # type: ignore[list-item]
    headers = raw.headers
    assert headers["x-byollm-route"] == f"anthropic:{OPUS}"
    assert headers["x-byollm-fallbacks"] == "1"
    (reason,) = headers["x-byollm-fallback-reasons"].split(", ")
    route, code = reason.rsplit("=", 1)
    assert route.startswith("bedrock:") and OPUS in route and code == "local_credentials_missing"
    assert headers["x-byollm-billing"] == "ai_credits" and Decimal(headers["x-byollm-credits"]) > 0
    (row,) = _rows(stack, team.uid, 1)
    assert [(a.route.split(":")[0], a.error_code) for a in row["attempts"]] == [
        ("bedrock", "local_credentials_missing"), ("anthropic", None)]
    assert row["billing"] == "ai_credits" and row["credits"] == Decimal(headers["x-byollm-credits"])


def test_a_direct_only_model_without_credentials_is_no_fallback(stack: Stack) -> None:
    team = stack.new_team({OPUS: {"direct": True}})
    raw = anthropic.Anthropic(base_url=stack.url, api_key=team.token, max_retries=0).messages.with_raw_response.create(
        model=OPUS, max_tokens=20, messages=[PROMPT])  # type: ignore[list-item]
    assert raw.headers["x-byollm-fallbacks"] == "0" and "x-byollm-fallback-reasons" not in raw.headers
    assert raw.headers["x-byollm-billing"] == "ai_credits"


@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
def test_a_failover_names_each_failed_route_its_class_and_the_price(stack: Stack, streaming: bool) -> None:
    team = stack.new_team(BOTH)
    stack.fault(service="bedrock", error="AccessDeniedException", count=1)
    sdk = anthropic.Anthropic(base_url=stack.url, api_key=team.token, default_headers=stack.delegated_headers(),
                              max_retries=0)
    if streaming:
        with sdk.messages.with_streaming_response.create(model=OPUS, max_tokens=50, messages=[PROMPT],  # type: ignore[list-item]
                                                         stream=True) as raw:
            headers = raw.headers
            body = b"".join(raw.iter_bytes()).decode()
        assert "x-byollm-credits" not in headers  # not known before the answer ends ...
        trailer = [line for line in body.splitlines() if line.startswith(": x-byollm-credits=")]
        credits = Decimal(trailer[-1].split("=", 1)[1])  # ... so it follows the last event as an SSE comment
        # the official SDK skips the comment: the stream still parses to the whole answer
        with sdk.messages.stream(model=OPUS, max_tokens=50, messages=[PROMPT]) as stream:  # type: ignore[list-item]
            assert stream.get_final_text()
    else:
        plain = sdk.messages.with_raw_response.create(model=OPUS, max_tokens=50, messages=[PROMPT])  # type: ignore[list-item]
        headers = plain.headers
        credits = Decimal(headers["x-byollm-credits"])
    assert headers["x-byollm-route"] == f"anthropic:{OPUS}" and headers["x-byollm-fallbacks"] == "1"
    (reason,) = headers["x-byollm-fallback-reasons"].split(", ")
    assert reason.startswith("bedrock:") and reason.endswith("=insufficient_permissions")
    assert headers["x-byollm-billing"] == "ai_credits" and credits > 0
    rows = _rows(stack, team.uid, 2 if streaming else 1)
    first = min(rows, key=lambda r: r["started_at"])
    assert first["credits"] == credits


def test_a_bedrock_answer_reports_its_bucket_and_no_credits(stack: Stack) -> None:
    team = stack.new_team(BOTH)
    raw = anthropic.Anthropic(base_url=stack.url, api_key=team.token, default_headers=stack.delegated_headers(),
                              max_retries=0).messages.with_raw_response.create(
        model=OPUS, max_tokens=20, messages=[PROMPT])  # type: ignore[list-item]
    assert raw.headers["x-byollm-billing"] == "customer_cloud" and Decimal(raw.headers["x-byollm-credits"]) == 0
    assert "x-byollm-fallback-reasons" not in raw.headers


def test_a_streamed_responses_answer_ends_with_what_it_cost(stack: Stack) -> None:
    """The Responses API stream too: a trailing SSE comment after the last event, skipped by the OpenAI SDK."""
    team = stack.new_team({"gpt-5": {"direct": True}})
    oai = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=team.token, max_retries=0)
    with oai.responses.with_streaming_response.create(model="gpt-5", input="hello", stream=True) as raw:
        assert raw.headers["x-byollm-billing"] == "ai_credits"
        body = b"".join(raw.iter_bytes()).decode()
    trailer = [line for line in body.splitlines() if line.startswith(": x-byollm-credits=")]
    assert trailer and Decimal(trailer[-1].split("=", 1)[1]) > 0
    events = list(oai.responses.create(model="gpt-5", input="hello", stream=True))
    assert events[-1].type == "response.completed"
