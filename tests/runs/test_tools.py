"""The shell tool in its sandbox, process by process: the working directory as the only writable place, a
clean environment, the wall-clock and output limits, rlimits that bind inside, no network, and a refusal
(nothing started) when bubblewrap is missing; and the registry's operator enablement."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from byollm.errors import ByollmError, ErrorClass
from byollm.runs.sandbox import Sandbox, SandboxConfig, SandboxLimits, prepare_runs_root
from byollm.runs.tools import ShellTool, ToolContext, default_registry
from byollm.runs.wiring import check_workdir_root
from byollm.settings import Settings
from support.sandbox_host import needs_bwrap

pytestmark = needs_bwrap()

LIMITS = SandboxLimits(cpu_s=30, memory_bytes=1 << 30, processes=64, file_bytes=8 << 20)


def _tool(bwrap: str = "", **limits: int) -> ShellTool:
    return ShellTool(Sandbox(SandboxConfig(bwrap=bwrap, limits=dataclasses.replace(LIMITS, **limits))))


@pytest.fixture
def runs_root() -> Iterator[Path]:
    """A runs root the sandbox user can enter when the tests run as root (pytest's tmp_path is 0700)."""
    root = Path(tempfile.mkdtemp(prefix="byollm-tools-"))
    root.chmod(0o711)
    yield root / "runs"
    shutil.rmtree(root, ignore_errors=True)


def _ctx(root: Path, timeout_s: float = 10.0, max_output_bytes: int = 8192) -> ToolContext:
    return ToolContext(workdir=root / "work", timeout_s=timeout_s, max_output_bytes=max_output_bytes)


async def test_runs_in_the_working_directory_with_a_minimal_environment(runs_root: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYOLLM_KEK", "not-for-tools")
    result = await _tool().run({"command": "pwd; env; echo hi > out.txt; printf 'echo from-script' > s.sh;"
                                           " sh s.sh"}, _ctx(runs_root))
    assert not result.is_error, result.output
    assert result.output.splitlines()[0] == "/workspace"
    assert "BYOLLM_KEK" not in result.output and "HOME=/workspace" in result.output
    assert "from-script" in result.output
    assert (runs_root / "work" / "out.txt").read_text() == "hi\n"


async def test_nothing_of_the_host_is_in_reach(runs_root: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYOLLM_KEK", "not-for-tools")
    secret = tmp_path / "kek"
    secret.write_text("host-secret")
    command = (f"cat {secret}; ls {tmp_path}; cat /proc/1/environ; echo; ls /proc | grep -c '^[0-9]';"
               " touch /usr/x /etc/x /x; ls /root /home; echo done")
    result = await _tool().run({"command": command}, _ctx(runs_root))
    assert "host-secret" not in result.output and "not-for-tools" not in result.output
    assert "kek" not in result.output.replace(str(secret), "")
    assert "done" in result.output
    lines = result.output.splitlines()
    assert any(line.strip().isdigit() and int(line) < 10 for line in lines), result.output  # its own PID namespace
    assert not await asyncio.to_thread(Path("/x").exists)


async def test_time_limit_kills_the_whole_sandbox(runs_root: Path) -> None:
    begun = time.monotonic()
    result = await _tool().run({"command": "(sleep 1; touch late) & sleep 30"}, _ctx(runs_root, 0.5))
    assert result.is_error and "timed out after 0.5 s" in result.output
    assert time.monotonic() - begun < 3
    await asyncio.sleep(1.5)
    assert not (runs_root / "work" / "late").exists()


async def test_output_limit_and_exit_status(runs_root: Path) -> None:
    result = await _tool().run({"command": "yes | head -c 100000; exit 3"}, _ctx(runs_root, max_output_bytes=1000))
    assert result.is_error
    assert result.output.startswith("y\ny\n") and "[output truncated]" in result.output
    assert result.output.endswith("[exit status 3]") and len(result.output) < 1100


async def test_bad_arguments_and_cancellation(runs_root: Path) -> None:
    assert (await _tool().run({}, _ctx(runs_root))).is_error
    task = asyncio.create_task(_tool().run({"command": "sleep 1; touch late; sleep 30"}, _ctx(runs_root)))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(1.5)
    assert not (runs_root / "work" / "late").exists()


async def test_process_limit_binds_inside(runs_root: Path) -> None:
    result = await _tool(processes=32).run({"command": "for i in $(seq 100); do sleep 5 & done; echo spawned"},
                                           _ctx(runs_root))
    assert "fork" in result.output.lower(), result.output


async def test_memory_limit_binds_inside(runs_root: Path) -> None:
    result = await _tool(memory_bytes=256 << 20).run(
        {"command": "head -c 2000000000 /dev/zero | tail -n 1 > /dev/null; echo status=$?"}, _ctx(runs_root, 30))
    assert "memory exhausted" in result.output or "status=1" in result.output, result.output


async def test_cpu_limit_binds_inside(runs_root: Path) -> None:
    begun = time.monotonic()
    result = await _tool(cpu_s=1).run({"command": "while :; do :; done"}, _ctx(runs_root, 20))
    assert result.is_error and "timed out" not in result.output, result.output
    assert time.monotonic() - begun < 10


async def test_file_size_limit_binds_inside(runs_root: Path) -> None:
    result = await _tool(file_bytes=1 << 20).run({"command": "head -c 5000000 /dev/zero > big; echo status=$?"},
                                                 _ctx(runs_root))
    assert "status=0" not in result.output, result.output
    assert (runs_root / "work" / "big").stat().st_size <= 1 << 20


async def test_no_network_at_all(runs_root: Path) -> None:
    listener = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        result = await _tool().run({"command": f"cat /proc/net/dev; curl -sS -m 3 http://127.0.0.1:{port}/;"
                                               " echo curl=$?"}, _ctx(runs_root))
    finally:
        listener.close()
    devices = [line.split(":")[0].strip() for line in result.output.splitlines() if ":" in line and "|" not in line]
    assert "lo" in devices and not [d for d in devices if d != "lo" and not d.startswith("curl")], result.output
    assert "curl=0" not in result.output


async def test_without_bwrap_the_tool_refuses_and_nothing_starts(runs_root: Path, tmp_path: Path) -> None:
    proof = tmp_path / "proof"
    with pytest.raises(ByollmError) as caught:
        await _tool(bwrap=str(tmp_path / "no-such-bwrap")).run({"command": f"touch {proof}"}, _ctx(runs_root))
    assert caught.value.error_class is ErrorClass.SANDBOX_UNAVAILABLE
    assert "no-such-bwrap" in caught.value.detail
    assert not proof.exists() and not (runs_root / "work").exists()


def test_registry_enables_only_what_the_operator_lists() -> None:
    sandbox = Sandbox(SandboxConfig(bwrap="", limits=LIMITS))
    off = default_registry(sandbox, ())
    assert off.names == frozenset({"shell"}) and off.enabled == frozenset()
    assert off.get("shell") is None and off.specs(["shell"]) == []
    on = default_registry(sandbox, ["shell"])
    assert on.get("shell") is not None and on.get("nope") is None
    assert [s["name"] for s in on.specs(["shell", "nope"])] == ["shell"]
    with pytest.raises(ValueError, match="BYOLLM_RUN_TOOLS: unknown tool browser"):
        default_registry(sandbox, ["shell", "browser"])


def test_the_runs_root_lies_outside_the_data_directory_and_is_private(tmp_path: Path) -> None:
    settings = Settings.for_data_dir(tmp_path / "data")
    assert settings.run_workdir_root == tmp_path / "data-runs"
    with pytest.raises(ValueError, match=r"BYOLLM_RUN_WORKDIR: .* is inside the data directory"):
        check_workdir_root(Settings.for_data_dir(tmp_path / "data", run_workdir=tmp_path / "data" / "runs"))
    check_workdir_root(settings)
    prepare_runs_root(settings.run_workdir_root)
    mode = settings.run_workdir_root.stat().st_mode & 0o777
    assert mode == (0o711 if os.geteuid() == 0 else 0o700)  # root: the sandbox user may enter, never list
