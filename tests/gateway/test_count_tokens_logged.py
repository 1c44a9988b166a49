"""Counting tokens calls the upstream too (Bedrock CountTokens, Anthropic's count_tokens), so it is in the
request log like every upstream call byollm makes: the route, the attempts and the count, never a charge."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import anthropic
import pytest

from support.stack import DIRECT_MODELS, Stack


def _row(stack: Stack, team_uid: str, request_id: str) -> dict[str, Any]:
    """The request's row, once the writer's batch (at most 100 ms) has landed."""
    deadline = time.monotonic() + 10
    while True:
        rows = [r for r in stack.request_log(team_uid) if r["request_id"] == request_id]
        if rows or time.monotonic() > deadline:
            assert rows, f"no request-log row for {request_id}"
            return rows[0]
        time.sleep(0.1)


@pytest.mark.parametrize(("delegated", "host"), [(True, "bedrock"), (False, "anthropic")])
def test_a_token_count_is_logged_and_never_charged(stack: Stack, delegated: bool, host: str) -> None:
    team = stack.new_team(None if delegated else DIRECT_MODELS)
    headers = stack.delegated_headers() if delegated else {}
    sdk = anthropic.Anthropic(base_url=stack.url, api_key=team.token, default_headers=headers, max_retries=0)
    raw = sdk.messages.with_raw_response.count_tokens(
        model="claude-opus-4-7", messages=[{"role": "user", "content": "How many tokens is this?"}])
    counted = raw.parse().input_tokens
    row = _row(stack, team.uid, raw.headers["x-request-id"])
    assert row["host"] == host and row["status"] == 200 and row["error_code"] is None
    assert row["route"] == raw.headers["x-byollm-route"]
    assert (row["input_tokens"], row["output_tokens"]) == (counted, 0)
    assert Decimal(str(row["credits"])) == 0


def test_a_failed_count_is_logged_with_what_the_caller_received(stack: Stack) -> None:
    team = stack.new_team(DIRECT_MODELS)
    stack.fault(service="anthropic", error="authentication_error", count=5)
    sdk = anthropic.Anthropic(base_url=stack.url, api_key=team.token, max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as refused:
        sdk.messages.count_tokens(model="claude-opus-4-7", messages=[{"role": "user", "content": "hi"}])
    row = _row(stack, team.uid, refused.value.response.headers["x-request-id"])
    assert row["status"] == refused.value.status_code
    assert row["error_code"] == refused.value.response.headers["x-byollm-error-code"]
    assert row["attempts"] and row["attempts"][0].error_code is not None
