"""Build the long-lived services one byollm process needs, from settings, in one place.

Why a factory and not module globals: tests build several independent service sets in one process, and
nothing happens at import time. ``build_services`` migrates (or checks) the schema, opens the key ring
(refusing to start when stored secrets cannot be decrypted), loads the model catalog, and starts the small
background ticker that flushes token last-used times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from byollm.catalog.loader import load_catalog
from byollm.catalog.types import Catalog
from byollm.control.service import ControlService
from byollm.crypto.kek import KeyRing
from byollm.settings import Settings
from byollm.store import Store
from byollm.store.keys import open_keyring
from byollm.store.migrate import check_schema, upgrade

__all__ = ["Services", "build_services"]

log = logging.getLogger("byollm.services")

FLUSH_INTERVAL_SECONDS = 5.0


@dataclass
class Services:
    settings: Settings
    store: Store
    catalog: Catalog
    keyring: KeyRing
    control: ControlService
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start_background(self) -> None:
        self._tasks.append(asyncio.create_task(self._flush_loop(), name="byollm-token-usage"))

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_SECONDS)
            try:
                await self.control.flush_token_usage()
            except Exception as exc:  # keep flushing; a transient database error must not stop the loop
                log.warning("could not record token use (%s); will retry", type(exc).__name__)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        try:
            await self.control.flush_token_usage()
        finally:
            await self.store.dispose()


async def build_services(settings: Settings, *, migrate: bool = True, background: bool = True) -> Services:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if migrate:
        await upgrade(settings)
    else:
        await check_schema(settings)
    catalog = load_catalog(settings.catalog_file)
    store = Store.from_settings(settings)
    try:
        keyring = await open_keyring(store, settings)
    except BaseException:
        await store.dispose()
        raise
    services = Services(settings=settings, store=store, catalog=catalog, keyring=keyring,
                        control=ControlService(store, catalog, settings))
    if background:
        services.start_background()
    return services
