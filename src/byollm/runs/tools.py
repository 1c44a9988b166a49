"""The tools a run's model may call: a small registry, and a real ``shell`` tool.

Who may use which tool (decided in ``RunService.start``, not here):

- a named agent's run may use the tools listed in the agent's ``tools`` (set by a team admin); a run
  without a named agent may use only the tools the operator lists in ``BYOLLM_RUN_USER_TOOLS`` (none by
  default); a run that asks for anything else is refused. Tools are off unless enabled that way.

The ``shell`` tool runs ``/bin/sh -c <command>`` with the run's own working directory as its current
directory (one per execution of the run, removed when it ends: a retried run starts with an empty one), a
minimal environment (``PATH``, ``HOME`` = the working directory, ``LANG``: never byollm's environment,
which may hold keys), a wall-clock limit (the whole process group is killed) and an output limit (the rest
is discarded). It is confinement by
convention, not a sandbox: the process runs as byollm's user. Deployments that run untrusted agents should
run workers in a container or VM per worker (documented gap).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = ["ShellTool", "Tool", "ToolContext", "ToolRegistry", "ToolResult", "default_registry"]


@dataclass(frozen=True, slots=True)
class ToolContext:
    workdir: Path
    timeout_s: float
    max_output_bytes: int


@dataclass(frozen=True, slots=True)
class ToolResult:
    output: str
    is_error: bool = False


class Tool(Protocol):
    """One tool: its Anthropic tool spec, and ``run`` (which must respect the context's limits)."""

    @property
    def name(self) -> str: ...

    def spec(self) -> dict[str, Any]: ...

    async def run(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult: ...


class ShellTool:
    """``shell``: run one command in the run's working directory, with time and output limits."""

    @property
    def name(self) -> str:
        return "shell"

    def spec(self) -> dict[str, Any]:
        return {
            "name": "shell",
            "description": "Run a shell command in the run's working directory and return its output.",
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}},
                             "required": ["command"]},
        }

    async def run(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
        command = arguments.get("command")
        if not isinstance(command, str) or not command.strip():
            return ToolResult("the shell tool needs a non-empty string argument `command`", is_error=True)
        context.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(context.workdir), "LANG": "C.UTF-8"}
        process = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", command, cwd=context.workdir, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
        assert process.stdout is not None
        kept = bytearray()
        truncated = False

        async def read() -> None:
            nonlocal truncated
            assert process.stdout is not None
            while chunk := await process.stdout.read(65536):
                room = context.max_output_bytes - len(kept)
                if len(chunk) > room:
                    truncated = True
                kept.extend(chunk[: max(room, 0)])
            await process.wait()

        try:
            async with asyncio.timeout(context.timeout_s):
                await read()
        except TimeoutError:
            _kill_group(process.pid)
            await process.wait()
            return ToolResult(_text(kept) + f"\n[timed out after {context.timeout_s:g} s; killed]", is_error=True)
        except asyncio.CancelledError:
            _kill_group(process.pid)
            with contextlib.suppress(Exception):
                await asyncio.shield(process.wait())
            raise
        text = _text(kept) + ("\n[output truncated]" if truncated else "")
        code = process.returncode
        if code:
            return ToolResult(f"{text}\n[exit status {code}]".lstrip("\n"), is_error=True)
        return ToolResult(text)


def _text(data: bytes | bytearray) -> str:
    return bytes(data).decode("utf-8", errors="replace")


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class ToolRegistry:
    """Tools by name; the one place that knows which tools exist."""

    def __init__(self, tools: Sequence[Tool]) -> None:
        self._tools = {tool.name: tool for tool in tools}

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._tools)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def specs(self, names: Sequence[str]) -> list[dict[str, Any]]:
        return [self._tools[n].spec() for n in names if n in self._tools]


def default_registry() -> ToolRegistry:
    return ToolRegistry([ShellTool()])
