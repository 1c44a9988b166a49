"""What every canary scan needs: a world whose direct-provider keys are recognisable, a handler that keeps
every log record, and a dump of every table of the stack's database."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import text

from byollm.store import Store
from byollm.store.tables import Base
from support.stack import Stack

__all__ = ["LogRecords", "canary_world", "dump_database"]

_DEFAULT_WORLD = Path(__file__).resolve().parents[2] / "src" / "byollm" / "sim" / "default_world.yaml"


def canary_world(keys: Mapping[str, list[str]]) -> dict[str, Any]:
    """The default simulator world with the direct providers' accepted keys replaced by ``keys``."""
    world = yaml.safe_load(_DEFAULT_WORLD.read_text())
    for provider, accepted in keys.items():
        world["direct"][provider]["api_keys"] = list(accepted)
    return dict(world)


class LogRecords(logging.Handler):
    """Keeps every record (and its traceback) formatted, for scanning."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        if record.exc_info:
            self.lines.append(logging.Formatter().formatException(record.exc_info))


def dump_database(stack: Stack) -> str:
    """Every row of every table, as text."""

    async def dump() -> str:
        parts: list[str] = []
        async with Store.from_settings(stack.settings) as store, store.engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                rows = (await conn.execute(text(f"SELECT * FROM {table.name}"))).all()
                parts.extend(repr(tuple(row)) for row in rows)
        return "\n".join(parts)

    return asyncio.run(dump())
