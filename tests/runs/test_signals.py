"""Signals: in-process delivery (SQLite), and LISTEN/NOTIFY across two connections (PostgreSQL)."""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlalchemy.engine import make_url

from byollm.runs.signals import LocalSignals, PgSignals
from byollm.settings import normalize_database_url


async def test_local_signals_reach_subscribers_until_they_unsubscribe() -> None:
    signals = LocalSignals()
    got: list[tuple[str, str]] = []
    unsubscribe = signals.subscribe(lambda kind, uid: got.append((kind, uid)))
    await signals.notify("cancel", "R1")
    await asyncio.sleep(0)
    unsubscribe()
    await signals.notify("cancel", "R2")
    await asyncio.sleep(0)
    assert got == [("cancel", "R1")]


@pytest.mark.postgres
async def test_pg_signals_cross_connections() -> None:
    base = os.environ.get("BYOLLM_TEST_DATABASE_URL")
    if not base:
        pytest.skip("BYOLLM_TEST_DATABASE_URL not set: LISTEN/NOTIFY needs a PostgreSQL server")
    dsn = make_url(normalize_database_url(base)).set(drivername="postgresql").render_as_string(hide_password=False)
    sender, receiver = PgSignals(dsn), PgSignals(dsn)
    got: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    receiver.subscribe(lambda kind, uid: got.put_nowait((kind, uid)))
    await sender.start()
    await receiver.start()
    try:
        while not got.empty():  # the "claim now" hint each connection delivers on (re)connecting
            got.get_nowait()
        await sender.notify("cancel", "RUN1")
        async with asyncio.timeout(5):
            assert await got.get() == ("cancel", "RUN1")
    finally:
        await sender.close()
        await receiver.close()
