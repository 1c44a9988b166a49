"""The real Codex CLI (npm ``@openai/codex``), non-interactive ``codex exec``, straight at byollm's gateway.

Configured as a user would (``support/codex.py``): byollm as a custom model provider with ``wire_api =
"responses"`` and the byollm token from ``env_key``; on the Bedrock route the user's AWS session goes in
byollm's ``x-byollm-aws-*`` headers from environment variables (``env_http_headers``). Each case asserts the
answer Codex printed and the request-log rows byollm wrote; the tool case makes the simulated model call
Codex's own ``exec_command`` tool, Codex run the command, and the model quote its output back.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from byollm.credentials.delegated import HEADER_ACCESS_KEY_ID, HEADER_SECRET_ACCESS_KEY, HEADER_SESSION_TOKEN
from support.codex import CodexRun, run_codex
from support.stack import DIRECT_MODELS, Stack, Team

ROUTES = [("gpt-5", "openai", False), ("claude-sonnet-4-6", "bedrock", True), ("claude-sonnet-4-6", "anthropic", False)]
AWS_HEADERS = {HEADER_ACCESS_KEY_ID: "AWS_ACCESS_KEY_ID", HEADER_SECRET_ACCESS_KEY: "AWS_SECRET_ACCESS_KEY",
               HEADER_SESSION_TOKEN: "AWS_SESSION_TOKEN"}


def _codex(stack: Stack, tmp_path: Path, team: Team, model: str, prompt: str, *, delegated: bool) -> CodexRun:
    env: dict[str, str] = {}
    if delegated:
        creds = stack.session_credentials()
        env = {"AWS_ACCESS_KEY_ID": creds["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
               "AWS_SESSION_TOKEN": creds["SessionToken"]}
    return run_codex(tmp_path, base_url=f"{stack.url}/v1", token=team.token, model=model, prompt=prompt,
                     header_env=AWS_HEADERS if delegated else None, env=env)


def _rows(stack: Stack, team_uid: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        found = stack.request_log(team_uid)
        if len(found) >= count or time.monotonic() > deadline:
            return sorted(found, key=lambda r: r["started_at"])
        time.sleep(0.1)


@pytest.mark.parametrize(("model", "host", "delegated"), ROUTES, ids=[r[1] for r in ROUTES])
def test_codex_exec_answers_through_byollm(stack: Stack, tmp_path: Path, model: str, host: str,
                                           delegated: bool) -> None:
    team = stack.new_team(None if delegated else DIRECT_MODELS)  # no AWS session: no Bedrock route
    run = _codex(stack, tmp_path, team, model, "say hi to byollm", delegated=delegated)
    assert f"[{host}:" in run.answer and run.answer.strip().endswith("say hi to byollm"), run.result.describe()
    rows = _rows(stack, team.uid, 1)
    assert rows and all(r["host"] == host and r["status"] == 200 and r["stream"] for r in rows), rows
    assert rows[-1]["requested_model"] == model and rows[-1]["output_tokens"] > 0
    assert (rows[-1]["credits"] == 0) if host == "bedrock" else (rows[-1]["credits"] > 0)


@pytest.mark.parametrize(("model", "host", "delegated"), ROUTES, ids=[r[1] for r in ROUTES])
def test_codex_runs_a_tool_the_model_called_and_returns_its_output(stack: Stack, tmp_path: Path, model: str,
                                                                   host: str, delegated: bool) -> None:
    team = stack.new_team(None if delegated else DIRECT_MODELS)  # no AWS session: no Bedrock route
    run = _codex(stack, tmp_path, team, model, 'Use exec_command with cmd="echo codex-was-here"', delegated=delegated)
    assert "exec_command returned:" in run.answer and "codex-was-here" in run.answer, run.result.describe()
    rows = _rows(stack, team.uid, 2)
    assert len(rows) >= 2 and all(r["host"] == host and r["status"] == 200 for r in rows), rows


def test_a_failure_mid_stream_reaches_the_codex_user_with_its_remediation(stack: Stack, tmp_path: Path) -> None:
    """Codex ignores the ``error`` event; the ``response.failed`` after it is what puts byollm's reason and
    remediation on the user's terminal instead of "stream closed before response.completed"."""
    team = stack.new_team({"claude-sonnet-4-6": {"direct": True}})
    stack.fault(service="anthropic", error="overloaded_error", after_events=4, count=5)
    with pytest.raises(AssertionError) as failed:
        _codex(stack, tmp_path, team, "claude-sonnet-4-6", "Tell me a long story about the sea", delegated=False)
    assert "(upstream_unavailable). The model provider did not answer in time" in str(failed.value)
    assert "stream closed before response.completed" not in str(failed.value)
