"""Delegated interactive credentials and BYOK keys: what is accepted, what is refused, where they go."""

from __future__ import annotations

from typing import Any

import pytest

from byollm.credentials.delegated import is_secure_transport
from support.stack import Stack

PROMPT = {"role": "user", "content": "hello"}
BODY = {"model": "claude-opus-4-7", "max_tokens": 20, "messages": [PROMPT]}
LONG_TERM = {"x-byollm-aws-access-key-id": "AKIASIMDEV0000000001",
             "x-byollm-aws-secret-access-key": "simDevSecretKey0000000000000000000000001"}


def _post(stack: Stack, token: str, headers: dict[str, str], body: dict[str, Any] | None = None) -> Any:
    with stack.gateway(token, headers) as client:
        return client.post("/v1/messages", json=body or BODY)


@pytest.mark.parametrize("missing", ["x-byollm-aws-secret-access-key", "x-byollm-aws-access-key-id"])
def test_partial_credentials_are_refused_and_nothing_is_sent(stack: Stack, missing: str) -> None:
    team = stack.new_team()
    headers = {k: v for k, v in stack.delegated_headers().items() if k != missing}
    stack.clear_journal()
    r = _post(stack, team.token, headers)
    assert r.status_code == 400 and r.json()["error"]["byollm"]["code"] == "partial_credentials"
    assert stack.journal() == []


def test_long_term_keys_are_refused_by_default(stack: Stack) -> None:
    team = stack.new_team()
    stack.clear_journal()
    r = _post(stack, team.token, LONG_TERM)
    assert r.status_code == 403
    error = r.json()["error"]["byollm"]
    assert error["code"] == "long_term_credentials_refused" and "aws login" in error["remediation"]
    assert stack.journal() == []


def test_long_term_keys_work_when_the_team_allows_them(stack: Stack) -> None:
    team = stack.new_team(long_term_keys_allowed=True)
    r = _post(stack, team.token, LONG_TERM)
    assert r.status_code == 200, r.text
    assert r.headers["x-byollm-route"].startswith("bedrock:")


def test_allowed_accounts_are_checked_once_per_credential_set(stack: Stack) -> None:
    team = stack.new_team(allowed_aws_accounts=["111122223333"])
    headers = stack.delegated_headers()
    stack.clear_journal()
    for _ in range(3):
        r = _post(stack, team.token, headers)
        assert r.status_code == 200 and r.headers["x-byollm-route"].startswith("bedrock:")
    assert len([e for e in stack.journal("sts") if "GetCallerIdentity" in e["body"]]) == 1


def test_credentials_from_another_account_are_refused(stack: Stack) -> None:
    team = stack.new_team(allowed_aws_accounts=["444455556666"])
    stack.clear_journal()
    r = _post(stack, team.token, stack.delegated_headers())
    assert r.status_code == 403
    error = r.json()["error"]["byollm"]
    assert error["code"] == "aws_account_not_allowed" and error["context"]["account"] == "111122223333"
    assert stack.journal("bedrock-runtime") == [] and stack.journal("anthropic") == []


def test_the_teams_region_governs(stack: Stack) -> None:
    team = stack.new_team(region="eu-west-1")
    stack.sim_http.delete("/_sim/invocations")
    r = _post(stack, team.token, {**stack.delegated_headers(), "x-amz-region": "ap-south-1"})
    assert r.status_code == 200, r.text
    (invocation,) = stack.sim_http.get("/_sim/invocations").json()["invocations"]
    assert invocation["region"] == "eu-west-1"
    assert invocation["requestMetadata"]["byollm_team"] == team.uid
    assert invocation["requestMetadata"]["byollm_request_id"] == r.headers["x-request-id"]


def test_no_credentials_means_no_interactive_bedrock_route(stack: Stack) -> None:
    team = stack.new_team({"claude-opus-4-7": {"bedrock": True}})
    stack.clear_journal()
    r = _post(stack, team.token, {})
    assert r.status_code == 401
    error = r.json()["error"]["byollm"]
    assert error["code"] == "local_credentials_missing" and "aws login" in error["remediation"]
    assert stack.journal() == []


@pytest.mark.parametrize(("scheme", "client", "allow", "secure"), [
    ("https", "203.0.113.9", False, True),
    ("http", "127.0.0.1", False, True),
    ("http", "::1", False, True),
    ("http", "203.0.113.9", False, False),
    ("http", "203.0.113.9", True, True),
    ("http", None, False, False),
])
def test_plain_http_carries_credentials_only_on_loopback(scheme: str, client: str | None, allow: bool,
                                                         secure: bool) -> None:
    assert is_secure_transport(scheme, client, allow) is secure


def test_byok_key_serves_the_direct_route_and_reaches_only_its_provider(stack: Stack) -> None:
    byok = stack.provider_keys["anthropic"]  # a key the simulated Anthropic API accepts
    team = stack.new_team({"claude-opus-4-7": {"direct": True}}, byok_allowed=True)
    stack.clear_journal()
    r = _post(stack, team.token, {"x-byollm-byok-anthropic": byok, "x-byollm-byok-openai": "sk-not-for-anthropic"})
    assert r.status_code == 200, r.text
    (sent,) = stack.journal("anthropic")
    headers = dict(sent["headers"])
    assert headers["x-api-key"] == byok
    assert "sk-not-for-anthropic" not in str(sent)
    rows = _rows(stack, team.uid, 1)
    assert rows[0]["billing"] == "user_key" and rows[0]["credits"] == 0


def test_byok_ignored_when_the_team_does_not_allow_it(stack: Stack) -> None:
    team = stack.new_team({"claude-opus-4-7": {"direct": True}})
    stack.clear_journal()
    r = _post(stack, team.token, {"x-byollm-byok-anthropic": "sk-ant-user-key-not-allowed"})
    assert r.status_code == 200
    (sent,) = stack.journal("anthropic")
    assert "sk-ant-user-key-not-allowed" not in str(sent)
    assert _rows(stack, team.uid, 1)[0]["billing"] == "ai_credits"


def test_out_of_credits_drops_direct_routes_but_bedrock_still_serves(stack: Stack) -> None:
    team = stack.new_team(credits=0)
    served = _post(stack, team.token, stack.delegated_headers())
    assert served.status_code == 200 and served.headers["x-byollm-route"].startswith("bedrock:")
    refused = _post(stack, team.token, {})  # issue 16: signing in is the fix, not credits
    assert refused.status_code == 401
    assert refused.json()["error"]["byollm"]["code"] == "local_credentials_missing"
    team.settings(credentialless_direct_allowed=True)  # the direct route is allowed, and then credits decide
    refused = _post(stack, team.token, {})
    assert refused.status_code == 402
    assert refused.json()["error"]["byollm"]["code"] == "credits_exhausted"


def _rows(stack: Stack, team_uid: str, count: int) -> list[dict[str, Any]]:
    import time

    deadline = time.monotonic() + 5
    while True:
        rows = stack.request_log(team_uid)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)
