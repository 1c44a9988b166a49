"""Fixtures giving every store test a fresh, migrated database on SQLite and, when
``BYOLLM_TEST_DATABASE_URL`` is set, on PostgreSQL too.

SQLite: the schema is migrated once per session into a template file, and each test gets a copy (a file
copy is much faster than running the migrations again). PostgreSQL: each test module gets its own database,
created and migrated once, dropped afterwards; each test starts from truncated tables.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from byollm.settings import Settings, normalize_database_url
from byollm.store import Store
from byollm.store.migrate import upgrade
from byollm.store.request_log import AttemptRecord, LedgerCharge, RequestRecord
from byollm.store.tables import Base

PG_ENV = "BYOLLM_TEST_DATABASE_URL"
PG_SKIP_REASON = f"{PG_ENV} not set"
TEST_KEK = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="  # 32 bytes of 0x01: tests only
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


def pg_base_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def _plain_pg_url(url: str) -> str:
    return make_url(normalize_database_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_pg_database() -> str:
    """Create an empty database next to the one in BYOLLM_TEST_DATABASE_URL; return its async URL."""
    base = pg_base_url()
    assert base is not None
    name = f"byollm_test_{os.getpid()}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(_plain_pg_url(base))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(normalize_database_url(base)).set(database=name).render_as_string(hide_password=False)


async def drop_pg_database(url: str) -> None:
    base = pg_base_url()
    assert base is not None
    name = make_url(url).database
    conn = await asyncpg.connect(_plain_pg_url(base))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def require_pg() -> None:
    if pg_base_url() is None:
        pytest.skip(PG_SKIP_REASON)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("sqlite-template")
    settings = Settings.for_data_dir(data_dir, kek=TEST_KEK)
    asyncio.run(upgrade(settings))
    return data_dir / "byollm.sqlite3"


@pytest.fixture(scope="module")
def pg_module_database() -> Iterator[str]:
    require_pg()
    url = asyncio.run(create_pg_database())
    try:
        asyncio.run(upgrade(Settings(data_dir=Path("/nonexistent"), database_url=url, kek=TEST_KEK)))
        yield url
    finally:
        asyncio.run(drop_pg_database(url))


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Settings:
    """Settings for a fresh, migrated database of the parametrised backend (kek from the environment)."""
    if request.param == "sqlite":
        shutil.copyfile(sqlite_template, tmp_path / "byollm.sqlite3")
        return Settings.for_data_dir(tmp_path, kek=TEST_KEK)
    url = request.getfixturevalue("pg_module_database")
    return Settings(data_dir=tmp_path, database_url=url, kek=TEST_KEK)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    store = Store.from_settings(settings)
    if store.dialect == "postgresql":
        names = ", ".join(table.name for table in Base.metadata.sorted_tables)
        async with store.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    try:
        yield store
    finally:
        await store.dispose()


@pytest.fixture(params=BACKENDS)
async def empty_settings(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Settings]:
    """Settings for a database with no schema at all (migration tests)."""
    if request.param == "sqlite":
        yield Settings.for_data_dir(tmp_path / "data", kek=TEST_KEK)
        return
    require_pg()
    url = await create_pg_database()
    try:
        yield Settings(data_dir=tmp_path / "data", database_url=url, kek=TEST_KEK)
    finally:
        await drop_pg_database(url)


# --- request log and ledger fixtures (test_request_log, test_ledger, test_usage) -----------------------

RECORD_START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _make_request(request_id: str | None = None, **overrides: Any) -> RequestRecord:
    """A plausible direct-API request served on the first attempt; override any field."""
    request_id = request_id or "req_" + secrets.token_hex(12)
    attempt = AttemptRecord(
        attempt_id=request_id + ".1",
        route="anthropic:claude-sonnet-4-5",
        host="anthropic",
        model="claude-sonnet-4-5",
        error_code=None,
        latency_ms=12.5,
    )
    values: dict[str, Any] = {
        "request_id": request_id,
        "team_uid": "T" * 22,
        "principal_type": "user",
        "principal_uid": "U" * 22,
        "token_uid": "K" * 22,
        "api": "anthropic",
        "requested_model": "claude-sonnet-4-5",
        "served_model": "claude-sonnet-4-5",
        "route": "anthropic:claude-sonnet-4-5",
        "host": "anthropic",
        "credential": "operator_key",
        "billing": "ai_credits",
        "stream": False,
        "status": 200,
        "error_code": None,
        "attempts": (attempt,),
        "input_tokens": 100,
        "output_tokens": 20,
        "credits": Decimal("0.75"),
        "duration_ms": 15.0,
        "overhead_ms": 0.4,
        "started_at": RECORD_START,
    }
    values.update(overrides)
    return RequestRecord(**values)


def _make_charge(record: RequestRecord, **overrides: Any) -> LedgerCharge:
    """The AI-credit charge for ``record``'s last attempt; override any field."""
    values: dict[str, Any] = {
        "attempt_id": record.attempts[-1].attempt_id if record.attempts else record.request_id + ".1",
        "team_uid": record.team_uid,
        "request_id": record.request_id,
        "principal_uid": record.principal_uid,
        "bucket": "ai_credits",
        "model": record.served_model or record.requested_model,
        "host": record.host or "anthropic",
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "credits": record.credits,
        "at": record.started_at,
        "run_uid": record.run_uid,
    }
    values.update(overrides)
    return LedgerCharge(**values)


@pytest.fixture
def make_request() -> Callable[..., RequestRecord]:
    return _make_request


@pytest.fixture
def make_charge() -> Callable[..., LedgerCharge]:
    return _make_charge
