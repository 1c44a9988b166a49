"""The same sandbox wherever runs execute: a real ``byollm worker`` process and a real ``byollm serve`` process
(embedded worker), on SQLite and on PostgreSQL. In each placement the shell works for honest use (write a
script in the working directory, run it, read its output) and cannot see the executing process (its
``/proc/<pid>``, whose environment held the key) nor the data directory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.pg import scratch_database
from support.runs_stack import (
    Proc,
    events,
    new_agent,
    run_team,
    running_runs_stack,
    spawn_server,
    spawn_worker,
    start_run,
    wait_run,
)
from support.sandbox_host import needs_bwrap
from support.stack import KEK, Stack

pytestmark = needs_bwrap()


@contextlib.contextmanager
def _database(kind: str) -> Iterator[str | None]:
    if kind == "sqlite":
        yield None
        return
    with scratch_database("byollm_sandbox_place", "runs on PostgreSQL need a PostgreSQL server") as url:
        yield url


def _shell(stack: Stack, team_agent: tuple[Any, str], command: str) -> dict[str, Any]:
    team, agent_uid = team_agent
    run = start_run(team.member, prompt=f"Use shell with command='{command}'", agent=agent_uid)
    done = wait_run(team.member, run["uid"], timeout=60)
    assert done["state"] == "succeeded", (done["error_code"], done["error_detail"])
    return dict(next(e["data"] for e in events(team.member, run["uid"]) if e["kind"] == "tool_result"))


def _check_placement(stack: Stack, team_agent: tuple[Any, str], proc: Proc) -> None:
    honest = _shell(stack, team_agent, "printf \"echo sum=\\$((2+3))\\n\" > add.sh; sh add.sh; pwd")
    assert honest["is_error"] is False and honest["output"] == "sum=5\n/workspace\n", honest
    data = stack.settings.data_dir
    hostile = _shell(stack, team_agent, f"cat /proc/{proc.process.pid}/environ /proc/{proc.process.pid}/cmdline"
                                        f" {data}/kek; ls {data}")
    assert hostile["is_error"] is True
    assert f"/proc/{proc.process.pid}/environ: No such file or directory" in hostile["output"]
    assert KEK not in hostile["output"] and "byollm.sqlite3" not in hostile["output"].replace(str(data), "")


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_the_sandbox_is_the_same_on_worker_and_serve(kind: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    logs = Path(tmp_path_factory.mktemp(f"placement-logs-{kind}"))
    with _database(kind) as url:
        overrides: dict[str, Any] = {"run_worker_embedded": False}
        if url is not None:
            overrides["database_url"] = url
        with running_runs_stack(Path(tmp_path_factory.mktemp(f"placement-{kind}")), **overrides) as stack:
            team = run_team(stack)
            agent_uid, _ = new_agent(stack, team.uid, tools=["shell"], default_model="claude-opus-4-7")
            worker = spawn_worker(stack, logs / "worker.log", concurrency=2)
            try:
                _check_placement(stack, (team, agent_uid), worker)
            finally:
                worker.stop()
            server = spawn_server(stack, logs / "serve.log", BYOLLM_RUN_WORKER_EMBEDDED="1")
            try:
                _check_placement(stack, (team, agent_uid), server)
            finally:
                server.stop()
