"""``byollm chat`` driven in a real terminal (tmux send-keys / capture-pane), and ``byollm ask`` for scripts."""

from __future__ import annotations

import secrets
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from byollm.client.config import load_config
from byollm.client.history import history_path
from support.client_env import ClientEnv, make_client_env
from support.stack import Stack, Team

BYOLLM = str(Path(sys.executable).with_name("byollm"))
TMUX = shutil.which("tmux") or "/usr/bin/tmux"


class Tmux:
    def __init__(self, socket: str, env: dict[str, str]) -> None:
        self.socket = socket
        self.env = env

    def run(self, *args: str) -> str:
        done = subprocess.run([TMUX, "-u", "-L", self.socket, *args], env=self.env, capture_output=True,
                              text=True, check=True, timeout=10)
        return done.stdout

    def send(self, *keys: str) -> None:
        self.run("send-keys", "-t", "chat", *keys)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-J", "-S", "-200", "-t", "chat")

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} did not appear; the screen:\n{screen}")


@contextmanager
def _chat(client_env: ClientEnv) -> Iterator[Tmux]:
    """``byollm chat`` in a detached tmux session on a private tmux server, killed afterwards."""
    if not Path(TMUX).exists():
        pytest.skip("tmux is not installed")
    env = client_env.subprocess_env(LC_ALL="C.UTF-8", LANG="C.UTF-8", TERM="xterm-256color")
    session = Tmux(f"byollm-test-{secrets.token_hex(4)}", env)
    command = " ".join(shlex.quote(part) for part in (BYOLLM, "chat", "--model", "claude-sonnet-4-6"))
    session.run("new-session", "-d", "-s", "chat", "-x", "140", "-y", "45", command)
    try:
        yield session
    finally:
        subprocess.run([TMUX, "-L", session.socket, "kill-server"], env=env, capture_output=True, check=False)


@pytest.fixture
def tmux(client_env: ClientEnv) -> Iterator[Tmux]:
    with _chat(client_env) as session:
        yield session


def test_chat_in_a_terminal_streams_the_answer_and_shows_the_route(tmux: Tmux, client_env: ClientEnv) -> None:
    tmux.wait_for("you ▸")
    tmux.send("hello from tmux", "Enter")
    screen = tmux.wait_for("↳ route")
    assert "You said: hello from tmux" in screen
    assert "route bedrock:" in screen
    assert "model claude-sonnet-4-6" in screen
    assert "no fallback" in screen

    tmux.send("/route", "Enter")
    tmux.wait_for("route bedrock:global.anthropic.claude-sonnet-4-6")
    tmux.send("/usage", "Enter")
    screen = tmux.wait_for("This session")
    assert "bedrock:" in screen.split("This session", 1)[1]
    tmux.send("/model gpt-5", "Enter")
    tmux.wait_for("model: gpt-5")
    tmux.send("and now openai", "Enter")
    screen = tmux.wait_for("route openai:")
    assert "You said: and now openai" in screen
    tmux.send("/quit", "Enter")
    deadline = time.monotonic() + 10
    while "you ▸" in tmux.screen().splitlines()[-1:] and time.monotonic() < deadline:
        time.sleep(0.1)

    lines = history_path().read_text().splitlines()
    assert lines[:2] == ["hello from tmux", "/route"]
    assert "/quit" in lines


def test_ask_prints_the_answer_on_stdout_and_the_route_on_stderr(client_env: ClientEnv) -> None:
    done = subprocess.run([BYOLLM, "ask", "what is up", "--model", "claude-sonnet-4-6"],
                          env=client_env.subprocess_env(), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "You said: what is up" in done.stdout
    assert "route" not in done.stdout
    assert "route bedrock:" in done.stderr


def test_ask_with_expired_credentials_says_what_to_run(tmp_path: Path, stack: Stack, team: Team,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_client_env(tmp_path / "expired", stack, team, monkeypatch, profile="sim-login", auto_refresh=False,
                          login_credential_duration_s=3)
    done = subprocess.run([BYOLLM, "ask", "hi", "--model", "claude-sonnet-4-6"],
                          env=env.subprocess_env(), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "local_credentials_expired" in done.stderr
    assert "Run `aws login --profile sim-login`" in done.stderr
    assert "byollm config set auto_refresh true" in done.stderr


def test_chat_offers_auto_refresh_when_the_credentials_expired(tmp_path: Path, stack: Stack, team: Team,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # 7 s credentials, refreshed ones too; the client treats the last 5 s as expired
    env = make_client_env(tmp_path / "offer", stack, team, monkeypatch, profile="sim-login", auto_refresh=False,
                          login_credential_duration_s=7)
    written = time.monotonic()
    with _chat(env) as tmux:
        tmux.wait_for("you ▸")
        time.sleep(max(0.0, written + 2.5 - time.monotonic()))
        tmux.send("hello", "Enter")
        screen = " ".join(tmux.wait_for("Turn on auto-refresh now").split())  # Rich wraps long lines
        assert "local_credentials_expired" in screen
        assert "Run `aws login --profile sim-login` to sign in to AWS again" in screen
        tmux.send("y", "Enter")
        tmux.wait_for("auto-refresh is on")
        assert load_config().auto_refresh is True
        tmux.send("/retry", "Enter")  # botocore now refreshes the session through sign-in
        screen = tmux.wait_for("↳ route")
        assert "You said: hello" in screen
        assert "route bedrock:" in screen


def test_ask_names_each_fallbacks_reason_its_fix_and_its_credits(stack: Stack, team: Team,
                                                                   client_env: ClientEnv) -> None:
    """Issue 16 items 2 and 3: the line after the answer says why it fell back and what it cost."""
    stack.fault(service="bedrock", error="AccessDeniedException", count=1)
    try:
        done = subprocess.run([BYOLLM, "ask", "fall back please", "--model", "claude-sonnet-4-6"],
                              env=client_env.subprocess_env(), capture_output=True, text=True, timeout=60,
                              check=False)
    finally:
        stack.clear_faults()
    assert done.returncode == 0, done.stderr
    assert "route anthropic:claude-sonnet-4-6" in done.stderr
    assert "after 1 fallback(s) (bedrock:" in done.stderr and ": insufficient_permissions)" in done.stderr
    credits = done.stderr.split("billed to AI credits: ", 1)[1].split(" credits", 1)[0]
    assert float(credits) > 0
    assert "Fix: Allow bedrock:InvokeModel" in done.stderr  # the remediation, not only the code


def test_ask_prints_every_failed_routes_class_and_fix(stack: Stack, team: Team, client_env: ClientEnv) -> None:
    """Every route fails (quota on Bedrock, a refused key on the direct fallback): each with its fix."""
    stack.fault(service="bedrock", error="ThrottlingException", count=1)
    stack.fault(service="anthropic", error="authentication_error", count=1)
    try:
        done = subprocess.run([BYOLLM, "ask", "fail please", "--model", "claude-sonnet-4-6"],
                              env=client_env.subprocess_env(), capture_output=True, text=True, timeout=60,
                              check=False)
    finally:
        stack.clear_faults()
    assert done.returncode == 1
    text = " ".join(done.stderr.split())
    assert "no_fallback_available" in text
    assert ": quota_exceeded. Fix: Check the Bedrock service quotas" in text
    assert "anthropic:claude-sonnet-4-6: provider_key_rejected. Fix: The direct provider refused the API key" in text


def test_ask_in_a_terminal_offers_auto_refresh_at_expiry(tmp_path: Path, stack: Stack, team: Team,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16 item 7: `ask` prompts like `chat` when a terminal is attached (scripts are not asked)."""
    if not Path(TMUX).exists():
        pytest.skip("tmux is not installed")
    env = make_client_env(tmp_path / "ask-offer", stack, team, monkeypatch, profile="sim-login", auto_refresh=False,
                          login_credential_duration_s=3)
    assert load_config().auto_refresh is False  # off until the user turns it on
    shell_env = env.subprocess_env(LC_ALL="C.UTF-8", LANG="C.UTF-8", TERM="xterm-256color")
    session = Tmux(f"byollm-test-{secrets.token_hex(4)}", shell_env)
    command = " ".join(shlex.quote(p) for p in (BYOLLM, "ask", "hi", "--model", "claude-sonnet-4-6"))
    session.run("new-session", "-d", "-s", "chat", "-x", "160", "-y", "40", command + "; sleep 30")
    try:
        screen = " ".join(session.wait_for("Turn on auto-refresh now").split())
        assert "local_credentials_expired" in screen
        session.send("y", "Enter")
        session.wait_for("auto-refresh is on")
        assert load_config().auto_refresh is True
    finally:
        subprocess.run([TMUX, "-L", session.socket, "kill-server"], env=shell_env, capture_output=True, check=False)
