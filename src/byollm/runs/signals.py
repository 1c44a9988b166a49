"""Wake-ups between the processes that share the run queue: "a run is queued", "cancel run X",
"run X has new events".

Why two implementations behind one small interface: on PostgreSQL several gateway replicas and workers
share the queue, and PostgreSQL's own LISTEN/NOTIFY carries the signals (one asyncpg connection per
process, listening on one channel; payload ``<kind>:<run uid>``). With SQLite (the embedded default) there
is one process, so signals are plain in-process callbacks. Either way a signal is only a hint that makes
things prompt: the durable truth is in the tables (queued rows, ``cancel_requested``, events), and every
consumer also polls slowly, so a lost notification (a dropped connection) delays, never loses.

Kinds: ``queued`` (workers claim), ``cancel`` (the worker executing the run cancels it), ``event``
(watchers read new events).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Protocol

__all__ = ["CHANNEL", "LocalSignals", "PgSignals", "Signals"]

log = logging.getLogger(__name__)

CHANNEL = "byollm_runs"
Listener = Callable[[str, str], None]


class Signals(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def notify(self, kind: str, run_uid: str = "") -> None: ...

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(kind, run_uid)`` for every signal; returns the function that unsubscribes."""
        ...


def _set_event(event: asyncio.Event, _conn: object) -> None:
    event.set()


class _Fanout:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    def deliver(self, kind: str, run_uid: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, run_uid)
            except Exception as exc:  # one broken listener must not starve the others
                log.warning("run signal listener failed (%s)", type(exc).__name__)


class LocalSignals(_Fanout):
    """One process: signals are delivered to this process's listeners on the next loop iteration."""

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._listeners.clear()

    async def notify(self, kind: str, run_uid: str = "") -> None:
        asyncio.get_running_loop().call_soon(self.deliver, kind, run_uid)


class PgSignals(_Fanout):
    """LISTEN/NOTIFY on one dedicated asyncpg connection, reconnected with backoff when it drops.

    The same connection sends this process's notifications, and PostgreSQL delivers them back to it, so
    local listeners hear local signals once, through the same path as remote ones.
    """

    def __init__(self, dsn: str, *, reconnect_max_s: float = 5.0) -> None:
        super().__init__()
        self._dsn = dsn
        self._reconnect_max_s = reconnect_max_s
        self._conn: object | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._keep_connected(), name="byollm-run-signals")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await self._connected.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._drop()
        self._listeners.clear()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._connected.clear()
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)  # type: ignore[attr-defined]

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        kind, _, run_uid = payload.partition(":")
        self.deliver(kind, run_uid)

    async def _keep_connected(self) -> None:
        import asyncpg  # type: ignore[import-untyped]

        delay = 0.2
        while True:
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                lost = asyncio.Event()
                conn.add_termination_listener(functools.partial(_set_event, lost))
                await conn.add_listener(CHANNEL, self._on_notification)
                self._conn = conn
                self._connected.set()
                delay = 0.2
                self.deliver("queued", "")  # anything queued while we were away: claim it now
                while not lost.is_set() and not conn.is_closed():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(5.0):
                            await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep trying; the slow poll covers the gap
                log.warning("run signals: PostgreSQL LISTEN connection failed (%s); retrying", type(exc).__name__)
            await self._drop()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._reconnect_max_s)

    async def notify(self, kind: str, run_uid: str = "") -> None:
        conn = self._conn
        if conn is None:  # not connected: local listeners still hear it; remote ones poll
            self.deliver(kind, run_uid)
            return
        try:
            async with self._lock:
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{kind}:{run_uid}")  # type: ignore[attr-defined]
        except Exception as exc:
            log.warning("run signals: NOTIFY failed (%s)", type(exc).__name__)
            self.deliver(kind, run_uid)
