"""Canary scan: no credential, key or token value may appear where it does not belong (peers.md items 5, 6).

The stack runs with recognisable values: direct-provider keys and a BYOK key that contain ``CANARY``, and
the AWS session credentials and byollm tokens the test itself obtained. After driving every gateway path
(both APIs, plain and streaming, tools, failover, every credential refusal, BYOK, count_tokens, the model
list, metrics, the admin API), the test scans:

- every log record and everything written to stdout/stderr,
- every response body and header,
- every row of every database table,
- /metrics,
- every request the simulator received: a value may only reach its own destination (AWS credentials only
  Bedrock and STS; each provider's key only that provider), and byollm's own tokens go nowhere upstream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.canary import LogRecords, canary_world, dump_database
from support.stack import Stack, running_stack

CANARY_KEYS = {
    "anthropic": "sk-ant-CANARY0operator0anthropic000000001",
    "openai": "sk-CANARY0operator0openai0000000000000001",
    "google": "AIzaCANARY0operator0google00000000000001",
}
BYOK_ANTHROPIC = "sk-ant-CANARY0byok0user0anthropic000000001"
PROMPT = {"role": "user", "content": "Use get_weather for city=Rome please"}
TOOL = {"name": "get_weather", "description": "weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def _world() -> dict[str, Any]:
    return canary_world({"anthropic": [CANARY_KEYS["anthropic"], BYOK_ANTHROPIC],
                         "openai": [CANARY_KEYS["openai"]], "google": [CANARY_KEYS["google"]]})



@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(Path(tmp_path_factory.mktemp("canary")), world=_world()) as s:
        yield s


def test_no_secret_reaches_a_log_row_response_metric_or_wrong_upstream(
    stack: Stack, capfd: pytest.CaptureFixture[str]
) -> None:
    records = LogRecords()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(records)
    root.setLevel(logging.DEBUG)
    seen: list[str] = []

    def keep(response: httpx.Response) -> None:
        response.read()
        seen.append(str(dict(response.headers)))
        seen.append(response.text)

    try:
        team = stack.new_team(fallback=["gpt-5", "gemini-2.5-flash"], byok_allowed=True)
        creds = stack.delegated_headers()
        secrets = {
            "aws_secret": creds["x-byollm-aws-secret-access-key"],
            "aws_session_token": creds["x-byollm-aws-session-token"],
            "byollm_member_token": team.token,
            "byollm_operator_token": stack.operator,
            "byok": BYOK_ANTHROPIC,
            **{f"operator_{k}": v for k, v in CANARY_KEYS.items()},
        }
        client = httpx.Client(base_url=stack.url, timeout=60, event_hooks={"response": [keep]},
                              headers={"authorization": f"Bearer {team.token}"})
        body = {"model": "claude-opus-4-7", "max_tokens": 100, "messages": [PROMPT], "tools": [TOOL]}
        chat = {"model": "claude-opus-4-7", "messages": [{"role": "user", "content": "hi"}], "tools": [
            {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]}
        for headers in (creds, {}):  # Bedrock route, then the direct route
            client.post("/v1/messages", json=body, headers=headers)
            client.post("/v1/messages", json={**body, "stream": True}, headers=headers)
            client.post("/v1/chat/completions", json=chat, headers=headers)
            client.post("/v1/chat/completions", json={**chat, "stream": True}, headers=headers)
            client.post("/v1/messages/count_tokens", json={"model": "opus", "messages": [PROMPT]}, headers=headers)
            client.get("/v1/models", headers=headers)
        # failover across providers: Bedrock and Anthropic fail, OpenAI then Gemini serve
        stack.fault(service="bedrock", error="ThrottlingException", count=2)
        stack.fault(service="anthropic", error="overloaded_error", count=2)
        client.post("/v1/messages", json=body, headers=creds)
        stack.fault(service="openai", error="server_error", count=1)
        client.post("/v1/messages", json={**body, "stream": True}, headers=creds)
        stack.clear_faults()
        # BYOK: the user's own Anthropic key serves the direct route
        client.post("/v1/messages", json=body, headers={"x-byollm-byok-anthropic": BYOK_ANTHROPIC})
        # every credential refusal
        partial = {k: v for k, v in creds.items() if "session-token" not in k and "secret" not in k}
        client.post("/v1/messages", json=body, headers=partial)
        client.post("/v1/messages", json=body, headers={**creds, "x-byollm-aws-session-token": ""})
        client.post("/v1/messages", json=body, headers={**creds, "x-byollm-aws-expiration": "2001-01-01T00:00:00Z"})
        expired = stack.delegated_headers()
        secrets["aws_secret_2"] = expired["x-byollm-aws-secret-access-key"]
        secrets["aws_session_token_2"] = expired["x-byollm-aws-session-token"]
        stack.sim_http.post(f"/_sim/credentials/{expired['x-byollm-aws-access-key-id']}/expire")
        client.post("/v1/messages", json=body, headers=expired)
        client.post("/v1/messages", json=body, headers={"authorization": "Bearer byo_" + "A" * 43})
        client.post("/v1/messages", json=body, headers={"authorization": f"Bearer {team.token}x"})
        # admin API and metrics
        client.get("/api/v1/teams", headers={"authorization": f"Bearer {stack.operator}"})
        client.get(f"/api/v1/teams/{team.uid}/audit", headers={"authorization": f"Bearer {stack.operator}"})
        client.get("/api/v1/operator/provider-keys", headers={"authorization": f"Bearer {stack.operator}"})
        metrics = client.get("/metrics").text
        client.close()
        asyncio.run(asyncio.sleep(0.5))  # let the request-log writer flush
    finally:
        root.removeHandler(records)
        root.setLevel(old_level)
    captured = capfd.readouterr()

    places: dict[str, str] = {
        "logs": "\n".join(records.lines),
        "stdout": captured.out,
        "stderr": captured.err,
        "responses": "\n".join(seen),
        "metrics": metrics,
        "database": dump_database(stack),
    }
    hits = [(name, where) for name, value in secrets.items() for where, blob in places.items() if value in blob]
    assert hits == []
    assert len(seen) > 40  # the scan saw the traffic it claims to have seen

    # what the simulator received: each value only at its own destination
    allowed = {
        "aws_secret": set(), "aws_secret_2": set(),  # a secret key is never sent, only used to sign
        # the Bedrock control plane ("bedrock") too: a name the catalog lacks is looked up in the team's Bedrock
        # with the caller's own session (catalog refresh), which signs for AWS and nobody else
        "aws_session_token": {"bedrock-runtime", "bedrock", "sts"},
        "aws_session_token_2": {"bedrock-runtime", "bedrock", "sts"},
        "byollm_member_token": set(), "byollm_operator_token": set(),
        "byok": {"anthropic"}, "operator_anthropic": {"anthropic"}, "operator_openai": {"openai"},
        "operator_google": {"google"},
    }
    journal = stack.journal()
    assert {e["service"] for e in journal} >= {"bedrock-runtime", "anthropic", "openai", "google"}
    leaks = []
    for entry in journal:
        blob = str(entry["headers"]) + entry["body"]
        for name, value in secrets.items():
            if value in blob and entry["service"] not in allowed[name]:
                leaks.append((name, entry["service"], entry["path"]))
        if entry["service"] in ("anthropic", "openai", "google"):
            names = {k.lower() for k, _ in entry["headers"]}
            assert not any(n.startswith(("x-byollm", "x-amz")) for n in names), entry["headers"]
    assert leaks == []

