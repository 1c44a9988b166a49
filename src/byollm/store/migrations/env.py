"""Alembic environment for byollm, configured in code (see ``byollm.store.migrate``).

Normally ``migrate.upgrade`` hands Alembic an open connection in ``config.attributes["connection"]`` and
holds the migration lock around it. Run standalone (a developer calling ``alembic.command.revision`` with
``migrate.alembic_config(settings)``), it opens its own async engine from the settings.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from byollm.settings import Settings
from byollm.store.engine import create_engine
from byollm.store.tables import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone() -> None:
    settings = config.attributes.get("settings") or Settings.from_env()
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def _main() -> None:
    if context.is_offline_mode():
        context.configure(
            url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_standalone())


_main()
