"""Scratch PostgreSQL databases for tests that start whole processes against their own database.

Why a fresh database rather than the shared ``test`` one: tests that run ``byollm serve``/``worker`` processes
migrate, lock and fill the database as production would, and other tests use ``test`` at the same time.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

from byollm.settings import normalize_database_url

PG_ENV = "BYOLLM_TEST_DATABASE_URL"

__all__ = ["PG_ENV", "scratch_database"]


def _plain(url: str) -> str:
    return make_url(normalize_database_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


async def _database(action: str, name: str) -> None:
    conn = await asyncpg.connect(_plain(os.environ[PG_ENV]))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"' if action == "create"
                           else f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextmanager
def scratch_database(prefix: str, why: str) -> Iterator[str]:
    """The URL of a new database on the server ``BYOLLM_TEST_DATABASE_URL`` names, dropped afterwards; skips
    the test (saying ``why`` it needs PostgreSQL) when the variable is not set."""
    if not os.environ.get(PG_ENV):
        pytest.skip(f"{PG_ENV} not set: {why}")
    name = f"{prefix}_{secrets.token_hex(4)}"
    asyncio.run(_database("create", name))
    try:
        yield make_url(normalize_database_url(os.environ[PG_ENV])).set(database=name).render_as_string(
            hide_password=False)
    finally:
        asyncio.run(_database("drop", name))
