"""The run worker: claims queued runs, executes up to ``concurrency`` at once, recovers dead workers' runs.

One worker object per process (inside ``byollm serve`` by default, or ``byollm worker``). Its loop:

1. recover: runs whose lease expired (their worker died or stalled past its lease) go back to ``queued``
   while attempts remain, else ``failed`` (``store.runs.recover_expired``, SKIP LOCKED, so workers never
   recover the same run twice);
2. claim as many queued runs as it has free slots (``FOR UPDATE SKIP LOCKED``) and start each; the
   ``running`` state event is written in the claim's transaction, so a crash right after a claim cannot
   leave a run ``running`` (later recovered) with no ``running`` event in its history;
3. wait for a ``queued`` signal (NOTIFY on PostgreSQL), a finished run, or the slow poll (``poll_s``).

``cancel`` signals are routed to the execution of that run, if it runs here. Every ~10 minutes the worker
also purges transcripts and events past their team's retention. ``close`` stops claiming, hands the runs
in flight back to the queue (their attempt does not count) and waits for that to be written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime

from byollm.gateway.executor import Gateway
from byollm.runs.execution import ExecutionConfig, RunCredentials, RunExecution, StopReason
from byollm.runs.journal import RunJournal
from byollm.runs.tools import ToolRegistry
from byollm.store import Store
from byollm.store import runs as runs_repo

__all__ = ["Worker", "new_worker_id"]

log = logging.getLogger(__name__)

PURGE_INTERVAL_S = 600.0
LOST_DETAIL = ("the worker executing this run stopped renewing its lease (it was killed or lost the database)"
               " and the run has no attempts left")


def new_worker_id() -> str:
    """``host:pid:random``: unique per worker, and says where a run executed."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}"


class Worker:
    def __init__(self, *, store: Store, gateway: Gateway, journal: RunJournal, tools: ToolRegistry,
                 config: ExecutionConfig, concurrency: int, poll_s: float, worker_id: str | None = None,
                 web_identity: RunCredentials | None = None) -> None:
        if concurrency < 1:
            raise ValueError("a worker needs a concurrency of at least 1")
        self.worker_id = worker_id or new_worker_id()
        self._store = store
        self._gateway = gateway
        self._journal = journal
        self._tools = tools
        self._config = config
        self._web_identity = web_identity
        self._concurrency = concurrency
        self._poll_s = poll_s
        self._running: dict[str, tuple[RunExecution, asyncio.Task[None]]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._closing = False
        self._purged_at = float("-inf")
        self.executed = 0  # attempts this worker finished (any outcome), for tests and metrics

    @property
    def running(self) -> frozenset[str]:
        return frozenset(self._running)

    async def start(self) -> None:
        if self._task is None:
            self._unsubscribe = self._journal.signals.subscribe(self._on_signal)
            self._task = asyncio.create_task(self._loop(), name=f"byollm-run-worker-{self.worker_id}")

    def _on_signal(self, kind: str, run_uid: str) -> None:
        if kind == "queued":
            self._wake.set()
        elif kind == "cancel":
            entry = self._running.get(run_uid)
            if entry is not None:
                entry[0].stop(StopReason.CANCEL)

    async def _loop(self) -> None:
        while not self._closing:
            try:
                await self._recover()
                await self._claim()
                await self._purge()
            except Exception as exc:  # the database may be away; keep the loop alive and retry on the poll
                log.warning("run worker %s: queue pass failed (%s)", self.worker_id, type(exc).__name__)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_s):
                    await self._wake.wait()

    async def _recover(self) -> None:
        async with self._store.session() as session:
            recovered = await runs_repo.recover_expired(session, now=datetime.now(UTC), detail=LOST_DETAIL)
            for run in recovered:
                data = {"state": run.state, "attempt": run.attempts, "reason": "its worker stopped renewing its lease"}
                if run.state == "failed":
                    data.update(code="internal_error", message=LOST_DETAIL)
                await self._journal.append(session, run.uid, "state", data)
        for run in recovered:
            log.warning("run %s: worker lost; run is now %s", run.uid, run.state)
            await self._journal.announce(run.uid)
        if any(run.state == "queued" for run in recovered):
            await self._journal.signals.notify("queued")

    async def _claim(self) -> None:
        free = self._concurrency - len(self._running)
        if free <= 0 or self._closing:
            return
        async with self._store.session() as session:
            claimed = await runs_repo.claim_runs(session, worker_id=self.worker_id, limit=free,
                                                 lease_s=self._config.lease_s, now=datetime.now(UTC))
            for run in claimed:  # in the claim's transaction: a crash cannot keep the state and lose its event
                await self._journal.append(session, run.uid, "state", {
                    "state": "running", "attempt": run.attempts, "worker": self.worker_id})
        for run in claimed:
            execution = RunExecution(run, worker_id=self.worker_id, store=self._store, gateway=self._gateway,
                                     journal=self._journal, tools=self._tools, config=self._config,
                                     credentials=self._web_identity)
            task = asyncio.create_task(self._execute(execution), name=f"byollm-run-{run.uid}")
            self._running[run.uid] = (execution, task)
            await self._journal.announce(run.uid)

    async def _execute(self, execution: RunExecution) -> None:
        try:
            await execution.execute()
        finally:
            self._running.pop(execution.uid, None)
            self.executed += 1
            self._wake.set()  # a slot is free

    async def _purge(self) -> None:
        if time.monotonic() - self._purged_at < PURGE_INTERVAL_S:
            return
        await self.purge_expired()

    async def purge_expired(self) -> int:
        """Purge transcripts and events past their team's retention now; returns how many runs."""
        self._purged_at = time.monotonic()
        async with self._store.session() as session:
            return await runs_repo.purge_transcripts(session, now=datetime.now(UTC))

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop claiming; hand runs in flight back to the queue; wait (bounded) for that to be written."""
        self._closing = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        tasks = []
        for execution, task in list(self._running.values()):
            execution.stop(StopReason.SHUTDOWN)
            tasks.append(task)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
