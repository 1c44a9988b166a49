"""Append a run's events (scrubbed) and tell watchers, wherever they are, that there is something new."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from byollm.runs.events import EVENT_KINDS, clean
from byollm.runs.signals import Signals
from byollm.store import Store
from byollm.store import runs as runs_repo

__all__ = ["RunJournal"]


class RunJournal:
    def __init__(self, store: Store, signals: Signals) -> None:
        self._store = store
        self._signals = signals

    @property
    def signals(self) -> Signals:
        return self._signals

    @staticmethod
    async def append(session: AsyncSession, run_uid: str, kind: str, data: Mapping[str, Any]) -> int:
        """Append inside the caller's transaction; the caller calls ``announce`` after it commits."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown run event kind {kind!r}")
        return await runs_repo.append_event(session, run_uid=run_uid, kind=kind, data=clean(data),
                                            now=datetime.now(UTC))

    async def announce(self, run_uid: str) -> None:
        await self._signals.notify("event", run_uid)

    async def record(self, run_uid: str, kind: str, data: Mapping[str, Any]) -> int:
        """Append one event in its own transaction and tell watchers."""
        async with self._store.session() as session:
            seq = await self.append(session, run_uid, kind, data)
        await self.announce(run_uid)
        return seq
