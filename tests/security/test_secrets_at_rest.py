"""Nothing secret is left where a process on the same host could read it: the key-encryption key leaves the
environment of ``byollm serve`` and ``byollm worker`` once read, and the data directory and every file in it
are private whatever the umask they were started under.

Real processes, as an operator starts them (``python -m byollm.cli.main serve``), under umask 022.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from byollm.crypto.kek import generate_kek_text
from support.runs_stack import free_port

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/<pid>/environ is Linux's")


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYOLLM_")}
    env.update({"BYOLLM_DATA_DIR": str(data_dir), "BYOLLM_RUN_WORKER_EMBEDDED": "1", **extra})
    return env


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "byollm.cli.main", *args], env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: os.umask(0o022))


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _serve(env: dict[str, str], log: Path, processes: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    port = free_port()
    proc = _start(["serve", "--port", str(port), "--log-level", "warning"], env, log)
    processes.append(proc)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code < 500:
                return proc
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.2)


def _wait_for(condition: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _environ(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


def _loose(data_dir: Path) -> list[str]:
    """Paths under ``data_dir`` (itself included) that group or others may read, write or enter."""
    return [f"{path} {stat.filemode(path.lstat().st_mode)}" for path in (data_dir, *data_dir.rglob("*"))
            if not path.is_symlink() and path.lstat().st_mode & 0o077]


def test_serve_forgets_the_kek_variable_and_keeps_its_files_private(
        tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    kek, previous = generate_kek_text(), generate_kek_text()
    data_dir = tmp_path / "data"
    proc = _serve(_env(data_dir, BYOLLM_KEK=kek, BYOLLM_KEK_PREVIOUS=previous), tmp_path / "serve.log", processes)

    environ = _environ(proc.pid)
    assert kek.encode() not in environ and previous.encode() not in environ
    assert b"BYOLLM_DATA_DIR=" in environ  # the block itself is still there: only the secrets went
    assert (data_dir / "byollm.sqlite3").exists()
    assert _loose(data_dir) == []


def test_the_kek_file_mode_and_an_existing_loose_data_dir_are_made_private(
        tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    left_by_an_older_version = data_dir / "notes.txt"
    left_by_an_older_version.write_text("x")
    left_by_an_older_version.chmod(0o644)
    _serve(_env(data_dir), tmp_path / "serve.log", processes)
    assert (data_dir / "kek").exists()
    assert _loose(data_dir) == []


def test_a_kek_file_is_read_and_nothing_secret_is_in_the_environment(
        tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    kek = generate_kek_text()
    secret_mount = tmp_path / "mount"
    secret_mount.mkdir()
    (secret_mount / "kek").write_text(kek + "\n")
    data_dir = tmp_path / "data"
    proc = _serve(_env(data_dir, BYOLLM_KEK_FILE=str(secret_mount / "kek")), tmp_path / "serve.log", processes)
    assert kek.encode() not in _environ(proc.pid)
    assert not (data_dir / "kek").exists()  # the mounted key was used, no key file was generated


def test_worker_forgets_the_kek_variable(tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    kek = generate_kek_text()
    data_dir = tmp_path / "data"
    env = _env(data_dir, BYOLLM_KEK=kek)
    _serve({**env, "BYOLLM_RUN_WORKER_EMBEDDED": "0"}, tmp_path / "serve.log", processes)  # migrates
    log = tmp_path / "worker.log"
    worker = _start(["worker"], env, log)
    processes.append(worker)
    _wait_for(lambda: "started" in log.read_text(), f"the worker did not start: {log.read_text()[-2000:]}")
    assert kek.encode() not in _environ(worker.pid)
    assert _loose(data_dir) == []
