"""The request-log writer: batching, the flush interval, clean shutdown, idempotent charges, retries while
the database is away, the pending cap, rejected records, and that no credential can reach a column.

"The database is away" is made real by renaming the tables under the writer (both databases refuse the
INSERT exactly as they would for a missing schema) and renaming them back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, func, inspect, select, text
from sqlalchemy.engine import Connection

from byollm.redact import redact_json
from byollm.settings import Settings
from byollm.store import Store, create_engine
from byollm.store import request_log as request_log_module
from byollm.store import tables as t
from byollm.store.engine import SQLITE_BUSY_TIMEOUT_MS, sqlite_path
from byollm.store.ledger import ai_credits_used
from byollm.store.migrate import alembic_config, upgrade
from byollm.store.request_log import (
    AttemptRecord,
    LedgerCharge,
    RequestLogWriter,
    RequestRecord,
)
from byollm.store.usage import list_requests

MakeRequest = Callable[..., RequestRecord]
MakeCharge = Callable[..., LedgerCharge]
TEAM = "T" * 22


async def wait_for(condition: Callable[[], bool | Awaitable[bool]], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def count_rows(store: Store, table: type[t.Base]) -> int:
    async with store.session(readonly=True) as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def rename(store: Store, old: str, new: str) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


def count_commits(store: Store, writer: RequestLogWriter) -> list[int]:
    """Transactions the writer commits: on the engine (PostgreSQL), or on the writer's own sqlite3
    connection (a SQLite file; call before its first write, which opens that connection)."""
    commits = [0]
    backend = writer._backend
    if isinstance(backend, request_log_module._SqliteBackend):
        connect = backend._connect

        def traced_connect() -> sqlite3.Connection:
            conn = connect()
            conn.set_trace_callback(lambda sql: commits.__setitem__(0, commits[0] + (sql == "COMMIT")))
            return conn

        backend._connect = traced_connect  # type: ignore[method-assign]
        return commits

    @event.listens_for(store.engine.sync_engine, "commit")
    def _on_commit(_conn: Any) -> None:
        commits[0] += 1

    return commits


async def test_a_record_and_its_charge_round_trip(
    store: Store, make_request: MakeRequest, make_charge: MakeCharge
) -> None:
    failed = AttemptRecord(
        attempt_id="att_1",
        route="bedrock:us.anthropic.claude",
        host="bedrock",
        model="claude-sonnet-4-5",
        error_code="throttled",
        latency_ms=3.25,
    )
    served = AttemptRecord(
        attempt_id="att_2",
        route="anthropic:claude-sonnet-4-5",
        host="anthropic",
        model="claude-sonnet-4-5",
        error_code=None,
        latency_ms=40.0,
    )
    record = make_request(
        attempts=(failed, served),
        stream=True,
        credits=Decimal("1.234567"),
        auto_reason="cheapest that fits",
        run_uid="R" * 22,
        content={"request": {"messages": [{"role": "user", "content": "hi"}]}},
    )
    writer = RequestLogWriter(store)
    writer.submit(record, [make_charge(record)])
    assert writer.pending == 1
    assert await writer.flush() == 1
    assert (writer.pending, writer.written, writer.charges_written, writer.batches) == (0, 1, 1, 1)

    async with store.session(readonly=True) as session:
        [stored] = await list_requests(session, team_uid=TEAM)
        used = await ai_credits_used(session, team_uid=TEAM, period="2026-11")
    assert stored == record
    assert used == Decimal("1.234567")


async def test_many_submits_are_written_in_few_transactions(store: Store, make_request: MakeRequest) -> None:
    writer = RequestLogWriter(store, max_batch=200)
    for _ in range(1000):
        writer.submit(make_request())
    commits = count_commits(store, writer)
    assert await writer.flush() == 1000
    assert commits[0] == 5
    assert writer.batches == 5
    assert await count_rows(store, t.RequestLog) == 1000


async def test_the_flusher_writes_within_the_interval_without_being_asked(
    store: Store, make_request: MakeRequest
) -> None:
    writer = RequestLogWriter(store, flush_interval_s=0.05)
    await writer.start()
    commits = count_commits(store, writer)
    try:
        started = time.monotonic()
        for _ in range(50):
            writer.submit(make_request())
        assert time.monotonic() - started < 0.05  # submit never touches the database
        await wait_for(lambda: writer.pending == 0, within=3.0)
        assert time.monotonic() - started < 1.5  # 0.05 s interval; generous for a loaded CI machine
        assert await count_rows(store, t.RequestLog) == 50
        assert commits[0] <= 2  # one batch, or two if the tick fell between the submits
    finally:
        await writer.close()


async def test_a_full_batch_is_written_without_waiting_for_the_interval(
    store: Store, make_request: MakeRequest
) -> None:
    writer = RequestLogWriter(store, flush_interval_s=30.0, max_batch=40)
    await writer.start()
    try:
        for _ in range(40):
            writer.submit(make_request())
        await wait_for(lambda: writer.pending == 0, within=3.0)
        assert writer.batches == 1
    finally:
        await writer.close()


async def test_close_writes_everything_submitted(
    store: Store, make_request: MakeRequest, make_charge: MakeCharge
) -> None:
    writer = RequestLogWriter(store, flush_interval_s=30.0, max_batch=100)
    await writer.start()
    for _ in range(1234):
        record = make_request()
        writer.submit(record, [make_charge(record)])
    await writer.close()
    assert writer.pending == 0
    assert await count_rows(store, t.RequestLog) == 1234
    assert await count_rows(store, t.LedgerEntry) == 1234

    writer.submit(make_request())  # after close: counted, never raised
    assert writer.dropped == 1
    await writer.close()  # idempotent


async def test_a_crash_loses_at_most_the_unflushed_window(store: Store, make_request: MakeRequest) -> None:
    writer = RequestLogWriter(store, flush_interval_s=0.05)
    await writer.start()
    for _ in range(10):
        writer.submit(make_request())
    await wait_for(lambda: writer.pending == 0)
    assert writer._task is not None
    writer._task.cancel()  # the process dies: no close(), the flusher just stops
    await asyncio.gather(writer._task, return_exceptions=True)
    writer.submit(make_request())
    assert await count_rows(store, t.RequestLog) == 10  # only the unflushed record is missing


async def test_the_same_attempt_is_charged_once_across_replays_and_writers(
    store: Store, make_request: MakeRequest, make_charge: MakeCharge
) -> None:
    record = make_request(credits=Decimal("2.5"))
    charge = make_charge(record)
    first, second = RequestLogWriter(store), RequestLogWriter(store)
    first.submit(record, [charge])
    first.submit(record, [charge])  # a duplicate within one batch
    await first.flush()
    first.submit(record, [charge])  # a replay in a later batch
    await first.flush()
    second.submit(record, [charge])  # another replica replaying the same batch
    await second.flush()
    assert first.failed_batches == second.failed_batches == 0

    assert await count_rows(store, t.RequestLog) == 1
    assert await count_rows(store, t.LedgerEntry) == 1
    async with store.session(readonly=True) as session:
        assert await ai_credits_used(session, team_uid=TEAM, period="2026-11") == Decimal("2.5")


async def test_a_failed_batch_is_kept_and_retried_when_the_database_returns(
    store: Store, make_request: MakeRequest, make_charge: MakeCharge
) -> None:
    writer = RequestLogWriter(store, flush_interval_s=0.02)
    await rename(store, "credit_ledger", "credit_ledger_away")
    try:
        records = [make_request() for _ in range(20)]
        for record in records:
            writer.submit(record, [make_charge(record)])
        assert await writer.flush() == 0
        assert writer.failed_batches == 1
        assert writer.pending == 20
        assert await count_rows(store, t.RequestLog) == 0  # the request rows rolled back with the charges

        await writer.start()
        await asyncio.sleep(0.2)  # the flusher keeps retrying with backoff while the table is away
        assert writer.failed_batches >= 2
        assert writer.pending == 20
    finally:
        await rename(store, "credit_ledger_away", "credit_ledger")
    await wait_for(lambda: writer.pending == 0, within=8.0)
    await writer.close()
    assert writer.dropped == 0
    assert await count_rows(store, t.RequestLog) == 20
    assert await count_rows(store, t.LedgerEntry) == 20


async def test_pending_records_are_capped_while_the_database_is_away(store: Store, make_request: MakeRequest) -> None:
    writer = RequestLogWriter(store, max_batch=10, max_pending=30, close_timeout_s=0.2)
    await rename(store, "request_log", "request_log_away")
    try:
        for _ in range(25):
            writer.submit(make_request())
        await writer.flush()  # fails: the first batch of 10 waits for a retry, 15 more queued
        for _ in range(25):
            writer.submit(make_request())
        assert writer.pending == 30
        assert writer.dropped == 20
        await writer.close()  # cannot reach the table within close_timeout_s: counted as lost
        assert writer.pending == 0
        assert writer.dropped == 50
    finally:
        await rename(store, "request_log_away", "request_log")
    assert await count_rows(store, t.RequestLog) == 0


async def test_invalid_records_are_rejected_without_blocking_the_rest(
    store: Store, make_request: MakeRequest, make_charge: MakeCharge
) -> None:
    writer = RequestLogWriter(store)
    bad = make_request(api="grpc")
    writer.submit(bad, [make_charge(bad), make_charge(bad, attempt_id="x", bucket="gold")])
    writer.submit(make_request(started_at=bad.started_at.replace(tzinfo=None)))
    writer.submit(make_request(requested_model="m" * 201))
    writer.submit(make_request(credits=Decimal("NaN")))
    writer.submit(make_request(input_tokens=-1))
    good = make_request()
    writer.submit(good)
    assert await writer.flush() == 1
    assert writer.rejected == 6
    assert writer.failed_batches == 0
    async with store.session(readonly=True) as session:
        assert [r.request_id for r in await list_requests(session, team_uid=TEAM)] == [good.request_id]
        # the invalid request's valid charge is still recorded: money is never lost with a bad log row
        assert await ai_credits_used(session, team_uid=TEAM, period="2026-11") == bad.credits


async def test_a_row_the_database_refuses_is_isolated_from_its_batch(
    store: Store, make_request: MakeRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Let a value past validation that the CHECK constraint refuses, as a future schema mismatch would.
    monkeypatch.setattr(request_log_module, "API_NAMES", frozenset({"anthropic", "openai", "grpc"}))
    writer = RequestLogWriter(store)
    records = [make_request() for _ in range(3)]
    writer.submit(records[0])
    writer.submit(make_request(api="grpc"))
    writer.submit(records[1])
    writer.submit(records[2])
    assert await writer.flush() == 3
    assert (writer.rejected, writer.failed_batches, writer.pending) == (1, 0, 0)
    assert await count_rows(store, t.RequestLog) == 3


async def test_submit_never_raises(store: Store) -> None:
    writer = RequestLogWriter(store)
    writer.submit(object(), [])  # type: ignore[arg-type]
    writer.submit(None, 5)  # type: ignore[arg-type]
    assert await writer.flush() == 0
    assert writer.rejected + writer.dropped == 2


CANARY_SECRET = "CanarySecretKeyABCDEFGHIJKLMNOPQRSTUVWXYZ01"
CANARY_ACCESS_KEY = "ASIACANARY0123456789"
CANARY_SESSION = "CanarySessionToken/with+base64=="
CANARY_BYOLLM = "byo_" + "C" * 43
CANARY_PROVIDER = "sk-ant-canary-0123456789abcdefghij"
CANARIES = (CANARY_SECRET, CANARY_ACCESS_KEY, CANARY_SESSION, CANARY_BYOLLM, CANARY_PROVIDER)


def test_no_record_type_has_a_field_for_headers_or_credentials() -> None:
    allowed = {
        RequestRecord: {
            "request_id",
            "team_uid",
            "principal_type",
            "principal_uid",
            "token_uid",
            "api",
            "requested_model",
            "served_model",
            "route",
            "host",
            "credential",
            "billing",
            "stream",
            "status",
            "error_code",
            "attempts",
            "input_tokens",
            "output_tokens",
            "credits",
            "duration_ms",
            "overhead_ms",
            "started_at",
            "auto_reason",
            "run_uid",
            "content",
        },
        AttemptRecord: {"attempt_id", "route", "host", "model", "error_code", "latency_ms"},
        LedgerCharge: {
            "attempt_id",
            "team_uid",
            "request_id",
            "principal_uid",
            "bucket",
            "model",
            "host",
            "input_tokens",
            "output_tokens",
            "credits",
            "at",
            "run_uid",
        },
    }
    for cls, names in allowed.items():
        assert {f.name for f in dataclasses.fields(cls)} == names
    assert {c.name for c in t.RequestLog.__table__.columns} == allowed[RequestRecord] - {"attempts"} | {"attempts"}
    assert {c.name for c in t.LedgerEntry.__table__.columns} == allowed[LedgerCharge]
    with pytest.raises(TypeError):
        RequestRecord(headers={"x-api-key": CANARY_BYOLLM})  # type: ignore[call-arg]


def test_scrub_content_redacts_credential_fields_and_shapes() -> None:
    content = {
        "request": {
            "headers": {"authorization": f"Bearer {CANARY_BYOLLM}"},
            "X-Amz-Security-Token": CANARY_SESSION,
            "messages": [{"role": "user", "content": f"my key is {CANARY_ACCESS_KEY} and {CANARY_PROVIDER}"}],
            "max_tokens": 10,
        }
    }
    scrubbed, redacted = redact_json(content)
    assert redacted
    assert not any(canary in repr(scrubbed) for canary in CANARIES)
    assert scrubbed["request"]["max_tokens"] == 10
    assert scrubbed["request"]["messages"][0]["content"] == "my key is [redacted] and [redacted]"
    assert redact_json({"response": {"content": [{"type": "text", "text": "hello"}]}}) == (
        {"response": {"content": [{"type": "text", "text": "hello"}]}},
        False,
    )
    with pytest.raises(TypeError):
        redact_json({"blob": b"bytes"})


async def test_canary_credentials_in_a_request_reach_no_column(
    store: Store, make_request: MakeRequest, make_charge: MakeCharge
) -> None:
    # What a gateway handler holds for one request: headers with every kind of credential, and a body.
    headers = {
        "x-api-key": CANARY_BYOLLM,
        "authorization": f"Bearer {CANARY_BYOLLM}",
        "x-byollm-aws-access-key-id": CANARY_ACCESS_KEY,
        "x-byollm-aws-secret-access-key": CANARY_SECRET,
        "x-byollm-aws-session-token": CANARY_SESSION,
        "x-byollm-provider-key": CANARY_PROVIDER,
    }
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": f"echo {CANARY_ACCESS_KEY}"}]}
    fields = {f.name for f in dataclasses.fields(RequestRecord)}
    assert not fields & {name.replace("-", "_") for name in headers} and "headers" not in fields
    # A careless caller retaining content puts the headers next to the body: the writer scrubs them.
    record = make_request(content={"request": body, "headers": headers, **headers}, token_uid="K" * 22)
    writer = RequestLogWriter(store)
    writer.submit(record, [make_charge(record)])
    assert await writer.flush() == 1
    assert writer.redacted == 1

    dump: list[str] = []
    async with store.engine.connect() as conn:
        for table in t.Base.metadata.sorted_tables:
            for row in await conn.execute(select(table)):
                dump.append(repr(tuple(row)))
    text_dump = "\n".join(dump)
    assert record.request_id in text_dump
    for canary in CANARIES:
        assert canary not in text_dump


async def test_records_older_than_a_day_still_use_their_own_time(store: Store, make_request: MakeRequest) -> None:
    writer = RequestLogWriter(store)
    old = make_request(started_at=make_request().started_at - timedelta(days=40))
    writer.submit(old)
    await writer.flush()
    async with store.session(readonly=True) as session:
        [stored] = await list_requests(session, team_uid=TEAM)
    assert stored.started_at == old.started_at


def sqlite_file(store: Store) -> str:
    if store.dialect != "sqlite":
        pytest.skip("the writer's own sqlite3 connection: SQLite only")
    path = sqlite_path(store.engine.url)
    assert path is not None
    return str(path)


def raw_rows(path: str, table: str, key: str, unlike: str) -> dict[str, tuple[Any, ...]]:
    """Every stored value of ``table`` with its SQLite storage class, by key; the key and the ``unlike``
    column (which differ between the rows compared) left out."""
    conn = sqlite3.connect(path)
    try:
        names = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
        others = [name for name in names if name not in (key, unlike)]
        columns = ", ".join(f"{name}, typeof({name})" for name in others)
        return {row[0]: row[1:] for row in conn.execute(f"SELECT {key}, {columns} FROM {table}")}
    finally:
        conn.close()


async def test_sqlite_rows_are_stored_exactly_as_through_the_engine(
    store: Store, make_request: MakeRequest, make_charge: MakeCharge
) -> None:
    path = sqlite_file(store)
    zone = timezone(timedelta(hours=-5, minutes=-30))
    attempts = (
        AttemptRecord("att_a", "bedrock:x", "bedrock", "m", "throttled", 3),
        AttemptRecord("att_b", 'anthropic:"q"', "anthropic", "m", None, 40.25),
    )
    variants: list[dict[str, Any]] = [
        {},
        {
            "attempts": attempts,
            "stream": True,
            "status": 502,
            "error_code": "boom",
            "credits": Decimal("1.2345675"),
            "started_at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=zone),
            "auto_reason": "r" * 2000,
            "run_uid": "R" * 22,
            "token_uid": None,
            "served_model": None,
            "route": None,
            "host": None,
            "credential": None,
            "billing": None,
            "content": {"text": "é \u2028 \U0001f600", "n": [1, 2.5, None, True], "x": {"big": 1e300, "z": -0.0}},
        },
        {"credits": Decimal(0), "input_tokens": 2**62, "output_tokens": 0, "duration_ms": 1, "content": {}},
    ]
    own, through_engine = RequestLogWriter(store), RequestLogWriter(store)
    assert isinstance(own._backend, request_log_module._SqliteBackend)
    request_table, ledger_table = t.RequestLog.__table__, t.LedgerEntry.__table__
    through_engine._backend = request_log_module._EngineBackend(store, request_table, ledger_table)  # type: ignore[arg-type]
    for index, overrides in enumerate(variants):
        for prefix, writer in (("own", own), ("engine", through_engine)):
            record = make_request(f"{prefix}{index}", **{"attempts": attempts[1:], **overrides})
            charge = make_charge(record, attempt_id=f"{prefix}{index}", credits=Decimal("3.0000005"), run_uid="Q" * 22)
            writer.submit(record, [charge])
    assert await own.flush() == await through_engine.flush() == len(variants)
    await own.close()
    await through_engine.close()

    for table, key, unlike in (
        ("request_log", "request_id", "request_id"),
        ("credit_ledger", "attempt_id", "request_id"),
    ):
        rows = raw_rows(path, table, key, unlike)
        for index in range(len(variants)):
            assert rows[f"own{index}"] == rows[f"engine{index}"]
    async with store.session(readonly=True) as session:
        stored = {r.request_id: r for r in await list_requests(session, team_uid=TEAM)}
    for index in range(len(variants)):
        assert dataclasses.replace(stored[f"own{index}"], request_id="x") == dataclasses.replace(
            stored[f"engine{index}"], request_id="x"
        )


async def test_the_sqlite_connection_is_set_up_like_the_store_and_closed_with_the_writer(
    store: Store, make_request: MakeRequest
) -> None:
    sqlite_file(store)
    writer = RequestLogWriter(store)
    backend = writer._backend
    assert isinstance(backend, request_log_module._SqliteBackend)
    assert backend._conn is None  # opened lazily
    writer.submit(make_request())
    await writer.flush()
    conn = backend._conn
    assert conn is not None
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert conn.execute("PRAGMA busy_timeout").fetchone() == (SQLITE_BUSY_TIMEOUT_MS,)
    await writer.close()
    assert backend._conn is None and backend._executor is None
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")


async def test_a_timed_out_sqlite_write_is_rolled_back_then_retried(store: Store, make_request: MakeRequest) -> None:
    path = sqlite_file(store)
    writer = RequestLogWriter(store, write_timeout_s=0.2)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database past the write timeout
        for _ in range(5):
            writer.submit(make_request())
        assert await writer.flush() == 0
        assert (writer.failed_batches, writer.pending) == (1, 5)
        blocker.execute("ROLLBACK")  # the abandoned write gets the lock now, and must not commit
        await asyncio.sleep(0.3)
        assert await count_rows(store, t.RequestLog) == 0
    finally:
        blocker.close()
    assert await writer.flush() == 5
    await writer.close()
    assert (writer.written, writer.batches, writer.pending) == (5, 1, 0)
    assert await count_rows(store, t.RequestLog) == 5


def _downgrade(connection: Connection, settings: Settings, revision: str) -> set[str]:
    from alembic import command

    config = alembic_config(settings)
    config.attributes["connection"] = connection
    command.downgrade(config, revision)
    return set(inspect(connection).get_table_names())


async def test_the_gateway_migration_applies_over_0001_and_reverts(empty_settings: Settings) -> None:
    assert (await upgrade(empty_settings, revision="0001")).after == "0001"
    result = await upgrade(empty_settings, revision="0002")
    assert (result.before, result.after) == ("0001", "0002")
    engine = create_engine(empty_settings, sqlite_foreign_keys=False)
    try:
        async with engine.begin() as conn:
            names = await conn.run_sync(_downgrade, empty_settings, "0001")
    finally:
        await engine.dispose()
    assert "request_log" not in names and "credit_ledger" not in names and "teams" in names
    assert (await upgrade(empty_settings, revision="0002")).after == "0002"


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are a Linux feature")
async def test_the_sqlite_writer_thread_runs_nicer_than_the_serving_thread(
    store: Store, make_request: MakeRequest
) -> None:
    """The batch writer must not compete with requests on equal terms for a shared core (its batches were
    most of the gateway's p99): its own thread is niced, and only its own."""
    sqlite_file(store)
    writer = RequestLogWriter(store)
    writer.submit(make_request())
    assert await writer.flush() == 1
    try:
        backend = writer._backend
        assert isinstance(backend, request_log_module._SqliteBackend) and backend._executor is not None
        [thread] = backend._executor._threads
        assert thread.native_id is not None
        serving = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        if serving >= 19:
            pytest.skip("the tests already run at the lowest priority")
        expected = min(19, serving + request_log_module.WRITER_NICE_INCREMENT)
        assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == expected
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == serving  # the serving thread's own
    finally:
        await writer.close()
