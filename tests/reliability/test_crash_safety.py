"""SIGKILL of the gateway (``byollm serve`` with its embedded run worker) mid-stream, mid-run and under load,
then a restart on the same database: what the crash may and may not lose.

One crash, several witnesses. Before the kill: run A is inside a tool call and was just steered, run B is
inside a long tool call and was just cancelled (both acknowledged by the API), run C is waiting on a model
call the simulator stalls, run D was queued behind them (three worker slots, until B's cancel frees one),
a streaming response is half-sent, and six clients keep the request-log writer busy. After a new
``byollm serve`` process starts on the same database:

- every run reaches a terminal state; its events are numbered without gaps, every event the API showed
  before the kill is still there unchanged, the state history is a valid sequence with no state recorded
  twice, and the run row agrees with it (steer and cancel acknowledged before the kill took effect);
- no credit is charged twice: attempt ids are unique, AI-credit charges are one per request and match their
  request-log row (they share a transaction), platform credits once per run, compute credits equal the
  run's recorded compute seconds;
- the request log lost only rows of requests that completed within the writer's last flush window before
  the kill; the number lost is printed and attached to the test report (``request_log_rows_lost``);
- the cut stream ended with a transport error at the client (never a clean-looking end), and is neither
  logged nor charged.

The run crash is repeated on PostgreSQL when ``BYOLLM_TEST_DATABASE_URL`` is set (in a fresh database).

Two windows a real kill lands in too rarely to test by timing are tested in process, deterministically: a
claim and its ``running`` event, a compute charge and the run's ``compute_seconds``, each commit together.
And a run handed back by a clean stop (SIGTERM) and re-run under the same attempt number logs and charges
its repeated model calls instead of dropping them as replays.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from byollm.services import build_services
from byollm.store.request_log import RequestLogWriter
from support.crash import Load, SlowStream, crash, query, spare_gateway, spawn_gateway
from support.pg import scratch_database
from support.runs_stack import (
    TERMINAL,
    Proc,
    RunTeam,
    events,
    new_agent,
    run_team,
    running_runs_stack,
    start_run,
    team_client,
    wait_event,
    wait_healthy,
    wait_run,
)
from support.stack import DIRECT_MODELS, Stack

STALLED_MODEL = "claude-sonnet-4-6"  # run C's model: its first call stalls in the simulator
STREAM_MODEL = "claude-opus-4-7"  # the simulator streams it slowly (only the cut stream uses it)
RUN_MODEL = LOAD_MODEL = "claude-haiku-4-5"
CONCURRENCY = "3"  # worker slots: A, B and C fill them, D waits in the queue
# The writer's window, read from the code: a crash loses what was queued since the last flush. On SQLite a
# flush also waits for the database's write lock, which the gateway's own write transactions (run start,
# cancel, claim, heartbeat: BEGIN IMMEDIATE, held across event-loop turns) keep for 0.2-0.3 s each under
# this load on two cores; waits of 0.8 s, and a 1.5 s unflushed window, were seen. The allowance covers that.
FLUSH_WINDOW_S = float(inspect.signature(RequestLogWriter).parameters["flush_interval_s"].default)
LOCK_WAIT_ALLOWANCE_S = 2.0
LOAD_S = 1.5  # how long the clients send before the kill (at least)
STREAM_PROMPT = " ".join(f"word{i}" for i in range(300))  # ~15 s of output at 0.05 s per token


@dataclass
class CrashedRun:
    uid: str
    before: list[dict[str, Any]] = field(default_factory=list)  # events the API showed just before the kill
    after: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)
    transcript: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Crash:
    stack: Stack
    team: RunTeam
    runs: dict[str, CrashedRun]
    kill_at: float  # epoch seconds, like the clients' completion times and the stored timestamps
    load_team: str | None = None
    load: Load | None = None
    stream: SlowStream | None = None
    after_restart: str | None = None  # request id of a request served by the restarted gateway
    restart_s: float = 0.0  # kill -> the restarted gateway answers /healthz
    settled_s: float = 0.0  # kill -> every run terminal


def _start_runs(stack: Stack, client: httpx.Client, agent_uid: str) -> dict[str, CrashedRun]:
    b = start_run(client, prompt='Use shell with command="sleep 30"', agent=agent_uid)
    wait_event(client, b["uid"], "tool_call")
    stack.fault(service="anthropic", model=STALLED_MODEL, count=1, delay_s=6)  # C's first model call stalls
    c = start_run(client, prompt="answer slowly", model=STALLED_MODEL)
    wait_event(client, c["uid"], "state", state="running")
    return {"B": CrashedRun(b["uid"]), "C": CrashedRun(c["uid"])}


def _last_runs(client: httpx.Client, agent_uid: str, runs: dict[str, CrashedRun], ready_at: float) -> None:
    """A into its tool call, D queued behind it, the two acknowledged changes, then the kill (as few calls as
    possible between A's tool call and the kill: a gateway under load answers slowly)."""
    runs["C"].before = events(client, runs["C"].uid)
    time.sleep(max(ready_at - time.monotonic(), 0.0))
    a = start_run(client, prompt='Use shell with command="sleep 2.5"', agent=agent_uid)
    wait_event(client, a["uid"], "tool_call")
    d = start_run(client, prompt="queued at the crash", model=RUN_MODEL)
    runs.update(A=CrashedRun(a["uid"]), D=CrashedRun(d["uid"]))
    assert client.post(f"/runs/{runs['B'].uid}/cancel").status_code == 200
    assert client.post(f"/runs/{a['uid']}/steer", json={"message": "steered before the crash"}).status_code == 201
    for name in ("A", "B", "D"):
        runs[name].before = events(client, runs[name].uid)


def _finish(client: httpx.Client, runs: dict[str, CrashedRun]) -> None:
    deadline = time.monotonic() + 40
    for run in runs.values():
        run.final = wait_run(client, run.uid, timeout=max(deadline - time.monotonic(), 1))
        run.after = events(client, run.uid)
        run.transcript = list(client.get(f"/runs/{run.uid}/transcript").json())


def _crash(stack: Stack, logs: Path, *, traffic: bool) -> Crash:
    # both processes start while the teams are made: the first gateway, and the spare that restarts it
    first = spawn_gateway(stack, logs / "gateway-1.log", wait=False, BYOLLM_RUN_WORKER_CONCURRENCY=CONCURRENCY)
    spare = spare_gateway(stack, logs / "gateway-2.log", BYOLLM_RUN_WORKER_CONCURRENCY=CONCURRENCY)
    second: Proc | None = None
    load: Load | None = None
    stream: SlowStream | None = None
    try:
        team = run_team(stack)
        agent_uid, _ = new_agent(stack, team.uid, tools=["shell"], default_model=RUN_MODEL)
        load_team = stack.new_team(DIRECT_MODELS) if traffic else None  # credential-less traffic: direct only
        r = stack.sim_http.put("/_sim/behaviour", json={"model": STREAM_MODEL, "per_token_s": 0.05})
        assert r.status_code in (200, 204), r.text
        wait_healthy(first)
        with team_client(stack, team.team.token, team.uid, url=first.url) as client:
            loaded_at = time.monotonic()
            if load_team is not None:  # traffic first: it runs while the runs get into position
                stream = SlowStream(first.url or "", load_team.token, {"model": STREAM_MODEL, "max_tokens": 1000,
                                    "messages": [{"role": "user", "content": STREAM_PROMPT}]})
                stream.start()
                load = Load(first.url or "", load_team.token, LOAD_MODEL)
                load.start()
            runs = _start_runs(stack, client, agent_uid)
            # the load runs long enough that most rows are older than the writer's window
            _last_runs(client, agent_uid, runs, loaded_at + (LOAD_S if load is not None else 0.0))
        kill_at = crash(first)
        if load is not None and stream is not None:
            load.stop()
            stream.join()
        second = spare.serve()  # a new `byollm serve` process on the same database
        restart_s = time.time() - kill_at
        with team_client(stack, team.team.token, team.uid, url=second.url) as client:
            _finish(client, runs)
        settled_s = time.time() - kill_at
        after_restart = None
        if load_team is not None:
            r = httpx.post(f"{second.url}/v1/messages", timeout=30, json={
                "model": LOAD_MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "after"}]},
                headers={"authorization": f"Bearer {load_team.token}", "anthropic-version": "2023-06-01"})
            assert r.status_code == 200, r.text
            after_restart = r.headers["x-request-id"]
        second.stop()  # SIGTERM: the writer flushes, so everything below is what the database keeps
        # uvicorn re-raises the SIGTERM after its graceful shutdown
        assert second.process.returncode in (0, -15), second.log.read_text()[-3000:]
    finally:
        spare.discard()  # only if it never served
        for proc in (first, second):
            if proc is not None:
                proc.stop()
    return Crash(stack=stack, team=team, runs=runs, kill_at=kill_at, load_team=load_team.uid if load_team else None,
                 load=load, stream=stream, after_restart=after_restart, restart_s=restart_s, settled_s=settled_s)


# --- checks ----------------------------------------------------------------------------------------------


def _states(run: CrashedRun) -> list[tuple[str, int]]:
    return [(e["data"]["state"], e["data"]["attempt"]) for e in run.after if e["kind"] == "state"]


def _check_history(name: str, run: CrashedRun) -> None:
    where = f"run {name} ({run.uid}): {[(e['seq'], e['kind'], e['data']) for e in run.after]}"
    assert [e["seq"] for e in run.after] == list(range(1, len(run.after) + 1)), where
    assert run.after[:len(run.before)] == run.before, f"an acknowledged event changed or vanished; {where}"
    states = _states(run)
    assert len(set(states)) == len(states), f"a state recorded twice; {where}"
    assert states[0] == ("queued", 0), where
    for (was, was_attempt), (now, attempt) in itertools.pairwise(states):
        assert was not in TERMINAL, f"a state after the end; {where}"
        if now == "running":
            assert was == "queued" and attempt == was_attempt + 1, where
        else:
            assert attempt == was_attempt and (was == "running" or now == "cancelled"), where
    assert states[-1][0] in TERMINAL, where
    assert (run.final["state"], run.final["attempts"]) == states[-1], where


def _check_runs(result: Crash) -> None:
    runs = result.runs
    for name, run in runs.items():
        _check_history(name, run)
    a, b, c = runs["A"], runs["B"], runs["C"]
    # A was inside its tool when killed, and its steering message (acknowledged) reached the second attempt
    assert [e["kind"] for e in a.before].count("tool_result") == 0, a.before
    assert a.final["state"] == "succeeded" and a.final["attempts"] == 2, a.after
    assert _states(a) == [("queued", 0), ("running", 1), ("queued", 1), ("running", 2), ("succeeded", 2)]
    assert "stopped renewing its lease" in [e for e in a.after if e["kind"] == "state"][2]["data"]["reason"]
    steer = [e for e in a.before if e["kind"] == "steer"]
    assert len(steer) == 1 and [e for e in a.after if e["kind"] == "steer"] == steer
    assert any(block.get("text") == "steered before the crash" for m in a.transcript if m["role"] == "user"
               for block in (m["content"] if isinstance(m["content"], list) else []))
    # B's cancel (acknowledged) held: it ended cancelled, whichever process wrote that
    assert b.final["state"] == "cancelled" and any(e["kind"] == "cancel_requested" for e in b.before)
    # C was waiting on its first model call; the second attempt made it, once
    assert not any(e["kind"] == "model_call" for e in c.before), c.before
    assert c.final["state"] == "succeeded" and c.final["attempts"] == 2, c.after
    assert [e["kind"] for e in c.after].count("model_call") == 1
    assert runs["D"].final["state"] == "succeeded", runs["D"].after


def _credits(value: object) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.000001"))


def _check_ledger(result: Crash, team_uid: str) -> list[dict[str, Any]]:
    settings = result.stack.settings
    rows = query(settings, "SELECT attempt_id, request_id, bucket, credits, run_uid FROM credit_ledger"
                           " WHERE team_uid = :t", {"t": team_uid})
    ids = [r["attempt_id"] for r in rows]
    assert len(ids) == len(set(ids)), Counter(ids).most_common(3)
    distinct = {r["attempt_id"]: _credits(r["credits"]) for r in rows}
    assert sum(_credits(r["credits"]) for r in rows) == sum(distinct.values())
    # AI credits: one charge per request (its last attempt), equal to its request-log row's credits
    ai = [r for r in rows if r["bucket"] == "ai_credits"]
    per_request = Counter(r["request_id"] for r in ai)
    assert max(per_request.values(), default=1) == 1, per_request.most_common(3)
    logged = {r["request_id"]: _credits(r["credits"]) for r in query(
        settings, "SELECT request_id, credits FROM request_log WHERE team_uid = :t", {"t": team_uid})}
    charged = {r["request_id"]: _credits(r["credits"]) for r in ai}
    assert {k: logged.get(k) for k in charged} == charged, "a charge without its request-log row"
    assert {k: v for k, v in logged.items() if v > 0} == charged, "a request-log row without its charge"
    return rows


def _check_run_ledger(result: Crash) -> None:
    rows = _check_ledger(result, result.team.uid)
    recorded = {r["uid"]: r for r in query(result.stack.settings, "SELECT uid, compute_seconds, attempts FROM runs"
                                                                   " WHERE team_uid = :t", {"t": result.team.uid})}
    for name, run in result.runs.items():
        mine = [r for r in rows if r["run_uid"] == run.uid]
        platform = [(r["attempt_id"], _credits(r["credits"])) for r in mine if r["bucket"] == "platform"]
        assert platform == [(f"run:{run.uid}:platform", Decimal(1))], (name, platform)
        compute = [r for r in mine if r["bucket"] == "compute"]
        assert sum(_credits(r["credits"]) for r in compute) == recorded[run.uid]["compute_seconds"], (name, compute)
        # AI credits per attempt (each call charged once, under its own attempt id). The restarted gateway's
        # attempt, flushed on its clean stop, has exactly one charge per model call. A crashed attempt may
        # lack charges (lost with the writer's window), and may have one more than its model_call events:
        # the gateway hands the charge to the writer before the run journals the call, so a kill between the
        # two leaves a call that was made and charged but not in the history (the next attempt repeats it)
        calls: Counter[int] = Counter()
        attempt = 0
        for event in run.after:
            if event["kind"] == "state" and event["data"]["state"] == "running":
                attempt = event["data"]["attempt"]
            elif event["kind"] == "model_call":
                calls[attempt] += 1
        # request ids of a run's model calls: run_<uid>_<attempt>.<execution>_<turn>
        charged = Counter(int(r["request_id"].split("_")[-2].split(".")[0]) for r in mine
                          if r["bucket"] == "ai_credits")
        last = recorded[run.uid]["attempts"]
        assert all(charged[n] <= calls[n] + (n < last) for n in charged), (name, charged, calls)
        if last == 2 and run.final["state"] == "succeeded":
            assert charged[2] == calls[2] > 0, (name, charged, calls)


# --- SQLite ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_runs_stack(Path(tmp_path_factory.mktemp("crash")), run_worker_embedded=False) as s:
        yield s


@pytest.fixture(scope="module")
def sqlite_crash(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Crash:
    return _crash(stack, Path(tmp_path_factory.mktemp("crash-logs")), traffic=True)


def test_every_run_ends_in_a_consistent_recorded_state(sqlite_crash: Crash, record_property: Any,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _check_runs(sqlite_crash)
    record_property("restart_s", round(sqlite_crash.restart_s, 2))
    record_property("runs_settled_s", round(sqlite_crash.settled_s, 2))
    with capsys.disabled():
        print(f"\ncrash safety (SQLite): gateway answering {sqlite_crash.restart_s:.1f} s after SIGKILL, every run"
              f" terminal after {sqlite_crash.settled_s:.1f} s")


def test_no_credit_is_charged_twice(sqlite_crash: Crash) -> None:
    _check_run_ledger(sqlite_crash)
    assert sqlite_crash.load_team is not None
    rows = _check_ledger(sqlite_crash, sqlite_crash.load_team)
    assert sum(1 for r in rows if r["bucket"] == "ai_credits") > 0


def _epoch(value: object) -> float:
    """A stored timestamp (naive UTC text on SQLite, an aware datetime on PostgreSQL) as epoch seconds."""
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def test_request_log_loses_at_most_the_last_flush_window(sqlite_crash: Crash, record_property: Any,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    load, kill_at = sqlite_crash.load, sqlite_crash.kill_at
    assert load is not None and sqlite_crash.load_team is not None
    assert load.refused == 0 and len(load.completed) >= 20, (load.refused, len(load.completed))
    rows = {r["request_id"]: _epoch(r["started_at"]) for r in query(
        sqlite_crash.stack.settings, "SELECT request_id, started_at FROM request_log WHERE team_uid = :t",
        {"t": sqlite_crash.load_team})}
    assert sqlite_crash.after_restart in rows  # the restarted gateway logs, and flushes on a clean stop
    # ``started_at`` is when the gateway handed the row to the writer (before the response was sent), so the
    # newest row the crashed gateway committed marks the start of its last, unflushed window
    flushed = [at for rid, at in rows.items() if rid != sqlite_crash.after_restart]
    assert flushed, f"the crashed gateway committed none of {len(load.completed)} request-log rows"
    last_flushed = max(flushed)
    unflushed_s = kill_at - last_flushed
    lost = {rid: done for rid, done in load.completed if rid not in rows}
    in_window = [rid for rid, done in load.completed if done >= last_flushed]
    record_property("request_log_rows_lost", len(lost))
    record_property("request_log_unflushed_window_ms", round(unflushed_s * 1000))
    record_property("request_log_completed_before_kill", len(load.completed))
    with capsys.disabled():
        print(f"\ncrash safety: request-log rows lost = {len(lost)} of {len(load.completed)} completed before SIGKILL"
              f" (unflushed window {unflushed_s * 1000:.0f} ms, {len(in_window)} completed in it, {load.broken} in"
              f" flight; the writer's interval is {FLUSH_WINDOW_S * 1000:.0f} ms)")
    # the rows lost are a suffix: only requests that completed after the last flush (none older, no holes)
    assert all(done >= last_flushed for done in lost.values()), sorted(last_flushed - d for d in lost.values())[-3:]
    assert len(lost) <= len(in_window) + load.broken
    # and that window is the writer's interval plus, at worst, a wait for SQLite's write lock (see above)
    assert unflushed_s <= FLUSH_WINDOW_S + LOCK_WAIT_ALLOWANCE_S, unflushed_s


def test_a_stream_cut_by_the_crash_fails_at_the_client_and_is_not_charged(sqlite_crash: Crash) -> None:
    stream = sqlite_crash.stream
    assert stream is not None and stream.request_id is not None
    assert isinstance(stream.error, httpx.TransportError), stream.error  # a cut, never a clean-looking end
    assert "content_block_delta" in stream.events and "message_stop" not in stream.events
    found = query(sqlite_crash.stack.settings, "SELECT request_id FROM request_log WHERE request_id = :r"
                  " UNION ALL SELECT request_id FROM credit_ledger WHERE request_id = :r", {"r": stream.request_id})
    assert found == []


def test_claims_and_compute_charges_commit_with_what_they_change(stack: Stack) -> None:
    """The windows a SIGKILL rarely hits, made deterministic: a worker claims a run, charges its compute
    once (as its heartbeat does), and its process dies before the execution takes a single step (the task
    is cancelled before it first runs, so it writes nothing more). The ``running`` transition must already
    be in the history, the run's ``compute_seconds`` must already include the charge (the next attempt
    continues from that number), and recovery continues the history.

    White-box on purpose (``Worker._claim``/``_recover`` and ``RunExecution._charge_compute`` on byollm's own
    services, in process): no timing of a real kill lands reliably between two commits."""
    team = run_team(stack)
    run = start_run(team.member, prompt="claimed, then the process dies", model=RUN_MODEL)
    settings = replace(stack.settings, run_worker_embedded=True, run_lease_s=0.2, run_worker_concurrency=1)

    async def claim_charge_die() -> None:
        services = await build_services(settings, migrate=False, background=False)
        try:
            assert services.runs is not None and services.runs.worker is not None
            worker = services.runs.worker
            await worker._claim()
            [(execution, task)] = list(worker._running.values())
            task.cancel()  # the process is gone: the execution never runs
            await execution._charge_compute()  # ...right after its heartbeat charged the first second
            await asyncio.sleep(0.3)  # the lease expires
            await worker._recover()  # as the restarted process would
        finally:
            await services.close()

    asyncio.run(claim_charge_die())
    after = events(team.member, run["uid"])
    assert [(e["data"]["state"], e["data"]["attempt"]) for e in after if e["kind"] == "state"] == [
        ("queued", 0), ("running", 1), ("queued", 1)], after
    charged = query(stack.settings, "SELECT credits FROM credit_ledger WHERE run_uid = :r AND bucket = 'compute'",
                    {"r": run["uid"]})
    assert [_credits(r["credits"]) for r in charged] == [Decimal(1)]
    assert team.member.get(f"/runs/{run['uid']}").json()["compute_seconds"] == 1
    assert team.member.post(f"/runs/{run['uid']}/cancel").json()["state"] == "cancelled"  # leave nothing queued


def test_a_released_attempt_rerun_under_its_number_logs_and_charges_its_own_calls(stack: Stack) -> None:
    """A gateway stopped cleanly (SIGTERM: ``Services.close``) hands its run back without counting the attempt,
    so the next execution runs under the same attempt number and repeats the turn it was in. Those repeated
    model calls are new upstream calls: each needs its own request-log row and AI-credit charge, not to be
    dropped as a replay of the first execution's."""
    team = run_team(stack)
    agent_uid, _ = new_agent(stack, team.uid, tools=["shell"], default_model=RUN_MODEL)
    run = start_run(team.member, prompt='Use shell with command="sleep 1"', agent=agent_uid)
    settings = replace(stack.settings, run_worker_embedded=True, run_worker_concurrency=1)

    def seen(kind: str) -> bool:
        return any(e["kind"] == kind for e in events(team.member, run["uid"]))

    def ended() -> bool:
        return str(team.member.get(f"/runs/{run['uid']}").json()["state"]) in TERMINAL

    async def execute(until: Callable[[], bool]) -> None:
        services = await build_services(settings, migrate=False, background=False)
        try:
            await services.start_background()
            deadline = time.monotonic() + 20
            while not await asyncio.to_thread(until):
                assert time.monotonic() < deadline, events(team.member, run["uid"])
                await asyncio.sleep(0.05)
        finally:
            await services.close()

    asyncio.run(execute(lambda: seen("tool_call")))  # then stopped cleanly: the run goes back to the queue
    asyncio.run(execute(ended))
    assert wait_run(team.member, run["uid"])["state"] == "succeeded"
    states = [(e["data"]["state"], e["data"]["attempt"]) for e in events(team.member, run["uid"])
              if e["kind"] == "state"]
    assert states == [("queued", 0), ("running", 1), ("queued", 1), ("running", 1), ("succeeded", 1)]
    calls = [e for e in events(team.member, run["uid"]) if e["kind"] == "model_call"]
    rows = query(stack.settings, "SELECT request_id FROM request_log WHERE run_uid = :r", {"r": run["uid"]})
    charges = query(stack.settings, "SELECT attempt_id FROM credit_ledger WHERE run_uid = :r"
                                    " AND bucket = 'ai_credits'", {"r": run["uid"]})
    assert len(calls) == len(rows) == len(charges) == 3, (calls, rows, charges)


# --- PostgreSQL ------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_run_crash_on_postgres(tmp_path_factory: pytest.TempPathFactory, record_property: Any,
                               capsys: pytest.CaptureFixture[str]) -> None:
    with scratch_database("byollm_crash", "the PostgreSQL crash case needs a PostgreSQL server") as url:
        with running_runs_stack(Path(tmp_path_factory.mktemp("crash-pg")), database_url=url,
                                run_worker_embedded=False) as stack:
            result = _crash(stack, Path(tmp_path_factory.mktemp("crash-pg-logs")), traffic=False)
        _check_runs(result)
        _check_run_ledger(result)
        record_property("restart_s", round(result.restart_s, 2))
        record_property("runs_settled_s", round(result.settled_s, 2))
        with capsys.disabled():
            print(f"\ncrash safety (PostgreSQL): gateway answering {result.restart_s:.1f} s after SIGKILL, every"
                  f" run terminal after {result.settled_s:.1f} s")
