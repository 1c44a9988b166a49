"""The request-log writer's cost per request, by the shape of the request id and the size of the table.

Why: every gateway request ends as one request-log row and (when it is charged) one ledger row, written in
batches by ``RequestLogWriter``. The request id is the request log's primary key and, with the attempt number,
the ledger's, so how ids are ordered decides whether a batch appends at the right edge of those indexes or
touches a random page per row. This script measures both, in the same run, on the real writer and the real
schema (a SQLite file migrated as ``byollm serve`` migrates it):

    - ``random``: 96 random bits after ``req_`` (the ids byollm issued before they carried the time);
    - ``ordered``: ``api.request_id.new_request_id()``, the ids byollm issues (the time in ms, then 96 random bits).

For each id shape and each table size P (default 0 and 200,000 rows already stored, written first in large
batches and not timed), it submits ``--batches`` batches of ``--batch`` requests with one charge each, flushing
each batch as the writer's flusher would, and prints CPU time (this process, the writer's thread included) and
wall time per request, then the ratio ordered / random. Loopback-free and bounded: about 30 s with the defaults.

With ``--database-url postgresql://...`` each measurement runs in a fresh PostgreSQL database created beside
the given one (and dropped afterwards) instead of a SQLite file.

    .venv/bin/python bench/request_log_writer.py [--sizes 0,200000] [--batch 200] [--batches 30] [--json]
                                                 [--database-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import stackproc  # this directory's scratch-database helpers (the script's own directory is on sys.path)

from byollm.api.request_id import new_request_id
from byollm.settings import Settings
from byollm.store.engine import Store, create_engine
from byollm.store.migrate import upgrade
from byollm.store.request_log import AttemptRecord, LedgerCharge, RequestLogWriter, RequestRecord

TEAM, USER, TOKEN = "T" * 22, "U" * 22, "K" * 22
MODEL, ROUTE = "claude-haiku-4-5", "anthropic:claude-haiku-4-5-20251001"
PRELOAD_BATCH = 5000


def random_id() -> str:
    return "req_" + secrets.token_hex(12)


ID_SHAPES: dict[str, Callable[[], str]] = {"random": random_id, "ordered": new_request_id}


def record(request_id: str) -> tuple[RequestRecord, LedgerCharge]:
    """One served direct-API request as the gateway records it: a row, one attempt, one AI-credit charge."""
    now = datetime.now(UTC)
    attempt = f"{request_id}:1"
    row = RequestRecord(
        request_id=request_id, team_uid=TEAM, principal_type="user", principal_uid=USER, token_uid=TOKEN,
        api="anthropic", requested_model=MODEL, served_model=MODEL, route=ROUTE, host="anthropic",
        credential="operator_key", billing="ai_credits", stream=False, status=200, error_code=None,
        attempts=(AttemptRecord(attempt, ROUTE, "anthropic", MODEL, None, 0.5),), input_tokens=12, output_tokens=40,
        credits=Decimal("0.00021"), duration_ms=1.2, overhead_ms=0.3, started_at=now,
    )
    charge = LedgerCharge(
        attempt_id=attempt, team_uid=TEAM, request_id=request_id, principal_uid=USER, bucket="ai_credits",
        model=MODEL, host="anthropic", input_tokens=12, output_tokens=40, credits=Decimal("0.00021"), at=now,
    )
    return row, charge


async def _submit(writer: RequestLogWriter, make_id: Callable[[], str], count: int) -> None:
    for _ in range(count):
        row, charge = record(make_id())
        writer.submit(row, [charge])
    await writer.flush()


async def measure(shape: str, preload: int, batch: int, batches: int, database_url: str | None = None
                  ) -> dict[str, Any]:
    """Per-request CPU and wall time of ``batches`` flushes of ``batch`` requests, ``preload`` rows stored first
    (in a SQLite file of its own, or in the empty database ``database_url``)."""
    data_dir = Path(tempfile.mkdtemp(prefix="byollm-bench-writer-"))
    store: Store | None = None
    try:
        env = {"BYOLLM_DATA_DIR": str(data_dir)}
        if database_url:
            env["BYOLLM_DATABASE_URL"] = database_url
        settings = Settings.from_env(env)
        await upgrade(settings)
        store = Store(create_engine(settings))
        writer = RequestLogWriter(store, max_batch=max(batch, PRELOAD_BATCH), max_pending=10 * PRELOAD_BATCH)
        make_id = ID_SHAPES[shape]
        for start in range(0, preload, PRELOAD_BATCH):
            await _submit(writer, make_id, min(PRELOAD_BATCH, preload - start))
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(batches):
            await _submit(writer, make_id, batch)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        written = writer.written
        await writer.close()
        if written != preload + batch * batches:
            raise RuntimeError(f"{shape}: {written} rows written, {preload + batch * batches} submitted")
        timed = batch * batches
        return {"ids": shape, "stored_before": preload, "requests": timed,
                "cpu_us_per_request": round(1e6 * cpu / timed, 1), "wall_us_per_request": round(1e6 * wall / timed, 1)}
    finally:
        if store is not None:
            await store.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0,200000", help="rows stored before the timed batches (comma-separated)")
    parser.add_argument("--batch", type=int, default=200, help="requests per flush (200 = 100 ms at 2,000 req/s)")
    parser.add_argument("--batches", type=int, default=30, help="timed flushes per measurement")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL: each measurement in a fresh database created beside this one")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes takes integers separated by commas")
    if not sizes or min(sizes) < 0 or args.batch < 1 or args.batches < 1:
        parser.error("need sizes >= 0, --batch >= 1 and --batches >= 1")

    results: list[dict[str, Any]] = []
    for size in sizes:
        for shape in ID_SHAPES:
            scratch = stackproc.fresh_pg_database(args.database_url) if args.database_url else None
            try:
                results.append(asyncio.run(measure(shape, size, args.batch, args.batches, scratch)))
            finally:
                if scratch is not None:
                    stackproc.drop_pg_database(args.database_url, scratch)
            if not args.json:
                r = results[-1]
                print(f"{r['ids']:>8} ids, {size:>9,} rows stored: {r['cpu_us_per_request']:7.1f} us CPU,"
                      f" {r['wall_us_per_request']:7.1f} us wall per request", flush=True)
    ratios = []
    for size in sizes:
        by_shape = {r["ids"]: r for r in results if r["stored_before"] == size}
        ratios.append({"stored_before": size,
                       "cpu_ordered_over_random": round(by_shape["ordered"]["cpu_us_per_request"]
                                                        / by_shape["random"]["cpu_us_per_request"], 3),
                       "wall_ordered_over_random": round(by_shape["ordered"]["wall_us_per_request"]
                                                         / by_shape["random"]["wall_us_per_request"], 3)})
    if args.json:
        print(json.dumps({"batch": args.batch, "batches": args.batches, "results": results, "ratios": ratios},
                         indent=2))
        return 0
    database = "PostgreSQL" if args.database_url else "SQLite file"
    print(f"\nSUMMARY ({database}, {args.batch} requests + {args.batch} charges per transaction, {args.batches}"
          " transactions timed; CPU includes the writer's thread)")
    for ratio in ratios:
        print(f"  {ratio['stored_before']:>9,} rows stored: ordered / random = {ratio['cpu_ordered_over_random']:.2f}"
              f" CPU, {ratio['wall_ordered_over_random']:.2f} wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
