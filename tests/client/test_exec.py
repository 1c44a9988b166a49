"""``byollm exec -- <tool>``: a real ``byollm`` process runs a real child process through the proxy.

The child is a small Python program using the official Anthropic SDK exactly as an agent tool would (only the
environment ``byollm exec`` gave it); it reports what it saw, so the tests check the variables, that its
request went through the proxy to the team's Bedrock with the user's AWS session, the exit status, signal
forwarding, and that the proxy is gone once the tool exits.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from byollm.client.exec_tool import claude_model_env, tool_env
from support.client_env import ClientEnv, make_client_env
from support.stack import Stack

BYOLLM = str(Path(sys.executable).with_name("byollm"))

TOOL = r'''
import json, os, signal, sys, time
import anthropic
out = sys.argv[1]
seen = {k: v for k, v in os.environ.items() if k.startswith(("ANTHROPIC_", "OPENAI_", "CLAUDE_CODE_"))}
if "--wait" in sys.argv:
    def done(signum, frame):
        json.dump({**seen, "signal": signum}, open(out, "w"))
        sys.exit(42)
    signal.signal(signal.SIGTERM, done)
    open(out + ".ready", "w").close()
    time.sleep(60)
client = anthropic.Anthropic(max_retries=0)  # ANTHROPIC_BASE_URL and ANTHROPIC_AUTH_TOKEN from the environment
raw = client.messages.with_raw_response.create(model=os.environ["ANTHROPIC_MODEL"], max_tokens=30,
                                               messages=[{"role": "user", "content": "hi from a tool"}])
seen["route"] = raw.headers["x-byollm-route"]
seen["served"] = raw.headers["x-byollm-model"]
seen["text"] = raw.parse().content[0].text
json.dump(seen, open(out, "w"))
sys.exit(int(sys.argv[2]))
'''


@pytest.fixture
def env(tmp_path: Path, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> ClientEnv:
    team = stack.new_team()
    return make_client_env(tmp_path, stack, team, monkeypatch)


def _tool(tmp_path: Path) -> Path:
    path = tmp_path / "tool.py"
    path.write_text(TOOL)
    return path


def test_the_tool_runs_through_the_proxy_with_the_teams_models_and_its_exit_status(
        tmp_path: Path, env: ClientEnv) -> None:
    out = tmp_path / "seen.json"
    child_env = env.subprocess_env(ANTHROPIC_API_KEY="sk-ant-should-be-removed", CLAUDE_CODE_USE_BEDROCK="1")
    done = subprocess.run([BYOLLM, "exec", "--", sys.executable, str(_tool(tmp_path)), str(out), "7"],
                          env=child_env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 7, done.stderr
    seen = json.loads(out.read_text())
    # the newest opus the team can use is Claude Opus 5, which only the team's Bedrock lists (catalog refresh)
    assert seen["ANTHROPIC_DEFAULT_OPUS_MODEL"] == "claude-opus-5"
    assert seen["ANTHROPIC_DEFAULT_SONNET_MODEL"] == "claude-sonnet-4-6"
    assert seen["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "claude-haiku-4-5"
    assert seen["ANTHROPIC_MODEL"] == "claude-opus-5"
    assert seen["OPENAI_BASE_URL"] == seen["ANTHROPIC_BASE_URL"] + "/v1"
    assert seen["ANTHROPIC_AUTH_TOKEN"] == seen["OPENAI_API_KEY"]
    assert seen["ANTHROPIC_AUTH_TOKEN"].startswith("byollm-proxy-")  # the proxy's key, never the byollm token
    assert "ANTHROPIC_API_KEY" not in seen and "CLAUDE_CODE_USE_BEDROCK" not in seen
    assert urlsplit(seen["ANTHROPIC_BASE_URL"]).hostname == "127.0.0.1"
    # the proxy attached the user's AWS session from the AWS profile: the team's Bedrock served it
    assert seen["route"] == "bedrock:global.anthropic.claude-opus-5-v1:0" and seen["served"] == "claude-opus-5"
    assert "hi from a tool" in seen["text"]
    # the proxy stopped with the tool
    port = urlsplit(seen["ANTHROPIC_BASE_URL"]).port
    assert port is not None
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_the_users_own_model_pins_are_kept(tmp_path: Path, env: ClientEnv) -> None:
    out = tmp_path / "seen.json"
    done = subprocess.run([BYOLLM, "exec", sys.executable, str(_tool(tmp_path)), str(out), "0"],  # no "--"
                          env=env.subprocess_env(ANTHROPIC_MODEL="claude-haiku-4-5"),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(out.read_text())
    assert seen["ANTHROPIC_MODEL"] == "claude-haiku-4-5" and seen["served"] == "claude-haiku-4-5"
    assert seen["ANTHROPIC_DEFAULT_OPUS_MODEL"] == "claude-opus-5"


def test_signals_reach_the_tool_and_its_status_comes_back(tmp_path: Path, env: ClientEnv) -> None:
    out = tmp_path / "seen.json"
    proc = subprocess.Popen([BYOLLM, "exec", "--", sys.executable, str(_tool(tmp_path)), str(out), "0", "--wait"],
                            env=env.subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not Path(str(out) + ".ready").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 42
    finally:
        if proc.poll() is None:
            proc.kill()
    assert json.loads(out.read_text())["signal"] == signal.SIGTERM


def test_a_missing_tool_is_127_as_in_a_shell(env: ClientEnv) -> None:
    done = subprocess.run([BYOLLM, "exec", "--", "no-such-tool-anywhere"], env=env.subprocess_env(),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 127
    assert "no-such-tool-anywhere: command not found" in done.stderr


def test_claude_model_variables_pick_the_newest_of_each_family() -> None:
    ids = ["claude-opus-4-1", "claude-opus-4-7", "claude-sonnet-4-6", "gpt-5", "claude-opus-5"]
    assert claude_model_env(ids) == {"ANTHROPIC_DEFAULT_OPUS_MODEL": "claude-opus-5",
                                     "ANTHROPIC_DEFAULT_SONNET_MODEL": "claude-sonnet-4-6",
                                     "ANTHROPIC_MODEL": "claude-opus-5"}
    assert claude_model_env(["claude-haiku-4-5"])["ANTHROPIC_MODEL"] == "claude-haiku-4-5"
    assert claude_model_env(["gpt-5"]) == {}
    prepared = tool_env({"PATH": os.environ.get("PATH", ""), "ANTHROPIC_DEFAULT_OPUS_MODEL": "mine"},
                        "http://127.0.0.1:1", "byollm-proxy-k", ids)
    assert prepared.env["ANTHROPIC_DEFAULT_OPUS_MODEL"] == "mine"
    assert "ANTHROPIC_DEFAULT_OPUS_MODEL" not in prepared.models
