"""``byollm exec -- <tool> [args]``: run an agent tool with byollm in front of it, for as long as it runs.

Why: pointing Claude Code or Codex at byollm by hand takes a running ``byollm proxy``, four exported variables
and, for Claude Code, model names the team actually enables (Claude Code expands ``opus``/``sonnet``/
``haiku`` to names of its own). This does all of it for one run of the tool:

1. starts the loopback proxy (``client.proxy``, the same app ``byollm proxy`` serves, with its per-run key
   and path allow-list) on a free 127.0.0.1 port, in this process;
2. asks the gateway, through the proxy, which models the team can use, and sets Claude Code's
   ``ANTHROPIC_DEFAULT_OPUS_MODEL``/``_SONNET_``/``_HAIKU_`` to the newest enabled model of each family and
   ``ANTHROPIC_MODEL`` to the best of them (opus, else sonnet, else haiku). A variable the user already
   exported is left as they set it;
3. sets ``ANTHROPIC_BASE_URL``/``ANTHROPIC_AUTH_TOKEN`` and ``OPENAI_BASE_URL``/``OPENAI_API_KEY`` to the proxy
   and its key (never the byollm token, which stays in this process), and removes what would route the tool
   around the proxy (``ANTHROPIC_API_KEY``, ``CLAUDE_CODE_USE_BEDROCK``/``_VERTEX``/``_FOUNDRY``); Codex, which
   reads none of those, gets the proxy as its model provider in ``-c`` overrides (``tool_arguments``);
4. runs the tool in the foreground, forwards SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to it (SIGINT from
   the terminal already reaches it: it shares the terminal's foreground process group, which an interactive
   tool needs), and returns its exit status (128 + the signal number when a signal ended it, as shells do);
5. stops the proxy when the tool exits.

The proxy attaches the user's AWS session per request (delegated credentials for the team's Bedrock) exactly
as ``byollm proxy`` does, so the tool never sees an AWS credential either.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

import httpx

from byollm.client.context import ClientContext
from byollm.policy.names import claude_family, model_version

__all__ = [
    "CLAUDE_MODEL_VARIABLES",
    "ExecError",
    "ToolEnvironment",
    "claude_model_env",
    "run_tool",
    "tool_arguments",
    "tool_env",
]

CLAUDE_MODEL_VARIABLES: Mapping[str, str] = {
    "opus": "ANTHROPIC_DEFAULT_OPUS_MODEL",
    "sonnet": "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "haiku": "ANTHROPIC_DEFAULT_HAIKU_MODEL",
}
_DEFAULT_ORDER = ("opus", "sonnet", "haiku")
# Variables that would send the tool somewhere other than the proxy, or with another credential.
_REMOVED = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_FOUNDRY",
            "OPENAI_ORG_ID", "OPENAI_PROJECT_ID")
_FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126


class ExecError(Exception):
    """The tool could not be started; ``exit_code`` follows the shell's convention (127 not found, 126 not
    executable)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def claude_model_env(model_ids: Iterable[str]) -> dict[str, str]:
    """Claude Code's model variables for the models a team can use: the newest of each Claude family, and the
    best family present as the default model."""
    best: dict[str, str] = {}
    for model_id in model_ids:
        family = claude_family(model_id)
        if family is None:
            continue
        if family not in best or model_version(model_id) > model_version(best[family]):
            best[family] = model_id
    env = {CLAUDE_MODEL_VARIABLES[family]: model for family, model in best.items()}
    default = next((best[f] for f in _DEFAULT_ORDER if f in best), None)
    if default is not None:
        env["ANTHROPIC_MODEL"] = default
    return env


@dataclass(frozen=True, slots=True)
class ToolEnvironment:
    env: dict[str, str]
    models: dict[str, str]  # the model variables that were set (for the user's terminal; no secrets)


def tool_env(base: Mapping[str, str], proxy_url: str, proxy_key: str, model_ids: Iterable[str]) -> ToolEnvironment:
    """The tool's environment: ``base`` pointed at the proxy, with the team's Claude model variables where the
    user has not set their own."""
    env = {k: v for k, v in base.items() if k not in _REMOVED}
    env.update({
        "ANTHROPIC_BASE_URL": proxy_url,
        "ANTHROPIC_AUTH_TOKEN": proxy_key,
        "OPENAI_BASE_URL": proxy_url + "/v1",
        "OPENAI_API_KEY": proxy_key,
    })
    chosen = {k: v for k, v in claude_model_env(model_ids).items() if not base.get(k)}
    env.update(chosen)
    return ToolEnvironment(env, chosen)


def tool_arguments(program: str, args: Sequence[str], proxy_url: str) -> list[str]:
    """The tool's arguments, with what points it at the proxy where its environment cannot.

    Codex (npm ``@openai/codex``) reads neither ``OPENAI_BASE_URL`` nor ``OPENAI_API_KEY`` for its built-in
    OpenAI provider, and that provider would first try OpenAI's WebSocket transport. So Codex gets byollm as
    a custom model provider through ``-c`` overrides placed before the user's own arguments (a ``-c`` the user
    passes still wins): the proxy's ``/v1`` as ``base_url``, the Responses wire API, and the proxy's key from
    ``OPENAI_API_KEY``. Other tools' arguments are unchanged.
    """
    if os.path.basename(program) not in ("codex", "codex.js", "codex.cmd"):
        return list(args)
    provider = {"name": "byollm", "base_url": f"{proxy_url}/v1", "env_key": "OPENAI_API_KEY",
                "wire_api": "responses"}
    overrides = ['model_provider="byollm"', *(f'model_providers.byollm.{key}="{value}"'
                                               for key, value in provider.items())]
    return [*(part for override in overrides for part in ("-c", override)), *args]


def team_model_ids(proxy_url: str, proxy_key: str) -> list[str]:
    """The model ids the team can use, asked through the proxy (so the user's AWS session counts); aliases,
    whose names are patterns, and Auto are left out."""
    response = httpx.get(proxy_url + "/v1/models", headers={"authorization": f"Bearer {proxy_key}"}, timeout=30)
    response.raise_for_status()
    ids = []
    for entry in response.json().get("data") or []:
        extra = entry.get("byollm") or {}
        model_id = str(entry.get("id", ""))
        if model_id and model_id != "auto" and not extra.get("alias_of"):
            ids.append(model_id)
    return ids


def _resolve(argv: Sequence[str], path: str | None) -> str:
    if not argv:
        raise ExecError("name the tool to run: byollm exec -- <tool> [args]", 2)
    program = argv[0]
    found = program if os.sep in program else shutil.which(program, path=path)
    if found is None or not os.path.exists(found):
        raise ExecError(f"{program}: command not found", EXIT_NOT_FOUND)
    if not os.access(found, os.X_OK) or os.path.isdir(found):
        raise ExecError(f"{program}: not executable", EXIT_NOT_EXECUTABLE)
    return found


def _run_forwarding_signals(argv: Sequence[str], env: Mapping[str, str]) -> int:
    # the program is the one the user named on their own command line; the terminal and stdio are shared
    child = subprocess.Popen(list(argv), env=dict(env))  # noqa: S603

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
    for sig in _FORWARDED:
        previous[sig] = signal.signal(sig, forward)
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal sends it to the tool
    try:
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    return 128 - code if code < 0 else code


def run_tool(ctx: ClientContext, argv: Sequence[str], *, say: Callable[[str], None],
             environ: Mapping[str, str] | None = None) -> int:
    """Run ``argv`` with byollm's proxy in front of it; return the tool's exit status."""
    from byollm.api.serving import ServerThread
    from byollm.client.config import load_config
    from byollm.client.proxy import ProxyState, build_proxy_app, new_proxy_key

    base = dict(os.environ if environ is None else environ)
    program = _resolve(argv, base.get("PATH"))
    key = new_proxy_key()
    assert ctx.config.gateway_url is not None
    state = ProxyState(ctx.config.gateway_url, ctx.attacher, key, say,
                       auto_refresh_setting=lambda: load_config().auto_refresh)
    with ServerThread(build_proxy_app(state)) as proxy:
        try:
            models = team_model_ids(proxy.url, key)
        except (httpx.HTTPError, ValueError) as exc:
            say(f"could not list the team's models ({type(exc).__name__}); Claude model variables not set")
            models = []
        prepared = tool_env(base, proxy.url, key, models)
        say(f"byollm proxy on {proxy.url} for {os.path.basename(program)}"
            + "".join(f"; {name}={value}" for name, value in sorted(prepared.models.items())))
        return _run_forwarding_signals([program, *tool_arguments(program, argv[1:], proxy.url)], prepared.env)
