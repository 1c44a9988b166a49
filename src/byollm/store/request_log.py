"""The request log and its ledger charges, written off the hot path in small transactions.

Why a writer object: the gateway must never wait for the database to finish a request. ``submit`` only
appends to an in-memory queue; a background task writes what has queued every ``flush_interval_s``
(100 ms by default) or as soon as ``max_batch`` records are waiting, one transaction per batch. A request
row and its ledger charges share that transaction, and both are inserted with INSERT ... ON CONFLICT DO
NOTHING (on ``request_id`` and ``attempt_id``), so a batch that is replayed (after a commit whose
acknowledgement was lost, or by a second writer) never charges twice. The first write of a request id or
an attempt id wins; a later record with the same id is ignored, not merged.

How a batch reaches the database: on a SQLite file the writer keeps its own stdlib ``sqlite3`` connection
(WAL, busy timeout and foreign keys like the store's engine; opened on the first batch, closed by
``close``) and writes each batch - BEGIN IMMEDIATE, one ``executemany`` per table, COMMIT - in one call on
a dedicated thread: one thread hop per batch, where SQLAlchemy on aiosqlite would hop for every statement.
Values are converted exactly as SQLAlchemy binds them on SQLite (naive UTC timestamps as text, credits as
REAL, JSON as text), so the repositories read the rows back unchanged. PostgreSQL (and an in-memory
SQLite database, which a second connection could not see) goes through the store's engine as usual.

Failure policy:

- A batch that fails for a database reason (down, locked, a table missing) is kept, whole, in front of the
  queue and retried with exponential backoff (``2 x flush_interval_s`` doubling to ``MAX_BACKOFF_S``, with
  jitter); the flusher never gives up while the process lives. A write that hangs is cancelled after
  ``write_timeout_s`` and retried the same way.
- A record that can never be written (a value the schema refuses) is rejected, logged by request id and
  counted in ``rejected``, without holding up the others: records are validated before writing, and a
  batch refused by a constraint is retried one record per transaction to isolate the culprit.
- While the database stays away the queue grows up to ``max_pending`` records (default 100,000: at a few
  hundred bytes per record, tens of MB, or minutes of traffic at 1,000 requests/s). Beyond that, new
  records are dropped, logged and counted in ``dropped`` - losing log rows beats exhausting memory.
- ``close`` stops the flusher and writes everything still queued, retrying for up to ``close_timeout_s``;
  only what cannot be written by then is dropped (and counted). A crash loses at most what was queued
  since the last successful flush: one ``flush_interval_s`` window while the database is healthy.

Never a credential: ``RequestRecord`` has no field that could hold a header, key or token; ``content`` (the
prompt and response, kept only for teams that retain content) is scrubbed before writing: fields named
like credentials are replaced and credential-shaped strings (AWS access key ids, byollm tokens, provider
keys) are redacted. Log lines name request ids and exception types only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import operator
import os
import random
import sqlite3
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Protocol, cast

from sqlalchemy import JSON, Numeric, String, Table
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.sql.dml import Insert

from byollm.policy.types import BillingBucket, CredentialSource
from byollm.redact import redact_json
from byollm.store import tables as t
from byollm.store.engine import SQLITE_BUSY_TIMEOUT_MS, Store, sqlite_path
from byollm.store.ledger import CreditBucket
from byollm.store.records import PrincipalType

__all__ = [
    "API_NAMES",
    "DEFAULT_MAX_PENDING",
    "MAX_BACKOFF_S",
    "WRITER_NICE_INCREMENT",
    "AttemptRecord",
    "LedgerCharge",
    "RequestLogWriter",
    "RequestRecord",
]

log = logging.getLogger(__name__)

API_NAMES = frozenset({"anthropic", "openai"})
DEFAULT_MAX_PENDING = 100_000
MAX_BACKOFF_S = 5.0
@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One try along the route plan: which route, and how it ended (``error_code`` None on success)."""

    attempt_id: str
    route: str
    host: str
    model: str
    error_code: str | None
    latency_ms: float


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """Everything byollm remembers about one gateway request. There is deliberately no field for headers,
    keys or tokens; ``credential`` and ``billing`` name the *kind* of credential and who paid."""

    request_id: str
    team_uid: str
    principal_type: str
    principal_uid: str
    token_uid: str | None
    api: str  # "anthropic" | "openai"
    requested_model: str
    served_model: str | None
    route: str | None
    host: str | None
    credential: str | None  # a CredentialSource value
    billing: str | None  # a BillingBucket value
    stream: bool
    status: int
    error_code: str | None
    attempts: tuple[AttemptRecord, ...]
    input_tokens: int
    output_tokens: int
    credits: Decimal
    duration_ms: float
    overhead_ms: float
    started_at: datetime
    auto_reason: str | None = None
    run_uid: str | None = None
    content: Mapping[str, Any] | None = None  # prompt and response, only when the team retains content


@dataclass(frozen=True, slots=True)
class LedgerCharge:
    """One charge against a team's credits. ``attempt_id`` is the idempotency key: one charge per
    attempt, ever, however often it is submitted or replayed."""

    attempt_id: str
    team_uid: str
    request_id: str
    principal_uid: str
    bucket: str  # "ai_credits" | "platform" | "compute"
    model: str
    host: str
    input_tokens: int
    output_tokens: int
    credits: Decimal
    at: datetime
    run_uid: str | None = None


@dataclass(slots=True)
class _Prepared:
    """One submitted record turned into rows, validated; kept until its transaction commits."""

    request_id: str
    request_row: dict[str, Any] | None
    charge_rows: list[dict[str, Any]] = field(default_factory=list)


class _Invalid(ValueError):
    """A record or charge the schema would refuse; the message names the field, never its value."""


_PRINCIPAL_TYPES = frozenset(p.value for p in PrincipalType)
_CREDENTIALS = frozenset(c.value for c in CredentialSource)
_BILLINGS = frozenset(b.value for b in BillingBucket)
_BUCKETS = frozenset(b.value for b in CreditBucket)
_MAX_CREDITS = Decimal(10) ** 12  # Numeric(18, 6)
_CREDIT_QUANTUM = Decimal("0.000001")
_CHUNK = 50  # rows bound per statement on the engine backend
# Work done on the event loop between two yields to it, in seconds. Why a time slice rather than a record count:
# at 50 records a slice took 2-3 ms, and a request arriving meanwhile waited for it (the gateway's p99).
_SLICE_S = 0.0002
_MAX_INT = 2**63 - 1


def _string_limits(table: Table) -> dict[str, int]:
    return {c.name: c.type.length for c in table.columns if isinstance(c.type, String) and c.type.length}


def _check_strings(row: dict[str, Any], limits: Mapping[str, int], required: Sequence[str]) -> None:
    for name in required:
        if not isinstance(row[name], str) or not row[name]:
            raise _Invalid(f"{name} must be a non-empty string")
    for name, limit in limits.items():
        value = row.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise _Invalid(f"{name} must be a string")
        if len(value) > limit:
            raise _Invalid(f"{name} is longer than {limit} characters")


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_INT:
        raise _Invalid(f"{name} must be a non-negative integer")


def _credits(value: object) -> Decimal:
    """Validated and rounded to the column's 6 places here, as PostgreSQL would, so both databases store
    the same amount (SQLite would otherwise keep a float's extra digits)."""
    if not isinstance(value, Decimal) or not value.is_finite() or not 0 <= value < _MAX_CREDITS:
        raise _Invalid("credits must be a finite, non-negative Decimal below 10**12")
    return value.quantize(_CREDIT_QUANTUM, rounding=ROUND_HALF_UP)


def _check_time(name: str, value: object) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise _Invalid(f"{name} must be a timezone-aware datetime")


def _check_ms(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Invalid(f"{name} must be a finite number")
    return float(value)


def _is_poison(exc: BaseException) -> bool:
    """True when the database refused the data itself (retrying cannot help); False when the database
    was unavailable or broken in a way that can pass (down, locked, a table missing, a timeout)."""
    if isinstance(exc, (IntegrityError, DataError, sqlite3.IntegrityError, sqlite3.DataError)):
        return True
    if isinstance(exc, (DBAPIError, sqlite3.Error)):
        return False
    # a value refused while converting or binding
    return isinstance(exc, (StatementError, ValueError, TypeError, OverflowError))


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return type(orig).__name__ if orig is not None else type(exc).__name__


class _Backend(Protocol):
    """Writes one batch in one transaction (all of it, or nothing and an exception)."""

    async def write(self, request_rows: list[dict[str, Any]], charge_rows: list[dict[str, Any]]) -> None: ...

    async def close(self) -> None: ...


class _EngineBackend:
    """Through the store's SQLAlchemy engine: PostgreSQL (asyncpg), and in-memory SQLite."""

    def __init__(self, store: Store, request_table: Table, ledger_table: Table) -> None:
        self._store = store
        self._insert_request = self._insert_ignoring_duplicates(request_table, "request_id")
        self._insert_charge = self._insert_ignoring_duplicates(ledger_table, "attempt_id")

    def _insert_ignoring_duplicates(self, table: Table, key: str) -> Insert:
        if self._store.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing(index_elements=[key])
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing(index_elements=[key])

    async def write(self, request_rows: list[dict[str, Any]], charge_rows: list[dict[str, Any]]) -> None:
        async with self._store.engine.begin() as conn:
            # In chunks within the one transaction: binding parameters runs on the event loop, and a
            # chunk at a time keeps each stall short for the requests sharing it.
            for statement, rows in ((self._insert_request, request_rows), (self._insert_charge, charge_rows)):
                for start in range(0, len(rows), _CHUNK):
                    await conn.execute(statement, rows[start : start + _CHUNK])

    async def close(self) -> None:
        return None


def _sqlite_datetime(value: datetime | None) -> str | None:
    """What ``UTCDateTime`` then SQLAlchemy's SQLite DATETIME bind: naive UTC, 'YYYY-MM-DD HH:MM:SS.ffffff'."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("the store only accepts timezone-aware datetimes")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_float(value: Any) -> float | None:
    """What SQLAlchemy binds for Numeric and Float on SQLite (no native decimal): a float."""
    return None if value is None else float(value)


def _sqlite_json(value: Any) -> str:
    """What SQLAlchemy binds for JSON on SQLite: ``json.dumps`` with its defaults; None becomes 'null'."""
    return json.dumps(value)


def _sqlite_insert(table: Table, key: str) -> tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]]]:
    """INSERT ... ON CONFLICT (key) DO NOTHING for every column of ``table``, compiled by SQLAlchemy for
    SQLite with positional parameters, and the function turning one prepared row into those parameters,
    each converted for its column type as SQLAlchemy would on SQLite."""
    from sqlalchemy.dialects import sqlite

    statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=[key])
    compiled = statement.compile(
        dialect=sqlite.dialect(paramstyle="qmark"), column_keys=[column.key for column in table.columns]
    )
    names = list(compiled.positiontup or ())
    converters: list[tuple[int, Callable[[Any], Any]]] = []
    for index, name in enumerate(names):
        column_type = table.c[name].type
        if isinstance(column_type, t.UTCDateTime):
            converters.append((index, _sqlite_datetime))
        elif isinstance(column_type, JSON):
            converters.append((index, _sqlite_json))
        elif isinstance(column_type, Numeric):  # Numeric and Float
            converters.append((index, _sqlite_float))
    values = operator.itemgetter(*names)

    def parameters(row: dict[str, Any]) -> tuple[Any, ...]:
        params = list(values(row))
        for index, convert in converters:
            params[index] = convert(params[index])
        return tuple(params)

    return str(compiled), parameters


# How much nicer than the serving thread the writer's thread runs (Linux nice steps: +10 is about a tenth of
# the CPU weight). Why: on a core the event loop shares with it, a batch (a few ms of SQLite work every flush
# window) delayed every request that arrived meanwhile, by as much as the batch took; that was most of the
# gateway's p99 at concurrency 1 (bench/gateway_overhead.py: gateway - direct p99 2.9 -> 1.8 ms on the direct
# path). A nicer thread still gets its share when the core is saturated, so batches only grow, never stop.
WRITER_NICE_INCREMENT = 10


def _defer_to_requests() -> None:
    """Make the calling thread (the writer's) yield the CPU to the serving threads. On Linux the nice value
    belongs to each thread, so this leaves the event loop's thread as it was; elsewhere it does nothing."""
    if sys.platform != "linux":
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):  # a sandbox may refuse it; the writer works the same either way
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + WRITER_NICE_INCREMENT))


class _Abandoned(Exception):
    """The caller stopped waiting for this write; it is rolled back, never committed late."""


class _SqliteBackend:
    """A SQLite file through the writer's own ``sqlite3`` connection, one thread hop per batch.

    The connection lives on a dedicated single-thread executor, so batches run strictly one after another
    even when a timed-out write is still finishing. A write whose caller gave up (``write_timeout_s``, or a
    cancelled flusher) is abandoned: its running statement is interrupted, and the thread rolls it back at
    the next step instead of committing it behind the writer's back (only a COMMIT already under way can
    still land, which the batch's retry then finds as duplicates and skips).
    """

    def __init__(self, path: Path, request_table: Table, ledger_table: Table) -> None:
        self._path = path
        self._request_sql, self._request_params = _sqlite_insert(request_table, "request_id")
        self._charge_sql, self._charge_params = _sqlite_insert(ledger_table, "attempt_id")
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def write(self, request_rows: list[dict[str, Any]], charge_rows: list[dict[str, Any]]) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="byollm-request-log",
                                                initializer=_defer_to_requests)
        # Converted here, a time slice at a time: on the writer's thread the conversion would hold the GIL for
        # whole batches, and the event loop would wait for it (up to the 5 ms switch interval each time).
        request_params: list[tuple[Any, ...]] = []
        charge_params: list[tuple[Any, ...]] = []
        for convert, rows, params in (
            (self._request_params, request_rows, request_params),
            (self._charge_params, charge_rows, charge_params),
        ):
            slice_ends = time.perf_counter() + _SLICE_S
            for row in rows:
                if time.perf_counter() > slice_ends:
                    await asyncio.sleep(0)
                    slice_ends = time.perf_counter() + _SLICE_S
                params.append(convert(row))
        loop = asyncio.get_running_loop()
        abandoned = threading.Event()
        try:
            await loop.run_in_executor(self._executor, self._write_batch, request_params, charge_params, abandoned)
        except asyncio.CancelledError:
            abandoned.set()
            conn = self._conn
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.interrupt()  # abort a hung statement; its transaction rolls back in the thread
            raise

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            self._disconnect()
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._disconnect)
        finally:
            executor.shutdown(wait=False)

    # --- on the writer's thread ---

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _write_batch(
        self,
        request_params: list[tuple[Any, ...]],
        charge_params: list[tuple[Any, ...]],
        abandoned: threading.Event,
    ) -> None:
        if abandoned.is_set():
            return  # given up on while it waited behind an earlier write
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in ((self._request_sql, request_params), (self._charge_sql, charge_params)):
                    if abandoned.is_set():
                        raise _Abandoned
                    if params:
                        conn.executemany(sql, params)
                if abandoned.is_set():
                    raise _Abandoned
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            if not _is_poison(exc):
                self._disconnect()  # a fresh connection for the retry, whatever state this one is in
            raise


class RequestLogWriter:
    """Batches request rows and their ledger charges into the database off the caller's path.

    Lifecycle: ``await start()`` in the serving loop, ``submit`` from request handlers, ``await close()``
    at shutdown. ``flush`` writes everything now (tests, and ``close``). Counters for metrics:
    ``written`` (request rows committed), ``charges_written``, ``batches`` (transactions committed),
    ``failed_batches``, ``rejected`` (records or charges the schema refuses), ``dropped`` (lost to the
    ``max_pending`` cap or to a shutdown that could not reach the database), ``redacted`` (records whose
    content needed scrubbing) and ``pending``. One event loop; not thread-safe.
    """

    def __init__(
        self,
        store: Store,
        *,
        flush_interval_s: float = 0.1,
        max_batch: int = 500,
        max_pending: int = DEFAULT_MAX_PENDING,
        close_timeout_s: float = 5.0,
        write_timeout_s: float = 30.0,
    ) -> None:
        if flush_interval_s <= 0 or max_batch < 1 or max_pending < max_batch:
            raise ValueError("need flush_interval_s > 0, max_batch >= 1 and max_pending >= max_batch")
        self._store = store
        self._interval = flush_interval_s
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._close_timeout_s = close_timeout_s
        self._write_timeout_s = write_timeout_s
        request_table = cast(Table, t.RequestLog.__table__)
        ledger_table = cast(Table, t.LedgerEntry.__table__)
        self._request_limits = _string_limits(request_table)
        self._charge_limits = _string_limits(ledger_table)
        path = sqlite_path(store.engine.url) if store.dialect == "sqlite" else None
        self._backend: _Backend = (
            _SqliteBackend(path, request_table, ledger_table)
            if path is not None and not store.engine.url.query.get("uri")
            else _EngineBackend(store, request_table, ledger_table)
        )
        self._queue: deque[tuple[RequestRecord, tuple[LedgerCharge, ...]]] = deque()
        self._retry: deque[_Prepared] = deque()  # the batch being written, or that failed: written first
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._failures = 0  # consecutive failed batches
        self._retry_at = 0.0  # loop time before which the flusher does not retry
        self._dropping = False  # inside an episode of drops (logged once per episode)
        self.written = 0
        self.charges_written = 0
        self.batches = 0
        self.failed_batches = 0
        self.rejected = 0
        self.dropped = 0
        self.redacted = 0

    @property
    def pending(self) -> int:
        """Records submitted and not yet committed (including a batch waiting to be retried)."""
        return len(self._queue) + len(self._retry)

    async def start(self) -> None:
        """Start the background flusher in the running loop (idempotent)."""
        if self._closing:
            raise RuntimeError("this request log writer is closed")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="byollm-request-log")

    def submit(self, record: RequestRecord, charges: Sequence[LedgerCharge] = ()) -> None:
        """Queue a request record and its charges for the next batch. Never blocks, never raises."""
        try:
            if self._closed:
                self._drop(record.request_id, "the writer is closed")
                return
            if self.pending >= self._max_pending:
                self._drop(record.request_id, f"{self.pending} records are waiting for the database")
                return
            self._queue.append((record, tuple(charges)))
            if len(self._queue) >= self._max_batch and self._failures == 0:
                self._wake.set()
        except Exception as exc:  # a request must never fail because it could not be logged
            self.dropped += 1
            log.error("request log: could not queue a record (%s)", type(exc).__name__)

    def _drop(self, request_id: str, why: str) -> None:
        self.dropped += 1
        if not self._dropping:
            self._dropping = True
            log.error("request log: dropping request %s and its charges (%s); more drops are counted", request_id, why)

    async def flush(self) -> int:
        """Write everything queued now, one transaction per ``max_batch`` records; return the request
        rows written. Stops at the first batch the database cannot take (it stays queued for a retry)."""
        written = 0
        async with self._lock:
            while True:
                if not self._retry:
                    if not self._queue:
                        break
                    await self._prepare_next_batch()
                    continue
                try:
                    written += await self._write_retry_batch()
                except Exception as exc:
                    self._note_failure(exc)
                    break
                self._note_success()
        return written

    async def close(self) -> None:
        """Stop the flusher and write everything submitted so far (retrying up to ``close_timeout_s``)."""
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
            self._task = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._close_timeout_s
        while True:
            await self.flush()
            remaining = deadline - loop.time()
            if not self.pending or remaining <= 0:
                break
            await asyncio.sleep(min(self._backoff(), remaining))
        self._closed = True
        if self.pending:
            lost = self.pending
            self.dropped += lost
            self._queue.clear()
            self._retry.clear()
            log.error("request log: the database stayed unavailable; %d records were not written", lost)
        try:
            async with asyncio.timeout(self._write_timeout_s):
                await self._backend.close()
        except Exception as exc:
            log.warning("request log: could not close the database connection (%s)", _reason(exc))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            timeout = self._interval if self._failures == 0 else max(self._retry_at - loop.time(), 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            if self._closing:
                break
            if self._failures and loop.time() < self._retry_at:
                continue
            try:
                await self.flush()
            except Exception as exc:  # pragma: no cover - flush handles database errors; keep the loop alive
                log.error("request log: flusher error (%s)", type(exc).__name__)

    async def _prepare_next_batch(self) -> None:
        """Move up to ``max_batch`` records from the queue into ``_retry``, validated and converted.

        Each record moves in one synchronous step (so a cancellation cannot lose it), and the loop yields
        after every ``_SLICE_S`` of work so a large batch never stalls the requests sharing this event loop.
        """
        slice_ends = time.perf_counter() + _SLICE_S
        for _ in range(min(self._max_batch, len(self._queue))):
            if time.perf_counter() > slice_ends:
                await asyncio.sleep(0)
                slice_ends = time.perf_counter() + _SLICE_S
            if not self._queue:
                break
            record, charges = self._queue.popleft()
            prepared = self._prepare(record, charges)
            if prepared is not None:
                self._retry.append(prepared)

    def _prepare(self, record: RequestRecord, charges: Sequence[LedgerCharge]) -> _Prepared | None:
        """Validate and convert; a bad record is rejected without taking its valid charges with it."""
        request_id = str(getattr(record, "request_id", "?"))[:64]
        try:
            request_row: dict[str, Any] | None = self._request_row(record)
        except (_Invalid, AttributeError, TypeError) as exc:
            self._reject(request_id, "request", exc)
            request_row = None
        item = _Prepared(request_id=request_id, request_row=request_row)
        for charge in charges:
            try:
                item.charge_rows.append(self._charge_row(charge))
            except (_Invalid, AttributeError, TypeError) as exc:
                self._reject(request_id, "charge", exc)
        return item if item.request_row is not None or item.charge_rows else None

    def _reject(self, request_id: str, what: str, exc: BaseException) -> None:
        self.rejected += 1
        detail = str(exc) if isinstance(exc, _Invalid) else type(exc).__name__
        log.error("request log: rejected a %s of request %s: %s", what, request_id, detail)

    def _request_row(self, record: RequestRecord) -> dict[str, Any]:
        row: dict[str, Any] = {
            "request_id": record.request_id,
            "team_uid": record.team_uid,
            "principal_type": record.principal_type,
            "principal_uid": record.principal_uid,
            "token_uid": record.token_uid,
            "run_uid": record.run_uid,
            "api": record.api,
            "requested_model": record.requested_model,
            "served_model": record.served_model,
            "route": record.route,
            "host": record.host,
            "credential": record.credential,
            "billing": record.billing,
            "auto_reason": record.auto_reason[:1024] if isinstance(record.auto_reason, str) else record.auto_reason,
            "stream": record.stream,
            "status": record.status,
            "error_code": record.error_code,
            "attempts": [self._attempt(a) for a in record.attempts],
            "input_tokens": record.input_tokens,
            "output_tokens": record.output_tokens,
            "credits": record.credits,
            "duration_ms": _check_ms("duration_ms", record.duration_ms),
            "overhead_ms": _check_ms("overhead_ms", record.overhead_ms),
            "started_at": record.started_at,
            "content": None,
        }
        _check_strings(
            row, self._request_limits, ("request_id", "team_uid", "principal_type", "principal_uid", "requested_model")
        )
        if row["api"] not in API_NAMES:
            raise _Invalid("api must be 'anthropic' or 'openai'")
        if row["principal_type"] not in _PRINCIPAL_TYPES:
            raise _Invalid("principal_type must be 'user' or 'agent'")
        if row["credential"] is not None and row["credential"] not in _CREDENTIALS:
            raise _Invalid("credential must be a CredentialSource value")
        if row["billing"] is not None and row["billing"] not in _BILLINGS:
            raise _Invalid("billing must be a BillingBucket value")
        if not isinstance(row["stream"], bool):
            raise _Invalid("stream must be a bool")
        if isinstance(row["status"], bool) or not isinstance(row["status"], int) or not 0 <= row["status"] <= 999:
            raise _Invalid("status must be an HTTP status code")
        _check_count("input_tokens", row["input_tokens"])
        _check_count("output_tokens", row["output_tokens"])
        row["credits"] = _credits(row["credits"])
        _check_time("started_at", row["started_at"])
        if record.content is not None:
            row["content"] = self._content(record.request_id, record.content)
        return row

    def _attempt(self, attempt: AttemptRecord) -> dict[str, Any]:
        return {
            "attempt_id": str(attempt.attempt_id),
            "route": str(attempt.route),
            "host": str(attempt.host),
            "model": str(attempt.model),
            "error_code": None if attempt.error_code is None else str(attempt.error_code),
            "latency_ms": _check_ms("latency_ms", attempt.latency_ms),
        }

    def _content(self, request_id: str, content: Mapping[str, Any]) -> dict[str, Any] | None:
        try:
            scrubbed, redacted = redact_json(content)
        except (TypeError, RecursionError) as exc:
            log.warning("request log: content of request %s not kept (%s)", request_id, type(exc).__name__)
            return None
        if redacted:
            self.redacted += 1
            log.warning("request log: redacted credential-like values in the content of request %s", request_id)
        return scrubbed

    def _charge_row(self, charge: LedgerCharge) -> dict[str, Any]:
        row: dict[str, Any] = {
            "attempt_id": charge.attempt_id,
            "team_uid": charge.team_uid,
            "request_id": charge.request_id,
            "principal_uid": charge.principal_uid,
            "run_uid": charge.run_uid,
            "bucket": charge.bucket,
            "model": charge.model,
            "host": charge.host,
            "input_tokens": charge.input_tokens,
            "output_tokens": charge.output_tokens,
            "credits": charge.credits,
            "at": charge.at,
        }
        _check_strings(
            row, self._charge_limits, ("attempt_id", "team_uid", "request_id", "principal_uid", "model", "host")
        )
        if row["bucket"] not in _BUCKETS:
            raise _Invalid("bucket must be 'ai_credits', 'platform' or 'compute'")
        _check_count("input_tokens", row["input_tokens"])
        _check_count("output_tokens", row["output_tokens"])
        row["credits"] = _credits(row["credits"])
        _check_time("at", row["at"])
        return row

    async def _write_retry_batch(self) -> int:
        """Commit ``self._retry`` in one transaction; items leave it only once committed (or rejected),
        so an error or a cancellation at any point keeps the rest for the next try."""
        try:
            written = await self._write(list(self._retry))
        except Exception as exc:
            if not _is_poison(exc):
                raise
            return await self._write_one_by_one()
        self._retry.clear()
        return written

    async def _write_one_by_one(self) -> int:
        written = 0
        while self._retry:
            item = self._retry[0]
            try:
                written += await self._write([item])
            except Exception as exc:
                if not _is_poison(exc):
                    raise
                self._reject(item.request_id, "request and its charges", exc)
            self._retry.popleft()
        return written

    async def _write(self, items: Sequence[_Prepared]) -> int:
        request_rows = [item.request_row for item in items if item.request_row is not None]
        charge_rows = [row for item in items for row in item.charge_rows]
        async with asyncio.timeout(self._write_timeout_s):
            await self._backend.write(request_rows, charge_rows)
        self.written += len(request_rows)
        self.charges_written += len(charge_rows)
        self.batches += 1
        return len(request_rows)

    def _backoff(self) -> float:
        base = max(self._interval, 0.05) * float(2 ** min(self._failures, 16))
        return min(base, MAX_BACKOFF_S) * random.uniform(0.8, 1.2)

    def _note_failure(self, exc: BaseException) -> None:
        self.failed_batches += 1
        self._failures += 1
        delay = self._backoff()
        self._retry_at = asyncio.get_running_loop().time() + delay
        log.warning(
            "request log: could not write a batch of %d records (%s); retrying in %.1f s",
            len(self._retry),
            _reason(exc),
            delay,
        )

    def _note_success(self) -> None:
        if self._failures:
            log.info("request log: writing again after %d failed attempts", self._failures)
        self._failures = 0
        self._dropping = False
