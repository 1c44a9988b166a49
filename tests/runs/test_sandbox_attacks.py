"""The attacker of issue 13: a member of team A runs an agent that has the ``shell`` tool, and the (simulated)
model's commands try to reach byollm's secrets. Each attempt must fail inside the sandbox with the tool's
error, and nothing secret may reach the run's events, which the member reads. Then honest use, which must
work; and a server whose bubblewrap is missing, which must refuse the tool with ``sandbox_unavailable``
without starting any process.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from byollm.errors import ErrorClass
from support.runs_stack import RunTeam, events, new_agent, run_team, running_runs_stack, start_run, wait_run
from support.sandbox_host import needs_bwrap
from support.stack import KEK, Stack

pytestmark = needs_bwrap()

CANARY = "canary-environ-" + "7f3a9c"  # put into the serving process's environment for the test
METADATA_SECRET = "metadata-secret-d41d8"
KEK_FILE_SECRET = "kek-file-secret-0b5e"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    os.environ["BYOLLM_CANARY_SECRET"] = CANARY
    try:
        with running_runs_stack(Path(tmp_path_factory.mktemp("attack")), run_tool_timeout_s=6.0,
                                run_tool_processes=64, run_tool_memory_bytes=512 << 20) as s:
            kek = s.settings.data_dir / "kek"
            if not kek.exists():  # the key lives in the settings here; a key file must be out of reach too
                kek.write_text(KEK_FILE_SECRET)
            yield s
    finally:
        os.environ.pop("BYOLLM_CANARY_SECRET", None)


@pytest.fixture(scope="module")
def attacker(stack: Stack) -> tuple[RunTeam, str]:
    team = run_team(stack)
    agent_uid, _ = new_agent(stack, team.uid, tools=["shell"], default_model="claude-opus-4-7")
    return team, agent_uid


def _shell(attacker: tuple[RunTeam, str], command: str, timeout: float = 40) -> tuple[dict[str, Any], str]:
    """One run whose model calls the shell with ``command``; the tool's result and every event, as text."""
    team, agent_uid = attacker
    assert "'" not in command
    run = start_run(team.member, prompt=f"Use shell with command='{command}'", agent=agent_uid)
    done = wait_run(team.member, run["uid"], timeout=timeout)
    assert done["state"] == "succeeded", done
    every = events(team.member, run["uid"])
    result = next(e["data"] for e in every if e["kind"] == "tool_result")
    return result, json.dumps(every)


def _no_secret(stack: Stack, text: str) -> None:
    for secret in (KEK, CANARY, KEK_FILE_SECRET, METADATA_SECRET, stack.operator, "SQLite format 3"):
        assert secret not in text


def test_the_parents_environment_and_command_line_are_out_of_reach(stack: Stack, attacker: tuple[RunTeam, str]) -> None:
    pid = os.getpid()  # the serving process (the server runs on a thread of the test process)
    result, text = _shell(attacker, f"cat /proc/$PPID/environ /proc/1/environ /proc/{pid}/environ"
                                    f" /proc/{pid}/cmdline")
    assert result["is_error"] is True, result
    assert f"/proc/{pid}/environ: No such file or directory" in result["output"]
    _no_secret(stack, text)


def test_the_key_file_and_the_database_are_out_of_reach(stack: Stack, attacker: tuple[RunTeam, str]) -> None:
    data = stack.settings.data_dir
    relative = os.path.relpath(data, stack.settings.run_workdir_root / "x" / "y")
    result, text = _shell(attacker, f"cat {data}/kek {data}/byollm.sqlite3 ../kek ../../kek ../../../kek"
                                    f" {relative}/kek {relative}/byollm.sqlite3; ls -la {data} {data.parent} ..")
    assert result["is_error"] is True
    assert f"{data}/kek: No such file or directory" in result["output"]
    assert f"cannot access '{data}'" in result["output"]
    assert "byollm.sqlite3" not in result["output"].replace(f"{data}/byollm.sqlite3", "").replace(
        f"{relative}/byollm.sqlite3", "")
    _no_secret(stack, text)


def test_a_loopback_listener_and_byollm_itself_are_unreachable(stack: Stack, attacker: tuple[RunTeam, str]) -> None:
    connections: list[str] = []
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:  # stands in for the cloud metadata service
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections.append("connected")
            conn.sendall(f"HTTP/1.0 200 OK\r\n\r\n{METADATA_SECRET}".encode())
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        result, text = _shell(attacker, f"curl -sS -m 3 http://127.0.0.1:{port}/latest/meta-data/;"
                                        f" curl -sS -m 3 {stack.url}/api/v1/me; curl -sS -m 3 http://169.254.169.254/")
    finally:
        listener.close()
    assert result["is_error"] is True and "Couldn't connect" in result["output"], result
    assert connections == []
    _no_secret(stack, text)


def test_a_fork_bomb_is_bounded(stack: Stack, attacker: tuple[RunTeam, str]) -> None:
    marker = "bombmarker" + str(os.getpid())
    begun = time.monotonic()
    result, _ = _shell(attacker, f"sh -c \"b() {{ b | b & }}; b\" {marker}; sleep 20")
    assert result["is_error"] is True, result  # timed out, or the sandbox's own commands could not fork
    assert time.monotonic() - begun < 30
    time.sleep(0.5)
    survivors = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    survivors.append(entry.name)
            except OSError:
                continue
    assert survivors == []  # the sandbox and all its processes were killed


def test_a_memory_hog_is_bounded(stack: Stack, attacker: tuple[RunTeam, str]) -> None:
    result, _ = _shell(attacker, "head -c 4000000000 /dev/zero | tail -n 1 > /dev/null")
    assert result["is_error"] is True and "memory exhausted" in result["output"], result


def test_nothing_outside_the_working_directory_is_writable(stack: Stack, attacker: tuple[RunTeam, str]) -> None:
    data = stack.settings.data_dir
    root = stack.settings.run_workdir_root
    result, _ = _shell(attacker, f"echo private > /tmp/t && cat /tmp/t; echo x > {data}/pwned; echo x > {root}/pwned;"
                                 " touch /usr/pwned /etc/pwned /pwned ../pwned")
    assert result["is_error"] is True and "private" in result["output"]
    assert "Read-only file system" in result["output"]
    for path in (data / "pwned", root / "pwned", Path("/usr/pwned"), Path("/etc/pwned"), Path("/pwned")):
        assert not path.exists()


def test_honest_use_works(stack: Stack, attacker: tuple[RunTeam, str]) -> None:
    result, _ = _shell(attacker, "printf \"echo sum=\\$((2+3))\\n\" > add.sh; sh add.sh; ls")
    assert result["is_error"] is False and "sum=5" in result["output"] and "add.sh" in result["output"]


def test_without_bwrap_the_tool_refuses_and_starts_nothing(tmp_path_factory: pytest.TempPathFactory,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="byollm.runs.wiring")
    missing = tmp_path_factory.mktemp("nobwrap") / "no-such-bwrap"
    with running_runs_stack(Path(tmp_path_factory.mktemp("nobwrap-data")), run_bwrap=str(missing)) as stack:
        team = run_team(stack)
        agent_uid, _ = new_agent(stack, team.uid, tools=["shell"], default_model="claude-opus-4-7")
        proof = stack.settings.run_workdir_root.parent / "proof"  # writable by an unconfined process
        run = start_run(team.member, prompt=f"Use shell with command='touch {proof}; echo ran'", agent=agent_uid)
        done = wait_run(team.member, run["uid"])
        every = events(team.member, run["uid"])
    unavailable = ErrorClass.SANDBOX_UNAVAILABLE
    assert done["state"] == "failed" and done["error_code"] == unavailable.code
    assert done["remediation"] == unavailable.remediation
    result = next(e["data"] for e in every if e["kind"] == "tool_result")
    assert result["is_error"] is True and result["code"] == unavailable.code and "no-such-bwrap" in result["output"]
    assert not proof.exists()
    # and the operator was told at start-up, not only at the first tool call
    assert any("will refuse to run" in r.getMessage() and "no-such-bwrap" in r.getMessage() for r in caplog.records)
