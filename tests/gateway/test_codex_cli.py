"""The real Codex CLI (npm ``@openai/codex``), non-interactive ``codex exec``, driving byollm's Responses API.

Codex is configured as a user would: a custom model provider whose ``base_url`` is the gateway, ``wire_api =
"responses"``, the byollm token from an environment variable (``env_key``), and, for the Bedrock route, the
user's AWS session forwarded in byollm's ``x-byollm-aws-*`` headers from environment variables
(``env_http_headers``). Each run has a throwaway HOME and CODEX_HOME, analytics off, and every proxy variable
pointing at a closed loopback port (loopback exempt), so Codex reaches nothing but the gateway.

Each case asserts the answer Codex printed and the request-log rows byollm wrote; the tool case makes the
simulated model call Codex's own ``exec_command`` tool, Codex run the command, and the model quote its output.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from support.agent_cli import isolated_env, require_cli, run_cli
from support.stack import Stack, Team

NO_NETWORK = "http://127.0.0.1:9"  # the discard port: nothing listens, so any non-loopback request fails fast
ROUTES = [("gpt-5", "openai", False), ("claude-sonnet-4-6", "bedrock", True), ("claude-sonnet-4-6", "anthropic", False)]


def _config(stack: Stack, model: str, *, delegated: bool) -> str:
    lines = [
        f'model = "{model}"',
        'model_provider = "byollm"',
        'approval_policy = "never"',
        "check_for_update_on_startup = false",
        "[analytics]",
        "enabled = false",
        "[model_providers.byollm]",
        'name = "byollm"',
        f'base_url = "{stack.url}/v1"',
        'env_key = "BYOLLM_TOKEN"',
        'wire_api = "responses"',
        "request_max_retries = 0",
        "stream_max_retries = 0",
    ]
    if delegated:
        lines.append('env_http_headers = { "x-byollm-aws-access-key-id" = "AWS_ACCESS_KEY_ID", '
                     '"x-byollm-aws-secret-access-key" = "AWS_SECRET_ACCESS_KEY", '
                     '"x-byollm-aws-session-token" = "AWS_SESSION_TOKEN" }')
    return "\n".join(lines) + "\n"


def _codex(stack: Stack, tmp_path: Path, team: Team, model: str, prompt: str, *, delegated: bool) -> tuple[str, Any]:
    codex = require_cli("codex")
    home = tmp_path / "home"
    env = isolated_env(home, {"BYOLLM_TOKEN": team.token, "HTTP_PROXY": NO_NETWORK, "HTTPS_PROXY": NO_NETWORK,
                              "ALL_PROXY": NO_NETWORK, "http_proxy": NO_NETWORK, "https_proxy": NO_NETWORK,
                              "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    if delegated:
        creds = stack.session_credentials()
        env.update(AWS_ACCESS_KEY_ID=creds["AccessKeyId"], AWS_SECRET_ACCESS_KEY=creds["SecretAccessKey"],
                   AWS_SESSION_TOKEN=creds["SessionToken"])
    (Path(env["CODEX_HOME"]) / "config.toml").write_text(_config(stack, model, delegated=delegated))
    work = tmp_path / "work"
    work.mkdir()
    last = tmp_path / "last-message.txt"
    result = run_cli([str(codex), "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
                      "--output-last-message", str(last), prompt], env=env, cwd=work, timeout_s=180)
    assert result.returncode == 0, result.describe()
    return (last.read_text() if last.exists() else result.stdout), result


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
    team = stack.new_team()
    answer, result = _codex(stack, tmp_path, team, model, "say hi to byollm", delegated=delegated)
    assert f"[{host}:" in answer and answer.strip().endswith("say hi to byollm"), result.describe()
    rows = _rows(stack, team.uid, 1)
    assert rows and all(r["host"] == host and r["status"] == 200 and r["stream"] for r in rows), rows
    assert rows[-1]["requested_model"] == model and rows[-1]["output_tokens"] > 0
    assert (rows[-1]["credits"] == 0) if host == "bedrock" else (rows[-1]["credits"] > 0)


@pytest.mark.parametrize(("model", "host", "delegated"), ROUTES, ids=[r[1] for r in ROUTES])
def test_codex_runs_a_tool_the_model_called_and_returns_its_output(stack: Stack, tmp_path: Path, model: str,
                                                                   host: str, delegated: bool) -> None:
    team = stack.new_team()
    answer, result = _codex(stack, tmp_path, team, model, 'Use exec_command with cmd="echo codex-was-here"',
                            delegated=delegated)
    assert "exec_command returned:" in answer and "codex-was-here" in answer, result.describe()
    rows = _rows(stack, team.uid, 2)
    assert len(rows) >= 2 and all(r["host"] == host and r["status"] == 200 for r in rows), rows
