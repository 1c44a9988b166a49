"""Automatic signing-key rotation: a background loop in every replica, coordinated by the database.

Every replica checks now and then (``check_every_s``) whether the newest key is older than the rotation
interval; if so it asks for the next generation *conditionally* (``expected_generation``), so when several
replicas notice at once only one new key is stored. The same loop prunes keys whose tokens have all expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from byollm.oidc.keys import KeyManager
from byollm.store.tables import utcnow

__all__ = ["RotationTask"]

log = logging.getLogger("byollm.oidc.rotation")


class RotationTask:
    def __init__(self, keys: KeyManager, *, interval_s: float, check_every_s: float | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._keys = keys
        self._interval_s = interval_s
        self._check_every_s = check_every_s or max(1.0, min(interval_s / 10, 300.0) if interval_s > 0 else 300.0)
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> bool:
        """One check: create the first key if needed, rotate if due, prune. True if this call rotated."""
        await self._keys.ensure_active_key()
        rotated = False
        if self._interval_s > 0:
            records = await self._keys.records(fresh=True)
            newest = max(records, key=lambda r: r.generation)
            if newest.created_at + timedelta(seconds=self._interval_s) <= self._clock():
                rotated = await self._keys.rotate_if_newest(newest.generation)
        await self._keys.prune()
        return rotated

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # a transient database error must not end rotation for good
                log.warning("signing-key rotation check failed (%s); will retry", type(exc).__name__)
            await asyncio.sleep(self._check_every_s)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="byollm-oidc-rotation")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
