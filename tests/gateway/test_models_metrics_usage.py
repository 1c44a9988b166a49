"""The model list (Auto only while allowed), Prometheus metrics (identifier-only labels), the request log
and usage reports through the admin API, and health."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import anthropic
import httpx
import openai

from support.stack import Stack

PROMPT = {"role": "user", "content": "hi"}


def test_models_lists_routes_and_auto_only_while_allowed(stack: Stack) -> None:
    team = stack.new_team({"claude-opus-4-7": {"bedrock": True, "direct": True}, "gpt-5": {"direct": True}})
    listed = openai.OpenAI(base_url=stack.url + "/v1", api_key=team.token, max_retries=0,
                           default_headers=stack.delegated_headers()).models.list()
    ids = [m.id for m in listed.data]
    assert ids == ["auto", "claude-opus-4-7", "gpt-5", "claude-opus-5"]  # the last one found on the team's Bedrock
    opus = next(m for m in listed.data if m.id == "claude-opus-4-7").model_extra
    assert opus is not None
    assert [r["host"] for r in opus["byollm"]["routes"]] == ["bedrock", "anthropic"]

    team.policy(models={"gpt-5": {"direct": False}})  # one direct model disabled: Auto is off
    listed_after = anthropic.Anthropic(base_url=stack.url, api_key=team.token, max_retries=0).models.list()
    # no creds: Opus is routed through Bedrock, and the team does not serve credential-less requests direct
    assert [m.id for m in listed_after.data] == []
    team.settings(credentialless_direct_allowed=True)
    listed_allowed = anthropic.Anthropic(base_url=stack.url, api_key=team.token, max_retries=0).models.list()
    assert [m.id for m in listed_allowed.data] == ["claude-opus-4-7"]  # now: only its direct route
    refused = stack.gateway(team.token).post("/v1/messages", json={"model": "auto", "max_tokens": 5,
                                                                   "messages": [PROMPT]})
    assert refused.status_code == 403 and refused.json()["error"]["byollm"]["code"] == "auto_disabled"


def test_auto_picks_a_model_and_says_why(stack: Stack) -> None:
    team = stack.new_team()
    r = stack.gateway(team.token, stack.delegated_headers()).post(
        "/v1/messages", json={"model": "auto", "max_tokens": 50, "messages": [PROMPT]})
    assert r.status_code == 200, r.text
    assert r.headers["x-byollm-auto-model"] == r.headers["x-byollm-model"]
    assert r.headers["x-byollm-auto-reason"]
    assert r.headers["x-byollm-route"].startswith("bedrock:")  # the chosen model is Bedrock-enabled


def test_metrics_count_requests_with_identifier_labels_only(stack: Stack) -> None:
    team = stack.new_team()
    stack.gateway(team.token, stack.delegated_headers()).post(
        "/v1/messages", json={"model": "claude-opus-4-7", "max_tokens": 5, "messages": [PROMPT]})
    stack.gateway(team.token).post("/v1/messages", json={"model": "nope", "max_tokens": 5, "messages": [PROMPT]})
    text = httpx.get(stack.url + "/metrics", timeout=10).text
    assert 'byollm_requests_total{api="anthropic",code="ok",host="bedrock",model="claude-opus-4-7"}' in text
    assert "byollm_gateway_overhead_seconds_bucket" in text
    assert 'byollm_upstream_attempts_total{code="ok",host="bedrock",route="bedrock:global.anthropic.claude' in text
    assert team.token not in text and "byo_" not in text


def test_request_log_and_usage_report_through_the_admin_api(stack: Stack) -> None:
    team = stack.new_team()
    with stack.gateway(team.token, stack.delegated_headers()) as client:
        for _ in range(2):
            assert client.post("/v1/messages", json={"model": "claude-opus-4-7", "max_tokens": 5,
                                                     "messages": [PROMPT]}).status_code == 200
    team.settings(credentialless_direct_allowed=True)  # the request without AWS credentials goes direct
    with stack.gateway(team.token) as client:
        assert client.post("/v1/messages", json={"model": "claude-opus-4-7", "max_tokens": 5,
                                                 "messages": [PROMPT]}).status_code == 200
    deadline = time.monotonic() + 5
    while True:
        rows = stack.admin.get(f"/teams/{team.uid}/requests").json()
        if len(rows) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [r["host"] for r in rows].count("bedrock") == 2 and [r["host"] for r in rows].count("anthropic") == 1
    usage = stack.admin.get(f"/teams/{team.uid}/usage", params={
        "group_by": ["host", "bucket"], "since": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}).json()
    by_host = {u["host"]: u for u in usage}
    assert by_host["bedrock"]["requests"] == 2 and float(by_host["bedrock"]["credits"]) == 0
    assert by_host["anthropic"]["requests"] == 1 and float(by_host["anthropic"]["credits"]) > 0
    # a member sees only their own requests and no usage report
    member_rows = httpx.get(f"{stack.url}/api/v1/teams/{team.uid}/requests",
                            headers={"authorization": f"Bearer {team.token}"}).json()
    assert len(member_rows) == 3
    assert httpx.get(f"{stack.url}/api/v1/teams/{team.uid}/usage",
                     headers={"authorization": f"Bearer {team.token}"}).status_code == 403


def test_healthz(stack: Stack) -> None:
    r = httpx.get(stack.url + "/healthz", timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "ok"
