"""Schema migrations: run Alembic to head under a lock, and refuse to serve an out-of-date schema.

Why this shape (after mlflow's db layer): the migration scripts ship inside the package
(``store/migrations``), Alembic is configured in code (no ``alembic.ini`` to lose) and imported lazily, so
commands that never migrate do not pay for it. ``byollm serve`` calls ``upgrade`` at start; every other
command that touches the database calls ``check_schema``, which names ``byollm db upgrade`` when the
database is behind.

Two replicas starting together must not both migrate. ``upgrade`` holds a lock for the whole run:

- PostgreSQL: ``pg_advisory_lock`` on a fixed key, held by a dedicated connection, released (or dropped with
  that connection) when the run ends. The second replica waits, then finds the schema at head and does
  nothing.
- SQLite: a ``filelock`` lock file next to the database file (``<db>.migrate.lock``).

Alembic runs on a connection this module opens (``config.attributes["connection"]``), inside
``AsyncConnection.run_sync``; ``migrations/env.py`` also works standalone for developers generating a
revision (``alembic_config(settings)`` gives them a ``Config``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from byollm.settings import Settings
from byollm.store.engine import Store, create_engine, safe_url, sqlite_path, translate_errors
from byollm.store.errors import SchemaOutOfDateError, StoreError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "MIGRATION_LOCK_KEY",
    "SchemaStatus",
    "UpgradeResult",
    "alembic_config",
    "check_schema",
    "head_revision",
    "schema_status",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# A fixed 64-bit advisory-lock key: int.from_bytes(b"byollmdb") - any constant works as long as every
# byollm version uses the same one.
MIGRATION_LOCK_KEY = int.from_bytes(b"byollmdb", "big") & 0x7FFF_FFFF_FFFF_FFFF
UPGRADE_COMMAND = "byollm db upgrade"


@dataclass(frozen=True, slots=True)
class UpgradeResult:
    """What one ``upgrade`` call did; ``applied`` is False when the schema was already at head."""

    before: str | None
    after: str | None

    @property
    def applied(self) -> bool:
        return self.before != self.after


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    url: str  # password masked
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def alembic_config(settings: Settings) -> Config:
    """An Alembic ``Config`` for this package's migrations and ``settings.database_url`` (no ini file)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    config.attributes["settings"] = settings
    return config


def head_revision() -> str:
    """The newest migration this byollm ships."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    if head is None:  # pragma: no cover - the package always ships a migration
        raise RuntimeError("no migrations found")
    return head


def _current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _run_upgrade(connection: Connection, config: Config, revision: str) -> UpgradeResult:
    from alembic import command

    before = _current_revision(connection)
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
    if connection.dialect.name == "sqlite":  # migrations run with foreign keys off: check what they left
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            tables = sorted({str(row[0]) for row in broken})
            raise StoreError(f"migration left rows with dangling references in {', '.join(tables)}; rolled back")
    return UpgradeResult(before=before, after=_current_revision(connection))


@asynccontextmanager
async def _migration_lock(settings: Settings, engine: AsyncEngine) -> AsyncIterator[None]:
    if engine.dialect.name == "postgresql":
        async with engine.connect() as raw:
            conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            try:
                yield
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        return
    path = sqlite_path(settings.database_url)
    if path is None:  # in-memory SQLite: one process by definition
        yield
        return
    from filelock import AsyncFileLock  # polls without blocking the event loop

    async with AsyncFileLock(str(path) + ".migrate.lock", mode=0o600):
        yield


async def upgrade(settings: Settings, *, revision: str = "head") -> UpgradeResult:
    """Migrate the database to ``revision`` (default head) under the migration lock."""
    config = alembic_config(settings)
    engine = create_engine(settings, sqlite_foreign_keys=False)
    try:
        with translate_errors():
            async with _migration_lock(settings, engine), engine.begin() as conn:
                return await conn.run_sync(_run_upgrade, config, revision)
    finally:
        await engine.dispose()


@asynccontextmanager
async def _engine_for(target: Settings | Store) -> AsyncIterator[tuple[AsyncEngine, str]]:
    if isinstance(target, Store):
        yield target.engine, target.engine.url.render_as_string(hide_password=True)
        return
    engine = create_engine(target)
    try:
        yield engine, safe_url(target.database_url)
    finally:
        await engine.dispose()


async def schema_status(target: Settings | Store) -> SchemaStatus:
    """Where the database's schema is, compared with this byollm's head."""
    async with _engine_for(target) as (engine, url):
        with translate_errors():
            async with engine.connect() as conn:
                current = await conn.run_sync(_current_revision)
    return SchemaStatus(url=url, current=current, head=head_revision())


async def check_schema(target: Settings | Store) -> None:
    """Raise ``SchemaOutOfDateError`` naming the fix unless the schema is exactly at head."""
    status = await schema_status(target)
    if status.up_to_date:
        return
    if status.current is None:
        raise SchemaOutOfDateError(
            f"the database at {status.url} has no byollm schema yet: run `{UPGRADE_COMMAND}`",
            current=None,
            head=status.head,
        )
    if _is_known(status.current):
        raise SchemaOutOfDateError(
            f"the database schema is at revision {status.current} but this byollm needs {status.head}:"
            f" run `{UPGRADE_COMMAND}`",
            current=status.current,
            head=status.head,
        )
    raise SchemaOutOfDateError(
        f"the database schema revision {status.current} is newer than this byollm knows (its newest is"
        f" {status.head}): upgrade byollm, or point BYOLLM_DATABASE_URL at the right database",
        current=status.current,
        head=status.head,
    )


def _is_known(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory(str(MIGRATIONS_DIR)).get_revision(revision) is not None
    except CommandError:
        return False
