"""The async engine and the one session scope every repository call runs in.

Why a ``Store`` object: it owns the engine and its session factories, is built from ``Settings`` by
``build_services`` (never at import), and is disposed when the app stops. Repositories are plain
keyword-only functions over an ``AsyncSession``, so one scope can span several of them atomically::

    async with store.session() as session:
        team = await teams.create_team(session, name="ml")
        await audit.append_audit(session, actor_uid=uid, action="team.create", target=team.uid)

SQLite specifics (the embedded default): WAL so readers never block the writer, foreign keys on, a busy
timeout so concurrent writers wait instead of failing, and SQLAlchemy's recipe that lets the engine emit
``BEGIN`` itself, which makes SAVEPOINT (used when drawing UIDs) and transactional DDL work. Write scopes
start with ``BEGIN IMMEDIATE`` so two read-then-write transactions queue up on the busy timeout instead of
one failing with "database is locked" at its first write; ``session(readonly=True)`` starts a plain
``BEGIN`` and never blocks a writer.

Errors: the scope commits on success and rolls back on any exception; driver errors leave it as a
``StoreError`` (``ConflictError`` for unique violations, ``NotFoundError`` for a missing referenced row),
chained with ``from exc`` except where the driver's message can echo a stored value (integrity and data
errors), which are raised ``from None``. The engine also hides bound parameters from its own messages, so
no hash, email or ciphertext reaches a log line through an exception.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from byollm.errors import ByollmError
from byollm.settings import Settings
from byollm.store.errors import ConflictError, NotFoundError, StoreError

__all__ = ["Store", "create_engine", "safe_url", "sqlite_path", "translate_errors"]

SQLITE_BUSY_TIMEOUT_MS = 15_000
_BEGIN_OPTION = "byollm_sqlite_begin"


def sqlite_path(database_url: str | URL) -> Path | None:
    """The file behind a SQLite URL, or None for PostgreSQL and in-memory SQLite."""
    url = make_url(database_url) if isinstance(database_url, str) else database_url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def safe_url(database_url: str) -> str:
    """The database URL with any password masked, for messages."""
    return make_url(database_url).render_as_string(hide_password=True)


def create_engine(settings: Settings, *, sqlite_foreign_keys: bool = True) -> AsyncEngine:
    """Build (but do not connect) the async engine for ``settings.database_url``.

    For a SQLite file this creates its directory (0700), since the data directory may not exist yet.
    ``sqlite_foreign_keys=False`` is for migrations only: SQLite alters a table by copying it, which with
    foreign keys on would cascade deletes into the rows that refer to it.
    """
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None and not url.query.get("uri"):
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # SQLite would create the file under the umask (0644 under 022); its -wal/-shm files copy the
            # database's mode, so creating it 0600 first keeps all three private.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        engine = create_async_engine(url, hide_parameters=True)
        _configure_sqlite(engine, foreign_keys=sqlite_foreign_keys)
        return engine
    return create_async_engine(url, hide_parameters=True, pool_pre_ping=True)


def _configure_sqlite(engine: AsyncEngine, *, foreign_keys: bool) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Stop the driver from issuing BEGIN on its own; the "begin" hook below does it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")


_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: ([\w.,\s]+)")


def _describe_integrity_error(exc: IntegrityError) -> StoreError:
    """Map an integrity error to Conflict/NotFound with an identifier-only detail."""
    orig: Any = exc.orig
    cause: Any = getattr(orig, "__cause__", None)
    sqlstate = getattr(orig, "sqlstate", None) or getattr(cause, "sqlstate", None)
    errorname = getattr(orig, "sqlite_errorname", "") or ""
    if sqlstate == "23505" or errorname in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"):
        where = getattr(cause, "constraint_name", None)
        if where is None:
            match = _SQLITE_UNIQUE.search(str(orig))
            where = match.group(1).strip() if match else "unique key"
        return ConflictError(f"already exists ({where})", constraint=where)
    if sqlstate == "23503" or errorname == "SQLITE_CONSTRAINT_FOREIGNKEY":
        return NotFoundError("a referenced row does not exist")
    return StoreError("a database constraint was violated")


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn SQLAlchemy and driver errors into store errors; let byollm errors pass unchanged."""
    try:
        yield
    except ByollmError:
        raise
    except IntegrityError as exc:
        # ``from None``: PostgreSQL's message carries "Key (column)=(value)", and the value may be a hash or
        # an email; the mapped error keeps the constraint name, which is all a caller needs.
        raise _describe_integrity_error(exc) from None
    except DataError as exc:  # messages such as 'invalid input syntax ...: "<value>"' echo the value
        raise StoreError(f"invalid value for the database ({type(exc.orig).__name__})") from None
    except DBAPIError as exc:
        raise StoreError(f"database error ({type(exc.orig).__name__})") from exc
    except StatementError as exc:  # a value our own types refused while binding (a programming error)
        if isinstance(exc.orig, (ValueError, TypeError)):
            raise type(exc.orig)(str(exc.orig)) from exc
        raise StoreError(f"database error ({type(exc).__name__})") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"database error ({type(exc).__name__})") from exc
    except OSError as exc:  # the database host or file is unreachable
        raise StoreError(f"database unreachable ({type(exc).__name__})") from exc


class Store:
    """Owns one engine and hands out transactional session scopes."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = async_sessionmaker(engine, expire_on_commit=False, autoflush=True)
        self._reader = async_sessionmaker(
            engine.execution_options(**{_BEGIN_OPTION: "DEFERRED"}), expire_on_commit=False
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """A store for ``settings.database_url``; connects lazily on first use."""
        return cls(create_engine(settings))

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    @asynccontextmanager
    async def session(self, *, readonly: bool = False) -> AsyncIterator[AsyncSession]:
        """One transaction: commit when the block ends, roll back if it raises; errors mapped."""
        maker = self._reader if readonly else self._writer
        with translate_errors():
            async with maker() as session, session.begin():
                yield session

    async def dispose(self) -> None:
        await self._engine.dispose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.dispose()
