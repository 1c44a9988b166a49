"""A ``byollm worker`` killed with SIGKILL mid-run: the run is recovered by another worker, not lost, and
not executed by two workers at once; a worker stopped with SIGTERM hands its run back at once. The
gateway here executes nothing (embedded worker off); three worker processes share the SQLite queue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.runs_stack import (
    Proc,
    events,
    new_agent,
    run_team,
    running_runs_stack,
    spawn_worker,
    start_run,
    wait_event,
    wait_run,
)
from support.stack import Stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_runs_stack(Path(tmp_path_factory.mktemp("recovery")), run_worker_embedded=False) as s:
        yield s


@pytest.fixture(scope="module")
def workers(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Proc]]:
    logs = Path(tmp_path_factory.mktemp("worker-logs"))
    procs = [spawn_worker(stack, logs / f"worker-{i}.log", concurrency=2) for i in range(3)]
    try:
        yield {str(p.process.pid): p for p in procs}
    finally:
        for proc in procs:
            proc.stop()


def _executor(running_event: dict[str, object], workers: dict[str, Proc]) -> Proc:
    worker_id = str(running_event["data"]["worker"])  # type: ignore[index]
    return workers[worker_id.split(":")[1]]


def test_sigkill_of_a_worker_mid_run_is_recovered_by_another(stack: Stack, workers: dict[str, Proc]) -> None:
    t = run_team(stack)
    agent_uid, _ = new_agent(stack, t.uid, tools=["shell"], default_model="opus")
    run = start_run(t.member, prompt='Use shell with command="sleep 2"', agent=agent_uid)
    first = _executor(wait_event(t.member, run["uid"], "state", timeout=30, state="running"), workers)
    wait_event(t.member, run["uid"], "tool_call")
    first.kill()  # SIGKILL: no cleanup; its lease just stops being renewed
    done = wait_run(t.member, run["uid"], timeout=30)
    assert done["state"] == "succeeded", (first.log.read_text()[-3000:], done)
    assert done["attempts"] == 2
    states = [e for e in events(t.member, run["uid"]) if e["kind"] == "state"]
    assert [(s["data"]["state"], s["data"].get("attempt")) for s in states] == [
        ("queued", 0), ("running", 1), ("queued", 1), ("running", 2), ("succeeded", 2)]
    assert "stopped renewing its lease" in states[2]["data"]["reason"]
    second = _executor(states[3], workers)
    assert second is not first and second.process.poll() is None
    # the second attempt began only after the first was declared lost; one final answer
    assert states[2]["seq"] < states[3]["seq"]


def test_a_cleanly_stopped_worker_hands_its_run_back(stack: Stack, workers: dict[str, Proc]) -> None:
    t = run_team(stack)
    agent_uid, _ = new_agent(stack, t.uid, tools=["shell"], default_model="opus")
    run = start_run(t.member, prompt='Use shell with command="sleep 1"', agent=agent_uid)
    first = _executor(wait_event(t.member, run["uid"], "state", timeout=30, state="running"), workers)
    wait_event(t.member, run["uid"], "tool_call")
    first.stop()  # SIGTERM: the run goes back to the queue at once, its attempt not counted
    released = wait_event(t.member, run["uid"], "state", state="queued", attempt=1)
    assert "shut down" in released["data"]["reason"]
    done = wait_run(t.member, run["uid"], timeout=30)
    assert done["state"] == "succeeded" and done["attempts"] == 1
    last_running = [e for e in events(t.member, run["uid"]) if e["kind"] == "state"
                    and e["data"]["state"] == "running"][-1]
    assert _executor(last_running, workers) is not first
