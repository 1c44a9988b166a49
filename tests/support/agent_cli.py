"""Finding and running the real agent CLIs (Claude Code, Codex) in tests.

The CLIs are npm packages CI installs under ``<repo>/.ci/agent-clis`` (``.ci/run`` does it); a developer
may point ``BYOLLM_AGENT_CLI_DIR`` at any directory holding the executables (or a ``node_modules/.bin``
under it). A test that needs one and finds none is skipped saying where it looked, never silently passed.

Each run gets a throwaway HOME and config directory and has the CLIs' telemetry, update checks and other
non-essential traffic switched off, so nothing outside this machine is contacted and no developer state
(logins, settings, history) leaks into or out of a test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV_DIR = "BYOLLM_AGENT_CLI_DIR"

# Environment a CLI must never inherit from the developer's shell: credentials, endpoints and model pins
# would make a test pass for reasons that are not byollm's.
_INHERITED_NEVER = (
    "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL",
    "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL", "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    "ANTHROPIC_SMALL_FAST_MODEL", "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CONFIG_DIR",
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "CODEX_HOME", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
    "BYOLLM_TOKEN", "BYOLLM_URL", "BYOLLM_TEAM",
)

# Telemetry, error reporting, auto-update and other background traffic off (Claude Code's and Codex's
# documented switches); a test must only talk to the servers it started.
QUIET_ENV: Mapping[str, str] = {
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_BUG_COMMAND": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
    "NO_UPDATE_NOTIFIER": "1",
    "CI": "1",
}


def search_dirs() -> list[Path]:
    """Where a CLI is looked for, in order."""
    dirs: list[Path] = []
    configured = os.environ.get(ENV_DIR)
    if configured:
        base = Path(configured)
        dirs += [base, base / "node_modules" / ".bin"]
    dirs.append(REPO / ".ci" / "agent-clis" / "node_modules" / ".bin")
    return dirs


def find_cli(name: str) -> Path | None:
    for directory in search_dirs():
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def require_cli(name: str) -> Path:
    """The CLI's path, or skip the test naming where it looked and how to install it."""
    found = find_cli(name)
    if found is None:
        looked = ", ".join(str(d) for d in search_dirs())
        pytest.skip(f"agent CLI {name!r} not installed (looked in {looked}); run .ci/run or set {ENV_DIR}")
    if shutil.which("node") is None:
        pytest.skip(f"agent CLI {name!r} found at {found} but no `node` on PATH to run it")
    return found


@dataclass(frozen=True)
class CliResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (f"{' '.join(self.argv)} exited {self.returncode}\n--- stdout ---\n{self.stdout[-4000:]}"
                f"\n--- stderr ---\n{self.stderr[-4000:]}")


def isolated_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment with a throwaway HOME and config dirs, quiet, and nothing credential-like inherited."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".claude").mkdir(exist_ok=True)
    (home / ".codex").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED_NEVER and not k.startswith("XDG_")}
    env.update(QUIET_ENV)
    env.update({
        "HOME": str(home),
        "USERPROFILE": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "CODEX_HOME": str(home / ".codex"),
    })
    env.update(extra or {})
    return env


def run_cli(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout_s: float = 120.0,
            stdin: str = "") -> CliResult:
    """Run a CLI to completion (killing it after ``timeout_s``) and capture its output."""
    try:
        done = subprocess.run(list(argv), env=dict(env), cwd=cwd, input=stdin, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return CliResult(list(argv), -9, out, err + f"\n(timed out after {timeout_s:.0f}s)")
    return CliResult(list(argv), done.returncode, done.stdout, done.stderr)
