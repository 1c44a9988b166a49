"""Issue 13's acceptance run, the attempts the first attack tests did not make: a member of team A runs an
agent with ``shell`` on a real ``byollm serve`` stack, and the simulated model chooses the commands.

- filling the disk: the working directory has a size quota (``BYOLLM_RUN_WORKDIR_BYTES``) as well as the
  per-file limit, so many files cannot fill the disk the database shares;
- binary output (NUL bytes, invalid UTF-8) reaches the events on SQLite and PostgreSQL;
- a command the model wrote with a NUL character is the tool's error, not an exception out of the tool (the
  run would fail "inside byollm").
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from byollm.runs.sandbox import Sandbox, SandboxConfig, SandboxLimits
from byollm.runs.tools import ShellTool, ToolContext
from support.pg import scratch_database
from support.runs_stack import RunTeam, events, new_agent, run_team, running_runs_stack, start_run, wait_run
from support.sandbox_host import needs_bwrap
from support.stack import Stack

pytestmark = needs_bwrap()

FILE_BYTES = 4 << 20
QUOTA_BYTES = 24 << 20


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with contextlib.ExitStack() as scope:
        overrides: dict[str, Any] = {}
        if request.param == "postgresql":
            overrides["database_url"] = scope.enter_context(
                scratch_database("byollm_sandbox_review", "runs on PostgreSQL need a PostgreSQL server"))
        yield scope.enter_context(running_runs_stack(
            Path(tmp_path_factory.mktemp("review")), run_tool_timeout_s=20.0, run_tool_file_bytes=FILE_BYTES,
            run_workdir_bytes=QUOTA_BYTES, **overrides))


@pytest.fixture(scope="module")
def attacker(stack: Stack) -> tuple[RunTeam, str]:
    team = run_team(stack)
    agent_uid, _ = new_agent(stack, team.uid, tools=["shell"], default_model="claude-opus-4-7")
    return team, agent_uid


def _shell(attacker: tuple[RunTeam, str], command: str) -> tuple[dict[str, Any], dict[str, Any]]:
    team, agent_uid = attacker
    run = start_run(team.member, prompt=f"Use shell with command='{command}'", agent=agent_uid)
    done = wait_run(team.member, run["uid"], timeout=60)
    every = events(team.member, run["uid"])
    results = [e["data"] for e in every if e["kind"] == "tool_result"]
    assert results, json.dumps(every)[:2000]
    return done, results[0]


def test_many_files_cannot_fill_the_disk(stack: Stack, attacker: tuple[RunTeam, str]) -> None:
    # each file is under the per-file limit; together they are 40 times the quota
    done, result = _shell(attacker, "for i in $(seq 1 240); do head -c 4000000 /dev/zero > f$i; done;"
                                    " echo done-writing; du -sk .")
    assert done["state"] == "succeeded", done
    assert result["is_error"] is True, result
    assert "done-writing" not in result["output"], result["output"][-500:]
    assert "working directory" in result["output"] and "BYOLLM_RUN_WORKDIR_BYTES" in result["output"]


def test_binary_output_reaches_the_events(stack: Stack, attacker: tuple[RunTeam, str]) -> None:
    # NUL bytes and invalid UTF-8: PostgreSQL's text cannot hold a NUL character
    done, result = _shell(attacker, 'printf "a\\000b\\377\\376-binary"; head -c 2000 /dev/urandom')
    assert done["state"] == "succeeded", done
    assert result["is_error"] is False and result["output"].startswith("a"), result
    assert "b\ufffd\ufffd-binary" in result["output"]



async def test_a_nul_character_in_the_command_is_the_tools_error() -> None:
    root = Path(tempfile.mkdtemp(prefix="byollm-review-"))
    os.chmod(root, 0o711)
    try:
        tool = ShellTool(Sandbox(SandboxConfig(bwrap="", limits=SandboxLimits(
            cpu_s=10, memory_bytes=1 << 30, processes=64, file_bytes=1 << 20))))
        result = await tool.run({"command": "echo a\x00b"}, ToolContext(workdir=root / "runs" / "w",
                                                                          timeout_s=10, max_output_bytes=4096))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert result.is_error and "NUL" in result.output


# credentials the tool prints cut across lines; each piece alone has no credential shape, so the command
# (and the prompt) pass the scrubber unchanged and only the tool's output holds the credentials
SPLIT_SECRETS = [
    ["AKIAIOSFODNN7EXA", "MPLE"],
    ["wJalrXUtnFEMI/K7MDEN", "G/bPxRfiCYEXAMPLEKEY"],
    ["eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0", "ZWFtLWEifQ.c2lnbmF0dXJlLXZhbHVlLWhlcmU"],
    ["byo_cacj", "mOOi21V4r6Dh-hYvR4vwnRLhFB1Hn3UH0Cr60hA"],
    ["sk-ant-api03-ab", "cdefghijklmnopqrstuvwxyz012345"],
    ["IQoJb3JpZ2luX2VjEJr", "wEaCXVzLWVhc3QtMSJHMEUCIQ"],
    ["Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4OTBBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWmFiY2RlZmdo",
     "Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4OTBBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWmFiY2RlZmdo", "aWprbG1u"],
]


def test_credentials_cut_across_lines_are_redacted_in_the_events(stack: Stack,
                                                                  attacker: tuple[RunTeam, str]) -> None:
    pieces = [piece for secret in SPLIT_SECRETS for piece in [*secret, "--"]]
    team, agent_uid = attacker
    run = start_run(team.member, prompt=f"Use shell with command='printf \"%s\\n\" {' '.join(pieces)}'",
                    agent=agent_uid)
    assert wait_run(team.member, run["uid"], timeout=60)["state"] == "succeeded"
    every = events(team.member, run["uid"])
    call = next(e["data"] for e in every if e["kind"] == "tool_call")
    assert all(secret[0] in call["input"]["command"] for secret in SPLIT_SECRETS), call  # the command is intact
    output = next(e["data"] for e in every if e["kind"] == "tool_result")["output"]
    assert output.count("[redacted]") == len(SPLIT_SECRETS), output
    later = json.dumps([e for e in every if e["kind"] in ("tool_result", "message")])  # and the model's reply
    for secret in SPLIT_SECRETS:
        for piece in secret:
            assert piece not in later, (piece, output)


@pytest.mark.skipif(os.geteuid() != 0, reason="only byollm running as root starts tools as another user (CI is root)")
def test_as_root_an_unreachable_default_runs_directory_is_said_at_start_up(
        tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture) -> None:
    """pytest's directories are 0700 like /root: the default ``<data dir>-runs`` beside a data directory in
    there cannot be entered by the sandbox user, so every tool call would refuse; the operator must hear it
    when byollm starts, not from a member's failed run."""
    caplog.set_level(logging.WARNING, logger="byollm.runs.wiring")
    data = Path(tmp_path_factory.mktemp("private-parent")) / "data"
    with running_runs_stack(data, run_workdir=None) as stack:
        assert stack.settings.run_workdir_root == data.parent / "data-runs"
        team = run_team(stack)
        agent_uid, _ = new_agent(stack, team.uid, tools=["shell"], default_model="claude-opus-4-7")
        run = start_run(team.member, prompt="Use shell with command='echo ran'", agent=agent_uid)
        done = wait_run(team.member, run["uid"], timeout=60)
    assert done["state"] == "failed" and done["error_code"] == "sandbox_unavailable", done
    assert "BYOLLM_RUN_WORKDIR" in done["error_detail"]
    warned = [r.getMessage() for r in caplog.records if "will refuse to run" in r.getMessage()]
    assert warned and "cannot enter" in warned[0] and "BYOLLM_RUN_WORKDIR" in warned[0], warned
