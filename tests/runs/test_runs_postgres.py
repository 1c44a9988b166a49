"""Scale-out on PostgreSQL: two ``byollm serve`` gateways (no embedded worker) and two ``byollm worker``
processes share one run queue. Many runs: none lost, none executed twice; steering and cancel reach a run
whichever process executes it (LISTEN/NOTIFY).

Skipped unless BYOLLM_TEST_DATABASE_URL names a PostgreSQL server (a fresh database is created on it).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

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
    team_client,
    wait_event,
    wait_healthy,
    wait_run,
)
from support.stack import Stack

pytestmark = pytest.mark.postgres
RUNS = 30


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, list[Proc], list[Proc]]]:
    with scratch_database("byollm_scale", "the scale-out test needs a PostgreSQL server") as url:
        logs = Path(tmp_path_factory.mktemp("scale-logs"))
        with running_runs_stack(Path(tmp_path_factory.mktemp("scale")), database_url=url,
                                run_worker_embedded=False) as stack:
            gateways: list[Proc] = []
            workers: list[Proc] = []
            try:
                workers = [spawn_worker(stack, logs / f"worker-{i}.log", concurrency=4) for i in range(2)]
                gateways = [spawn_server(stack, logs / f"gateway-{i}.log", wait=False, BYOLLM_RUN_WORKER_EMBEDDED="0")
                            for i in range(2)]
                for gateway in gateways:
                    wait_healthy(gateway)
                yield stack, gateways, workers
            finally:
                for proc in gateways + workers:
                    proc.stop()


def test_two_gateways_and_two_workers_execute_every_run_exactly_once(
        cluster: tuple[Stack, list[Proc], list[Proc]]) -> None:
    stack, gateways, workers = cluster
    t = run_team(stack)
    clients = [team_client(stack, t.team.token, t.uid, url=g.url) for g in gateways]
    started = [start_run(clients[i % 2], prompt=f"run number {i}", model="opus") for i in range(RUNS)]
    deadline = time.monotonic() + 45
    finished = [wait_run(clients[(i + 1) % 2], r["uid"], timeout=max(deadline - time.monotonic(), 1))
                for i, r in enumerate(started)]
    assert [r["state"] for r in finished] == ["succeeded"] * RUNS
    assert all(r["attempts"] == 1 and r["turns"] == 1 for r in finished)
    executors: Counter[str] = Counter()
    for run in started:
        states = [e["data"] for e in events(clients[0], run["uid"]) if e["kind"] == "state"]
        assert [s["state"] for s in states] == ["queued", "running", "succeeded"]
        executors[states[1]["worker"].split(":")[1]] += 1
    assert set(executors) == {str(w.process.pid) for w in workers}  # both workers took part
    calls = Counter(row["run_uid"] for row in stack.request_log(t.uid) if row["run_uid"])
    assert calls == Counter({r["uid"]: 1 for r in started})  # one model call per run: nothing ran twice
    for c in clients:
        c.close()


def test_steer_and_cancel_reach_a_run_on_another_process(cluster: tuple[Stack, list[Proc], list[Proc]]) -> None:
    stack, gateways, _ = cluster
    t = run_team(stack)
    first, second = (team_client(stack, t.team.token, t.uid, url=g.url) for g in gateways)
    agent_uid, _ = new_agent(stack, t.uid, tools=["shell"], default_model="opus")
    # steer: while the tool runs, through the other gateway; the worker merges it after the tool result
    run = start_run(first, prompt='Use shell with command="sleep 1.5"', agent=agent_uid)
    wait_event(second, run["uid"], "tool_call", timeout=20)
    assert second.post(f"/runs/{run['uid']}/steer", json={"message": "and then stop"}).status_code == 201
    done = wait_run(first, run["uid"], timeout=20)
    assert done["state"] == "succeeded"
    transcript = second.get(f"/runs/{run['uid']}/transcript").json()
    assert any(b.get("text") == "and then stop" for m in transcript if m["role"] == "user"
               for b in (m["content"] if isinstance(m["content"], list) else []))
    # cancel: a long tool, cancelled through the other gateway, stops within moments
    run = start_run(first, prompt='Use shell with command="sleep 30"', agent=agent_uid)
    wait_event(second, run["uid"], "tool_call", timeout=20)
    begun = time.monotonic()
    assert second.post(f"/runs/{run['uid']}/cancel").status_code == 200
    assert wait_run(first, run["uid"], timeout=10)["state"] == "cancelled"
    assert time.monotonic() - begun < 5
    first.close()
    second.close()
