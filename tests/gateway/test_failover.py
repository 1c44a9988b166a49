"""Failover along the plan, for every failing-over class, streaming and not (peers.md items 1, 2, 4).

Each case breaks the Bedrock route in the simulator (a fault rule, or a real change to the account) and
checks that the request is served by the next route (the direct Anthropic API here), that the response
headers say so, and that only the direct route consumed AI credits. Non-failover classes (the caller's own
invalid request, expired local credentials) must stop at once.
"""

from __future__ import annotations

import time
from typing import Any

import anthropic
import httpx
import pytest

from support.stack import Stack

PROMPT = {"role": "user", "content": "Tell me something"}

# (id, fault rule on the Bedrock route, expected class code of the failed attempt)
BEDROCK_FAULTS: list[tuple[str, dict[str, Any], str]] = [
    ("throttling-429", {"error": "ThrottlingException"}, "quota_exceeded"),
    ("quota-exceeded", {"error": "ServiceQuotaExceededException"}, "quota_exceeded"),
    ("service-unavailable-503", {"error": "ServiceUnavailableException"}, "upstream_unavailable"),
    ("service-unavailable-inside-400", {"error": "ServiceUnavailableException", "status": 400},
     "upstream_unavailable"),
    ("internal-500", {"error": "InternalServerException"}, "upstream_unavailable"),
    ("model-not-ready", {"error": "ModelNotReadyException"}, "upstream_unavailable"),
    ("model-timeout", {"error": "ModelTimeoutException"}, "upstream_unavailable"),
    ("access-denied", {"error": "AccessDeniedException"}, "insufficient_permissions"),
    ("needs-inference-profile", {"error": "ValidationException", "message":
        "Invocation of model ID anthropic.claude-opus-4-7-v1:0 with on-demand throughput isn\u2019t supported."
        " Retry your request with the ID or ARN of an inference profile that contains this model."},
     "region_model_mismatch"),
    ("invalid-model-id", {"error": "ValidationException", "message": "The provided model identifier is invalid."},
     "region_model_mismatch"),
    ("not-found", {"error": "ResourceNotFoundException"}, "region_model_mismatch"),
    ("connection-reset", {"reset": True}, "upstream_unavailable"),
]


def _sdk(stack: Stack, token: str, headers: dict[str, str]) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.url, api_key=token, default_headers=headers, max_retries=0)


def _wait_for_rows(stack: Stack, team_uid: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        rows = stack.request_log(team_uid)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(("fault", "code"), [(f, c) for _, f, c in BEDROCK_FAULTS],
                         ids=[name for name, _, _ in BEDROCK_FAULTS])
def test_bedrock_failure_fails_over_to_direct(stack: Stack, fault: dict[str, Any], code: str, streaming: bool) -> None:
    team = stack.new_team()
    stack.fault(service="bedrock", count=1, **fault)
    sdk = _sdk(stack, team.token, stack.delegated_headers())
    if streaming:
        with sdk.messages.with_streaming_response.create(model="claude-opus-4-7", max_tokens=100,
                                                         messages=[PROMPT], stream=True) as raw:
            headers = raw.headers
            body = b"".join(raw.iter_bytes())
        text = body.decode()
    else:
        raw_plain = sdk.messages.with_raw_response.create(model="claude-opus-4-7", max_tokens=100, messages=[PROMPT])
        headers = raw_plain.headers
        text = "".join(b.text for b in raw_plain.parse().content if b.type == "text")
    assert headers["x-byollm-route"] == "anthropic:claude-opus-4-7", text
    assert headers["x-byollm-fallbacks"] == "1"
    assert "[anthropic:" in text
    (row,) = _wait_for_rows(stack, team.uid, 1)
    assert [a.error_code for a in row["attempts"]] == [code, None]
    assert row["billing"] == "ai_credits" and row["credits"] > 0


def test_throttled_bedrock_charges_credits_only_on_the_fallback(stack: Stack) -> None:
    team = stack.new_team()
    sdk = _sdk(stack, team.token, stack.delegated_headers())
    sdk.messages.create(model="claude-opus-4-7", max_tokens=50, messages=[PROMPT])  # served by Bedrock
    stack.fault(service="bedrock", error="ThrottlingException", count=1)
    sdk.messages.create(model="claude-opus-4-7", max_tokens=50, messages=[PROMPT])  # falls back to direct
    rows = sorted(_wait_for_rows(stack, team.uid, 2), key=lambda r: r["started_at"])
    assert [r["host"] for r in rows] == ["bedrock", "anthropic"]
    assert rows[0]["credits"] == 0 and rows[0]["billing"] == "customer_cloud"
    assert rows[1]["credits"] > 0 and rows[1]["billing"] == "ai_credits"


def test_real_quota_on_the_account_fails_over(stack: Stack) -> None:
    team = stack.new_team()
    quota = stack.sim_http.put("/_sim/accounts/111122223333/quotas/*", json={"requests_per_minute": 0})
    assert quota.status_code == 200, quota.text
    try:
        raw = _sdk(stack, team.token, stack.delegated_headers()).messages.with_raw_response.create(
            model="claude-sonnet-4-6", max_tokens=50, messages=[PROMPT])
        assert raw.headers["x-byollm-route"].startswith("anthropic:")
    finally:
        stack.sim_http.put("/_sim/accounts/111122223333/quotas/*", json={})


def test_model_access_never_granted_fails_over_as_insufficient_permissions(stack: Stack) -> None:
    team = stack.new_team()
    model = "anthropic.claude-sonnet-4-6-v1:0"
    assert stack.sim_http.delete(f"/_sim/accounts/111122223333/model-access/{model}").status_code in (200, 204)
    try:
        raw = _sdk(stack, team.token, stack.delegated_headers()).messages.with_raw_response.create(
            model="claude-sonnet-4-6", max_tokens=50, messages=[PROMPT])
        assert raw.headers["x-byollm-route"] == "anthropic:claude-sonnet-4-6"
        (row,) = _wait_for_rows(stack, team.uid, 1)
        assert row["attempts"][0].error_code == "insufficient_permissions"
    finally:
        stack.sim_http.put(f"/_sim/accounts/111122223333/model-access/{model}")


def test_mid_stream_failure_after_first_byte_becomes_an_in_stream_error(stack: Stack) -> None:
    team = stack.new_team()
    stack.fault(service="bedrock", error="ThrottlingException", after_events=4, count=1)
    with httpx.stream("POST", stack.url + "/v1/messages", timeout=30,
                      headers={"authorization": f"Bearer {team.token}", **stack.delegated_headers()},
                      json={"model": "claude-opus-4-7", "max_tokens": 200, "stream": True,
                            "messages": [{"role": "user", "content": "a long answer please " * 5}]}) as r:
        assert r.status_code == 200
        assert r.headers["x-byollm-route"].startswith("bedrock:")
        body = r.read().decode()
    assert "event: error" in body and "quota_exceeded" in body
    assert "event: message_stop" not in body


def test_nothing_left_lists_every_attempt(stack: Stack) -> None:
    team = stack.new_team({"claude-opus-4-7": {"bedrock": True, "direct": True}, "gpt-5": {"direct": True}},
                          fallback=["gpt-5"])
    stack.fault(service="bedrock", error="ThrottlingException")
    stack.fault(service="anthropic", error="overloaded_error")
    stack.fault(service="openai", error="server_error")
    with pytest.raises(anthropic.APIStatusError) as failed:
        _sdk(stack, team.token, stack.delegated_headers()).messages.create(
            model="claude-opus-4-7", max_tokens=50, messages=[PROMPT])
    assert failed.value.status_code == 424
    info = failed.value.body["error"]["byollm"]  # type: ignore[index]
    assert info["code"] == "no_fallback_available"
    routes = [(a["route"], a["code"]) for a in info["context"]["attempts"]]
    assert routes == [("bedrock:global.anthropic.claude-opus-4-7-v1:0", "quota_exceeded"),
                      ("anthropic:claude-opus-4-7", "upstream_unavailable"),
                      ("openai:gpt-5", "upstream_unavailable")]
    assert all(a["remediation"] for a in info["context"]["attempts"])


def test_bedrock_only_team_gets_a_clear_error_when_bedrock_fails(stack: Stack) -> None:
    team = stack.new_team({"claude-opus-4-7": {"bedrock": True}})
    team.policy(direct_api_disabled=True)
    stack.fault(service="bedrock", error="ServiceUnavailableException", status=503)
    r = stack.gateway(team.token, stack.delegated_headers()).post(
        "/v1/messages", json={"model": "claude-opus-4-7", "max_tokens": 10, "messages": [PROMPT]})
    assert r.status_code == 424
    error = r.json()["error"]
    assert error["byollm"]["code"] == "no_fallback_available"
    assert "upstream_unavailable" in error["message"] and error["byollm"]["remediation"]
    assert not [e for e in stack.journal("anthropic")
                if team.uid in str(e)]  # nothing was sent to a direct provider


def test_the_sdk_retries_when_every_route_failed_for_a_passing_reason(stack: Stack) -> None:
    """A 424 whose attempts were all temporary (throttling, an outage) says ``x-should-retry: true``, and the
    official SDK retries it: the second try is served. One permanent failure among them says ``false``."""
    team = stack.new_team({"claude-opus-4-7": {"bedrock": True}})
    team.policy(direct_api_disabled=True)
    stack.fault(service="bedrock", error="ThrottlingException", count=1)
    stack.clear_journal()
    raw = anthropic.Anthropic(base_url=stack.url, api_key=team.token, default_headers=stack.delegated_headers(),
                              max_retries=1).messages.with_raw_response.create(
        model="claude-opus-4-7", max_tokens=10, messages=[PROMPT])
    assert raw.headers["x-byollm-route"].startswith("bedrock:")
    assert len(stack.journal("bedrock-runtime")) == 2  # the 424, then the retry the SDK made on its own

    stack.fault(service="bedrock", error="AccessDeniedException", count=1)
    r = stack.gateway(team.token, stack.delegated_headers()).post(
        "/v1/messages", json={"model": "claude-opus-4-7", "max_tokens": 10, "messages": [PROMPT]})
    assert r.status_code == 424 and r.headers["x-should-retry"] == "false"


def test_invalid_request_does_not_fail_over(stack: Stack) -> None:
    team = stack.new_team()
    stack.clear_journal()
    r = stack.gateway(team.token, stack.delegated_headers()).post(
        "/v1/messages", json={"model": "claude-opus-4-7", "max_tokens": 10,
                              "messages": [{"role": "user", "content": 42}]})
    assert r.status_code == 400
    assert r.json()["error"]["byollm"]["code"] == "invalid_request"
    assert stack.journal("anthropic") == []


def test_application_inference_profile_override(stack: Stack) -> None:
    arn = "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/simappsonnet1"
    team = stack.new_team({"claude-sonnet-4-6": {"bedrock": True, "inference_profile": arn, "direct": False}})
    raw = _sdk(stack, team.token, stack.delegated_headers()).messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=20, messages=[PROMPT])
    assert raw.headers["x-byollm-route"] == f"bedrock:{arn}"
    assert "[bedrock:" in raw.parse().content[0].text  # type: ignore[union-attr]
    count = _sdk(stack, team.token, stack.delegated_headers()).messages.count_tokens(
        model="claude-sonnet-4-6", messages=[PROMPT])
    assert count.input_tokens > 0


def test_expired_local_credentials_fail_fast_without_paid_fallback(stack: Stack) -> None:
    team = stack.new_team()
    headers = stack.delegated_headers()
    expire = stack.sim_http.post(f"/_sim/credentials/{headers['x-byollm-aws-access-key-id']}/expire")
    assert expire.status_code in (200, 204), expire.text
    stack.clear_journal()
    started = time.monotonic()
    with pytest.raises(anthropic.AuthenticationError) as failed:
        _sdk(stack, team.token, headers).messages.create(model="claude-opus-4-7", max_tokens=10, messages=[PROMPT])
    assert time.monotonic() - started < 5
    info = failed.value.body["error"]["byollm"]  # type: ignore[index]
    assert info["code"] == "local_credentials_expired" and "aws login" in info["remediation"]
    assert failed.value.response.headers["x-should-retry"] == "false"
    assert stack.journal("anthropic") == []  # no silent switch to the paid direct API
    assert len(stack.journal("bedrock-runtime")) == 1  # and no retry


def test_expiry_announced_by_the_client_fails_before_any_upstream_call(stack: Stack) -> None:
    team = stack.new_team()
    headers = {**stack.delegated_headers(), "x-byollm-aws-expiration": "2020-01-01T00:00:00Z"}
    stack.clear_journal()
    r = stack.gateway(team.token, headers).post(
        "/v1/messages", json={"model": "claude-opus-4-7", "max_tokens": 10, "messages": [PROMPT]})
    assert r.status_code == 401 and r.json()["error"]["byollm"]["code"] == "local_credentials_expired"
    assert stack.journal() == []


def test_a_fallback_that_cannot_take_the_request_is_skipped_not_fatal(stack: Stack) -> None:
    team = stack.new_team({"claude-opus-4-7": {"bedrock": True}, "gpt-5": {"direct": True},
                           "claude-sonnet-4-6": {"direct": True}}, fallback=["gpt-5", "claude-sonnet-4-6"])
    stack.fault(service="bedrock", error="ServiceUnavailableException", count=1)
    body = {"model": "claude-opus-4-7", "max_tokens": 50, "messages": [PROMPT],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}]}
    r = stack.gateway(team.token, stack.delegated_headers()).post("/v1/messages", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["x-byollm-route"] == "anthropic:claude-sonnet-4-6"
    (row,) = _wait_for_rows(stack, team.uid, 1)
    assert [a.error_code for a in row["attempts"]] == ["upstream_unavailable", "unsupported_by_route", None]
