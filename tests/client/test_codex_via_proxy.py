"""The real Codex CLI through ``byollm proxy``: Codex holds only the proxy's local key, and the proxy attaches
the user's byollm token and AWS session, so a Claude model on Bedrock serves Codex with no AWS setup in Codex."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from byollm.client.exec_tool import tool_arguments
from support.agent_cli import QUIET_ENV, require_cli
from support.client_env import make_client_env, running_proxy
from support.codex import NO_NETWORK, run_codex
from support.stack import DEFAULT_MODELS, Stack

BYOLLM = str(Path(sys.executable).with_name("byollm"))


def _rows(stack: Stack, team_uid: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    rows: list[dict[str, Any]] = stack.request_log(team_uid)
    while len(rows) < count and time.monotonic() < deadline:  # the request log is written off the hot path
        time.sleep(0.1)
        rows = stack.request_log(team_uid)
    return rows


@pytest.mark.parametrize(("model", "host"), [("claude-sonnet-4-6", "bedrock"), ("gpt-5", "openai")])
def test_codex_exec_through_the_proxy(tmp_path: Path, stack: Stack, monkeypatch: pytest.MonkeyPatch, model: str,
                                      host: str) -> None:
    team = stack.new_team(DEFAULT_MODELS)
    make_client_env(tmp_path / "client", stack, team, monkeypatch)
    with running_proxy() as proxy:
        run = run_codex(tmp_path / "codex", base_url=f"{proxy.url}/v1", token=proxy.key, model=model,
                        prompt='Use exec_command with cmd="echo via-the-proxy"')
    assert f"[{host}:" in run.answer and "via-the-proxy" in run.answer, run.result.describe()
    rows = _rows(stack, team.uid, 2)
    assert len(rows) >= 2 and {r["host"] for r in rows} == {host}, rows
    if host == "bedrock":
        assert {r["credential"] for r in rows} == {"delegated_session"}


def test_byollm_exec_runs_codex_with_no_codex_setup(tmp_path: Path, stack: Stack,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``byollm exec -- codex exec ...`` with a Codex that has no provider configured: exec makes the proxy
    Codex's model provider, the proxy adds the user's byollm token and AWS session, Bedrock serves."""
    codex = require_cli("codex")
    team = stack.new_team(DEFAULT_MODELS)
    env = make_client_env(tmp_path / "client", stack, team, monkeypatch)
    codex_home = tmp_path / "codex-home"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text("check_for_update_on_startup = false\n[analytics]\nenabled = false\n")
    work = tmp_path / "work"
    work.mkdir()
    child = env.subprocess_env(CODEX_HOME=str(codex_home), NO_PROXY="127.0.0.1,localhost",
                               no_proxy="127.0.0.1,localhost", **QUIET_ENV,
                               **dict.fromkeys(("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"), NO_NETWORK))
    done = subprocess.run([BYOLLM, "exec", "--", str(codex), "exec", "--skip-git-repo-check",
                           "--dangerously-bypass-approvals-and-sandbox", "-m", "claude-sonnet-4-6",
                           'Use exec_command with cmd="echo via-byollm-exec"'],
                          env=child, cwd=work, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[bedrock:" in done.stdout and "exec_command returned:" in done.stdout, done.stdout[-3000:]
    assert "via-byollm-exec" in done.stdout
    rows = _rows(stack, team.uid, 2)
    assert len(rows) >= 2 and {(r["host"], r["credential"]) for r in rows} == {("bedrock", "delegated_session")}


def test_exec_gives_only_codex_the_provider_overrides() -> None:
    assert tool_arguments("/usr/bin/python3", ["-c", "print(1)"], "http://127.0.0.1:5") == ["-c", "print(1)"]
    args = tool_arguments("/x/node_modules/.bin/codex", ["exec", "hi"], "http://127.0.0.1:5")
    assert args[-2:] == ["exec", "hi"]
    overrides = dict(part.split("=", 1) for part in args[1:-2:2])
    assert overrides == {"model_provider": '"byollm"', "model_providers.byollm.name": '"byollm"',
                         "model_providers.byollm.base_url": '"http://127.0.0.1:5/v1"',
                         "model_providers.byollm.env_key": '"OPENAI_API_KEY"',
                         "model_providers.byollm.wire_api": '"responses"'}
