"""Build the long-lived services one byollm process needs, from settings, in one place.

Why a factory and not module globals: tests build several independent service sets in one process, and
nothing happens at import time. ``build_services`` migrates (or checks) the schema, opens the key ring
(refusing to start when stored secrets cannot be decrypted), loads the model catalog and the operator's
provider keys, wires the gateway, and starts the background work (request-log writer, token last-used
flushes). ``close`` stops them and flushes everything pending, so a clean shutdown loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from byollm.catalog.loader import load_catalog
from byollm.catalog.types import Catalog
from byollm.control.attempts import FailedAttemptLimiter
from byollm.control.service import ControlService
from byollm.credentials.delegated import AccountChecker
from byollm.credentials.log_guard import silence_credential_debug_logs
from byollm.crypto.kek import KeyRing
from byollm.doctor.wiring import build_doctor
from byollm.gateway.alerts import WebhookAlerts
from byollm.gateway.executor import Gateway, GatewayConfig
from byollm.gateway.metrics import GatewayMetrics
from byollm.gateway.model_discovery import BedrockModelDiscovery
from byollm.gateway.operator_keys import OperatorKeys
from byollm.gateway.policy_cache import PolicyCache
from byollm.netguard import EgressGuard
from byollm.oidc.wiring import OidcServices, build_oidc
from byollm.policy.types import Host
from byollm.providers.http import HttpPool
from byollm.providers.registry import build_providers
from byollm.runs.wiring import RunServices, build_runs
from byollm.settings import Settings
from byollm.store import Store
from byollm.store.keys import open_keyring
from byollm.store.ledger import CreditTracker
from byollm.store.migrate import check_schema, upgrade
from byollm.store.request_log import RequestLogWriter

__all__ = ["Services", "build_services", "preflight"]

log = logging.getLogger("byollm.services")

FLUSH_INTERVAL_SECONDS = 5.0


@dataclass
class Services:
    settings: Settings
    store: Store
    catalog: Catalog
    keyring: KeyRing
    control: ControlService
    policies: PolicyCache
    operator_keys: OperatorKeys
    pool: HttpPool
    request_log: RequestLogWriter
    metrics: GatewayMetrics
    gateway: Gateway
    oidc: OidcServices | None = None
    runs: RunServices | None = None
    attempts: FailedAttemptLimiter = field(default_factory=FailedAttemptLimiter)
    doctor: Any = None  # byollm.doctor: the configuration doctor (built by ``doctor.wiring.build_doctor``)
    alerts: WebhookAlerts | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start_background(self) -> None:
        await self.request_log.start()
        if self.oidc is not None:
            await self.oidc.start()
        if self.runs is not None:
            await self.runs.start()
        self._tasks.append(asyncio.create_task(self._tick(), name="byollm-services-tick"))

    async def _tick(self) -> None:
        """Every few seconds: record token uses, and pick up provider keys another replica changed."""
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_SECONDS)
            try:
                await self.control.flush_token_usage()
                await self.operator_keys.refresh()
            except Exception as exc:  # keep ticking; a transient database error must not stop the loop
                log.warning("background refresh failed (%s); will retry", type(exc).__name__)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        try:
            if self.runs is not None:
                await self.runs.close()
            if self.oidc is not None:
                await self.oidc.close()
            await self.request_log.close()
            await self.control.flush_token_usage()
            if self.alerts is not None:
                await self.alerts.drain()
        finally:
            await self.pool.close()
            await self.store.dispose()


def make_data_dir_private(data_dir: Path) -> None:
    """Create the data directory 0700 and take group and other access off it and every file in it.

    Why at every start, whatever the umask: it holds the SQLite database (sealed secrets, the request log) and
    possibly the key-encryption key file; under a common umask of 022 they would be world-readable, and files
    left by an older version may be.
    """
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in (data_dir, *data_dir.iterdir()):
        try:
            info = path.lstat()
            if info.st_uid != os.getuid() or stat.S_ISLNK(info.st_mode) or not info.st_mode & 0o077:
                continue
            path.chmod(0o700 if stat.S_ISDIR(info.st_mode) else 0o600)
        except OSError as exc:
            log.warning("could not make %s private (%s)", path.name, type(exc).__name__)


async def preflight(settings: Settings) -> None:
    """What ``byollm serve`` checks before it binds a port: schema migrated (under the lock) and every stored
    secret readable with the configured key-encryption key. Raises a ``ByollmError`` naming the fix."""
    make_data_dir_private(settings.data_dir)
    await upgrade(settings)
    async with Store.from_settings(settings) as store:
        await open_keyring(store, settings)


async def build_services(settings: Settings, *, migrate: bool = True, background: bool = True) -> Services:
    silence_credential_debug_logs()
    make_data_dir_private(settings.data_dir)
    if migrate:
        await upgrade(settings)
    else:
        await check_schema(settings)
    catalog = load_catalog(settings.catalog_file)
    store = Store.from_settings(settings)
    try:
        keyring = await open_keyring(store, settings)
        operator_keys = OperatorKeys(store, keyring)
        await operator_keys.refresh()
    except BaseException:
        await store.dispose()
        raise
    policies = PolicyCache(store)
    pool = HttpPool(guard=EgressGuard(settings.allowed_internal_networks))
    oidc = await build_oidc(settings, store, keyring, pool, catalog)
    metrics = GatewayMetrics(models=catalog.models)  # a model label is a catalog id or "other"
    request_log = RequestLogWriter(store)
    alerts = WebhookAlerts(pool)
    gateway = Gateway(
        catalog=catalog,
        policies=policies,
        providers=build_providers(pool),
        operator_keys=operator_keys,
        accounts=AccountChecker(pool, sts_endpoint=settings.sts_endpoint_url),
        credits=CreditTracker(store),
        log=request_log,
        metrics=metrics,
        config=GatewayConfig(provider_base_urls={
            Host.ANTHROPIC: settings.anthropic_base_url,
            Host.OPENAI: settings.openai_base_url,
            Host.GOOGLE: settings.google_base_url,
        }, deadline_s=settings.request_deadline_s, attempt_timeout_s=settings.attempt_timeout_s),
        web_identity=oidc.web_identity if oidc is not None else None,
        discovery=BedrockModelDiscovery(pool, catalog),
        alerts=alerts,
    )
    services = Services(
        settings=settings, store=store, catalog=catalog, keyring=keyring,
        control=ControlService(store, catalog, settings, policy_changed=policies.invalidate,
                               operator_keys=operator_keys),
        policies=policies, operator_keys=operator_keys, pool=pool, request_log=request_log, metrics=metrics,
        gateway=gateway, oidc=oidc, runs=await build_runs(settings, store, gateway, oidc),
        attempts=FailedAttemptLimiter(limit=settings.failed_token_limit), alerts=alerts,
    )
    if services.runs is not None:
        services.control.on_access_withdrawn(services.runs.service.withdraw)
    services.doctor = build_doctor(settings=settings, store=store, catalog=catalog, oidc=oidc, gateway=gateway,
                                   control=services.control, pool=pool)
    if background:
        await services.start_background()
    return services
