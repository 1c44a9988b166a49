"""Running the real Codex CLI (``codex exec``) against byollm, configured the way a user would configure it.

Codex gets a custom model provider whose ``base_url`` is byollm (the gateway, or ``byollm proxy``),
``wire_api = "responses"`` and the token from an environment variable (``env_key``); headers it must send on
every request (the delegated AWS session, when talking to the gateway directly) come from environment
variables too (``env_http_headers``). Each run has a throwaway HOME and CODEX_HOME (``support.agent_cli``),
analytics and update checks off, and every proxy variable pointed at a closed loopback port with loopback
exempt, so Codex can reach nothing but the byollm it was given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from support.agent_cli import CliResult, isolated_env, require_cli, run_cli

__all__ = ["CodexRun", "codex_config", "run_codex"]

NO_NETWORK = "http://127.0.0.1:9"  # the discard port: nothing listens, so a non-loopback request fails at once
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def codex_config(base_url: str, model: str, header_env: Mapping[str, str] | None = None) -> str:
    """``config.toml``: byollm as the model provider; ``header_env`` maps a header to the variable holding it."""
    lines = [
        f'model = "{model}"', 'model_provider = "byollm"', 'approval_policy = "never"',
        "check_for_update_on_startup = false",
        "[analytics]", "enabled = false",
        "[model_providers.byollm]", 'name = "byollm"', f'base_url = "{base_url}"', 'env_key = "BYOLLM_TOKEN"',
        'wire_api = "responses"', "request_max_retries = 0", "stream_max_retries = 0",
    ]
    if header_env:
        pairs = ", ".join(f'"{header}" = "{variable}"' for header, variable in header_env.items())
        lines.append(f"env_http_headers = {{ {pairs} }}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class CodexRun:
    answer: str  # the last message Codex printed (``--output-last-message``)
    result: CliResult


def run_codex(tmp_path: Path, *, base_url: str, token: str, model: str, prompt: str,
              header_env: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None) -> CodexRun:
    """``codex exec`` once, non-interactively, in a fresh working directory (skips when Codex is absent)."""
    codex = require_cli("codex")
    environment = isolated_env(tmp_path / "home", {
        "BYOLLM_TOKEN": token, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        **dict.fromkeys(_PROXY_VARS, NO_NETWORK), **(env or {}),
    })
    (Path(environment["CODEX_HOME"]) / "config.toml").write_text(codex_config(base_url, model, header_env))
    work = tmp_path / "work"
    work.mkdir()
    last = tmp_path / "last-message.txt"
    # the bypass flag: Codex's own sandbox needs kernel features a CI container may lack; the command the
    # simulated model asks for is a harmless echo in the throwaway working directory
    result = run_cli([str(codex), "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
                      "--output-last-message", str(last), prompt], env=environment, cwd=work, timeout_s=180)
    assert result.returncode == 0, result.describe()
    return CodexRun(last.read_text() if last.exists() else result.stdout, result)
