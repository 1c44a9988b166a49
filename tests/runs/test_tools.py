"""The shell tool's limits: working directory, clean environment, time limit (process group killed),
output limit, exit status; and the registry."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from byollm.runs.tools import ShellTool, ToolContext, default_registry


def _ctx(tmp_path: Path, timeout_s: float = 5.0, max_output_bytes: int = 4096) -> ToolContext:
    return ToolContext(workdir=tmp_path / "work", timeout_s=timeout_s, max_output_bytes=max_output_bytes)


async def test_runs_in_the_working_directory_with_a_minimal_environment(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYOLLM_KEK", "not-for-tools")
    result = await ShellTool().run({"command": "pwd; env; echo hi > out.txt"}, _ctx(tmp_path))
    assert not result.is_error
    assert result.output.splitlines()[0] == str(tmp_path / "work")
    assert "BYOLLM_KEK" not in result.output and f"HOME={tmp_path / 'work'}" in result.output
    assert (tmp_path / "work" / "out.txt").read_text() == "hi\n"


async def test_time_limit_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "child-survived"
    begun = time.monotonic()
    result = await ShellTool().run({"command": f"(sleep 1; touch {marker}) & sleep 30"}, _ctx(tmp_path, 0.3))
    assert result.is_error and "timed out after 0.3 s" in result.output
    assert time.monotonic() - begun < 2
    await asyncio.sleep(1.3)
    assert not marker.exists()


async def test_output_limit_and_exit_status(tmp_path: Path) -> None:
    result = await ShellTool().run({"command": "yes | head -c 100000; exit 3"}, _ctx(tmp_path, max_output_bytes=1000))
    assert result.is_error
    assert result.output.startswith("y\ny\n") and "[output truncated]" in result.output
    assert result.output.endswith("[exit status 3]") and len(result.output) < 1100


async def test_bad_arguments_and_cancellation(tmp_path: Path) -> None:
    assert (await ShellTool().run({}, _ctx(tmp_path))).is_error
    task = asyncio.create_task(ShellTool().run({"command": "sleep 30"}, _ctx(tmp_path)))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_registry() -> None:
    registry = default_registry()
    assert registry.names == frozenset({"shell"})
    assert registry.get("nope") is None
    assert [s["name"] for s in registry.specs(["shell", "nope"])] == ["shell"]
