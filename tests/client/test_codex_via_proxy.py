"""The real Codex CLI through ``byollm proxy``: Codex holds only the proxy's local key, and the proxy attaches
the user's byollm token and AWS session, so a Claude model on Bedrock serves Codex with no AWS setup in Codex."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from support.client_env import make_client_env, running_proxy
from support.codex import run_codex
from support.stack import DEFAULT_MODELS, Stack


@pytest.mark.parametrize(("model", "host"), [("claude-sonnet-4-6", "bedrock"), ("gpt-5", "openai")])
def test_codex_exec_through_the_proxy(tmp_path: Path, stack: Stack, monkeypatch: pytest.MonkeyPatch, model: str,
                                      host: str) -> None:
    team = stack.new_team(DEFAULT_MODELS)
    make_client_env(tmp_path / "client", stack, team, monkeypatch)
    with running_proxy() as proxy:
        run = run_codex(tmp_path / "codex", base_url=f"{proxy.url}/v1", token=proxy.key, model=model,
                        prompt='Use exec_command with cmd="echo via-the-proxy"')
    assert f"[{host}:" in run.answer and "via-the-proxy" in run.answer, run.result.describe()
    deadline = time.monotonic() + 5
    rows: list[dict[str, Any]] = stack.request_log(team.uid)
    while len(rows) < 2 and time.monotonic() < deadline:  # the request log is written off the hot path
        time.sleep(0.1)
        rows = stack.request_log(team.uid)
    assert len(rows) >= 2 and {r["host"] for r in rows} == {host}, rows
    if host == "bedrock":
        assert {r["credential"] for r in rows} == {"delegated_session"}
