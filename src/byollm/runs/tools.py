"""The tools a run's model may call: a small registry, and a real ``shell`` tool.

Which tools exist on this deployment is the operator's choice: ``BYOLLM_RUN_TOOLS`` lists them, and a tool
not listed is off everywhere (the registry knows it, but ``get`` does not hand it out). Who may use an
enabled tool is decided in ``RunService.start`` and ``ControlService`` (not here):

- a team admin may give a named agent only enabled tools (``tool_not_enabled`` otherwise); a named agent's
  run may use the agent's tools that are still enabled; a run without a named agent may use only the tools
  the operator lists in ``BYOLLM_RUN_USER_TOOLS`` (none by default). A tool disabled after a run was queued
  is not offered to its model, and a call to it gets "not enabled".

The ``shell`` tool runs ``/bin/sh -c <command>`` inside the sandbox (``runs.sandbox``: namespaces, a
read-only system, the run's working directory as the only writable place, no network unless egress is
enabled, rlimits), with a wall-clock limit (the sandbox is killed) and an output limit (the rest is
discarded), and a quota on the working directory (``BYOLLM_RUN_WORKDIR_BYTES``: the sandbox's per-file
limit alone lets many files fill the disk the database may share; usage is measured four times a second
while the command runs and the sandbox is killed past the quota). The working directory is one per
execution of the run, removed when it ends: a retried run
starts with an empty one. When the sandbox cannot be set up the tool raises ``sandbox_unavailable`` and
nothing runs.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from byollm.runs.sandbox import Sandbox, kill_group

__all__ = ["ShellTool", "Tool", "ToolContext", "ToolRegistry", "ToolResult", "default_registry", "workdir_usage"]

_QUOTA_POLL_S = 0.25
_MIN_ENTRY_BYTES = 4096  # an empty file still costs an inode and a block: many empty files count too


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
    """``shell``: run one command in the run's working directory, sandboxed, with time and output limits."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

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
        if "\x00" in command:
            return ToolResult("the command holds a NUL character, which no program can receive", is_error=True)
        quota = self._sandbox.config.limits.workdir_bytes
        if await asyncio.to_thread(workdir_usage, context.workdir, quota) > quota:
            return ToolResult(_over_quota(quota), is_error=True)
        kept = bytearray()
        truncated = False
        over = False
        async with self._sandbox.launch(["/bin/sh", "-c", command], context.workdir) as process:
            assert process.stdout is not None

            async def read() -> None:
                nonlocal truncated
                assert process.stdout is not None
                while chunk := await process.stdout.read(65536):
                    room = context.max_output_bytes - len(kept)
                    if len(chunk) > room:
                        truncated = True
                    kept.extend(chunk[: max(room, 0)])
                await process.wait()

            async def watch() -> None:
                nonlocal over
                while process.returncode is None:
                    await asyncio.sleep(_QUOTA_POLL_S)
                    if await asyncio.to_thread(workdir_usage, context.workdir, quota) > quota:
                        over = True
                        kill_group(process.pid)
                        return

            watcher = asyncio.create_task(watch())
            try:
                async with asyncio.timeout(context.timeout_s):
                    await read()
            except TimeoutError:
                return ToolResult(_text(kept) + f"\n[timed out after {context.timeout_s:g} s; killed]",
                                  is_error=True)
            finally:
                watcher.cancel()
        if over:
            return ToolResult(f"{_text(kept)}\n[{_over_quota(quota)}; killed]".lstrip("\n"), is_error=True)
        text = _text(kept) + ("\n[output truncated]" if truncated else "")
        code = process.returncode
        if code:
            return ToolResult(f"{text}\n[exit status {code}]".lstrip("\n"), is_error=True)
        return ToolResult(text)


def _over_quota(quota: int) -> str:
    return (f"the working directory is over its quota of {quota} bytes (BYOLLM_RUN_WORKDIR_BYTES); remove"
            " files before running more commands")


def workdir_usage(root: Path, stop_above: int) -> int:
    """The disk space under ``root`` (allocated blocks, each entry at least 4 KiB; symbolic links not
    followed), counting stops once past ``stop_above`` so a huge tree costs no more than needed."""
    total = 0
    pending = [str(root)]
    while pending and total <= stop_above:
        try:
            entries = os.scandir(pending.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += max(st.st_blocks * 512, _MIN_ENTRY_BYTES)
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
    return total


def _text(data: bytes | bytearray) -> str:
    return bytes(data).decode("utf-8", errors="replace")


class ToolRegistry:
    """Tools by name, and which of them the operator enabled; the one place that knows which tools exist."""

    def __init__(self, tools: Sequence[Tool], enabled: Iterable[str] | None = None) -> None:
        self._tools = {tool.name: tool for tool in tools}
        wanted = set(self._tools) if enabled is None else set(enabled)
        unknown = sorted(wanted - set(self._tools))
        if unknown:
            raise ValueError(f"BYOLLM_RUN_TOOLS: unknown tool {', '.join(unknown)}"
                             f" (known: {', '.join(sorted(self._tools))})")
        self._enabled = frozenset(wanted)

    @property
    def names(self) -> frozenset[str]:
        """Every tool byollm has (enabled or not)."""
        return frozenset(self._tools)

    @property
    def enabled(self) -> frozenset[str]:
        return self._enabled

    def get(self, name: str) -> Tool | None:
        """The tool if it exists and the operator enabled it."""
        return self._tools.get(name) if name in self._enabled else None

    def specs(self, names: Sequence[str]) -> list[dict[str, Any]]:
        return [tool.spec() for n in names if (tool := self.get(n)) is not None]


def default_registry(sandbox: Sandbox, enabled: Iterable[str]) -> ToolRegistry:
    return ToolRegistry([ShellTool(sandbox)], enabled)
