"""Migrations: empty to head, the schema check's message, the lock, and SQLite's connection setup."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from byollm.settings import Settings
from byollm.store import SchemaOutOfDateError, Store, create_engine
from byollm.store import migrate as migrate_module
from byollm.store.migrate import check_schema, head_revision, schema_status, upgrade
from byollm.store.tables import Base

EXPECTED_TABLES = {
    "agents",
    "alembic_version",
    "api_tokens",
    "audit_log",
    "credit_ledger",
    "issued_uids",
    "memberships",
    "model_routes",
    "oidc_signing_keys",
    "request_log",
    "run_events",
    "runs",
    "secrets",
    "teams",
    "users",
}


async def test_upgrade_from_empty_to_head(empty_settings: Settings) -> None:
    with pytest.raises(SchemaOutOfDateError, match="no byollm schema yet: run `byollm db upgrade`"):
        await check_schema(empty_settings)

    result = await upgrade(empty_settings)
    assert result.applied
    assert result.before is None
    assert result.after == head_revision()
    await check_schema(empty_settings)
    assert (await schema_status(empty_settings)).up_to_date

    again = await upgrade(empty_settings)
    assert not again.applied
    assert again.after == head_revision()

    async with Store.from_settings(empty_settings) as store, store.engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert names == EXPECTED_TABLES


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrations_match_the_models(store: Store) -> None:
    async with store.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


async def test_check_schema_names_the_fix_when_behind(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    current = head_revision()
    monkeypatch.setattr(migrate_module, "head_revision", lambda: "9998")
    with pytest.raises(SchemaOutOfDateError) as info:
        await check_schema(settings)
    assert str(info.value.detail) == (
        f"the database schema is at revision {current} but this byollm needs 9998: run `byollm db upgrade`"
    )
    assert info.value.status == 500


async def test_check_schema_refuses_a_newer_schema(store: Store, settings: Settings) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaOutOfDateError, match="newer than this byollm knows"):
        await check_schema(store)


async def test_concurrent_upgrades_apply_the_migration_once(empty_settings: Settings) -> None:
    results = await asyncio.gather(upgrade(empty_settings), upgrade(empty_settings))
    assert sorted(r.applied for r in results) == [False, True]
    assert {r.after for r in results} == {head_revision()}
    await check_schema(empty_settings)


def test_concurrent_upgrades_in_two_processes_sqlite(tmp_path: Path) -> None:
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from byollm.settings import Settings\n"
        "from byollm.store.migrate import upgrade\n"
        "r = asyncio.run(upgrade(Settings.for_data_dir(Path(sys.argv[1]))))\n"
        "print('applied' if r.applied else 'skipped')\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sorted(out.strip() for out, _ in outputs) == ["applied", "skipped"]


async def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    settings = Settings.for_data_dir(tmp_path / "new" / "dir")
    async with Store.from_settings(settings) as store, store.engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() >= 1000
    assert (tmp_path / "new" / "dir").is_dir()


async def test_upgrade_waits_while_another_holds_the_migration_lock(empty_settings: Settings) -> None:
    engine = create_engine(empty_settings)
    try:
        async with migrate_module._migration_lock(empty_settings, engine):
            task = asyncio.create_task(upgrade(empty_settings))
            await asyncio.sleep(0.4)
            assert not task.done()
        result = await asyncio.wait_for(task, timeout=30)
    finally:
        await engine.dispose()
    assert result.applied
