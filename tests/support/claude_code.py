"""Running the real Claude Code CLI (``claude -p``) against byollm the way a user would, and nothing more.

Each run gets a throwaway HOME and CLAUDE_CONFIG_DIR (``support.agent_cli``), telemetry, error reporting,
auto-update and non-essential traffic off, every proxy variable pointed at a closed loopback port with
loopback exempt (so Claude Code can reach nothing but the byollm it was given), and no model pinned: the
test passes only the variables the README tells a user to set, or runs ``byollm exec``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.agent_cli import CliResult, isolated_env, require_cli, run_cli

__all__ = ["BYOLLM", "ClaudeRun", "claude_env", "run_claude"]

BYOLLM = str(Path(sys.executable).with_name("byollm"))
NO_NETWORK = "http://127.0.0.1:9"  # the discard port: nothing listens, so a non-loopback request fails at once
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@dataclass(frozen=True)
class ClaudeRun:
    result: CliResult

    @property
    def events(self) -> list[dict[str, Any]]:
        """``--output-format stream-json`` lines, parsed."""
        return [json.loads(line) for line in self.result.stdout.splitlines() if line.startswith("{")]

    @property
    def final(self) -> dict[str, Any]:
        """The ``result`` event (``--output-format json`` or the last stream-json line)."""
        found = [e for e in self.events if e.get("type") == "result"]
        assert found, self.result.describe()
        return found[-1]


def claude_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = isolated_env(home, {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                              **dict.fromkeys(_PROXY_VARS, NO_NETWORK)})
    env.update(extra or {})
    return env


def run_claude(tmp_path: Path, args: Sequence[str], *, env: Mapping[str, str], through_exec: bool = False,
               timeout_s: float = 180.0) -> ClaudeRun:
    """``claude -p ...`` once in a fresh working directory; with ``through_exec``, as ``byollm exec -- claude``.

    Skips when Claude Code is not installed. ``--output-format json`` is added unless the caller chose one.
    """
    claude = require_cli("claude")
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    argv = [str(claude), "-p", *args]
    if "--output-format" not in args:
        argv += ["--output-format", "json"]
    if through_exec:
        argv = [BYOLLM, "exec", "--", *argv]
    return ClaudeRun(run_cli(argv, env=env, cwd=work, timeout_s=timeout_s))
