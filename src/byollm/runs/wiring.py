"""Build the cloud-run services (run service, signals, embedded worker) for one process.

Signals: PostgreSQL LISTEN/NOTIFY when the store is PostgreSQL (replicas and ``byollm worker`` processes
share the queue), in-process callbacks with SQLite (one process). The worker is embedded when
``Settings.run_worker_embedded`` is on (the default: ``byollm serve`` alone executes runs); ``byollm
worker`` builds the same services with it on and no HTTP server.

Tools: the registry enables the operator's ``BYOLLM_RUN_TOOLS``; every tool process runs in the one
``Sandbox`` built here from the settings, the same whether the worker is embedded in ``byollm serve`` or runs
as ``byollm worker`` (both call ``build_runs``). The runs' working directories live under
``Settings.run_workdir_root``, which must lie outside the data directory (a start-up error otherwise).

The web-identity broker (when the OIDC issuer is built) gets a failure hook that records each failed STS
exchange once in the run's events, and the execution asks it to forget a run's credentials when the run
ends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from byollm.errors import ByollmError
from byollm.gateway.executor import Gateway, InferenceContext
from byollm.netguard import EgressGuard
from byollm.oidc.wiring import OidcServices
from byollm.runs.egress import parse_allow_list
from byollm.runs.execution import ExecutionConfig
from byollm.runs.journal import RunJournal
from byollm.runs.sandbox import Sandbox, SandboxConfig, SandboxLimits, prepare_runs_root
from byollm.runs.service import RunLimits, RunService
from byollm.runs.signals import LocalSignals, PgSignals, Signals
from byollm.runs.tools import ToolRegistry, default_registry
from byollm.runs.worker import Worker
from byollm.settings import Settings
from byollm.store import Store

__all__ = ["RunServices", "build_runs", "check_workdir_root", "sandbox_for", "signals_for"]

log = logging.getLogger(__name__)


@dataclass
class RunServices:
    service: RunService
    journal: RunJournal
    signals: Signals
    tools: ToolRegistry
    sandbox: Sandbox | None = None
    worker: Worker | None = None
    runs_root: Path | None = None
    _started: bool = field(default=False, repr=False)

    async def start(self) -> None:
        """Connect the signals and start the embedded worker, if configured."""
        if self._started:
            return
        self._started = True
        await self.signals.start()
        if self.worker is not None:
            await self._check_sandbox()
            await self.worker.start()

    async def _check_sandbox(self) -> None:
        """Say at start-up, not at the first tool call, that enabled tools cannot run on this host."""
        if self.sandbox is None or not self.tools.enabled:
            return
        try:
            await self.sandbox.check(self.runs_root)
        except ByollmError as error:
            log.warning("run tools %s are enabled but will refuse to run: %s. %s",
                        ", ".join(sorted(self.tools.enabled)), error.detail, error.error_class.remediation)

    async def close(self) -> None:
        """Stop the worker (runs in flight go back to the queue for another worker) and the signals."""
        if self.worker is not None:
            await self.worker.close()
        self.service.close()
        await self.signals.close()


def signals_for(store: Store) -> Signals:
    if store.dialect == "postgresql":
        dsn = make_url(store.engine.url).set(drivername="postgresql").render_as_string(hide_password=False)
        return PgSignals(dsn)
    return LocalSignals()


def execution_config(settings: Settings) -> ExecutionConfig:
    return ExecutionConfig(
        lease_s=settings.run_lease_s, compute_credits_per_second=settings.run_compute_credits_per_second,
        tool_timeout_s=settings.run_tool_timeout_s, tool_output_bytes=settings.run_tool_output_bytes,
        workdir_root=settings.run_workdir_root,
    )


def _own_addresses(settings: Settings) -> tuple[tuple[str, int], ...]:
    if not settings.public_url:
        return ()
    url = urlsplit(settings.public_url)
    if not url.hostname:
        return ()
    return ((url.hostname, url.port or (443 if url.scheme == "https" else 80)),)


def sandbox_for(settings: Settings) -> Sandbox:
    """The tool sandbox for this process, from the settings (``byollm serve`` and ``byollm worker`` alike)."""
    return Sandbox(SandboxConfig(
        bwrap=settings.run_bwrap,
        limits=SandboxLimits(cpu_s=settings.run_tool_cpu_s, memory_bytes=settings.run_tool_memory_bytes,
                             processes=settings.run_tool_processes, file_bytes=settings.run_tool_file_bytes,
                             workdir_bytes=settings.run_workdir_bytes),
        sandbox_uid=settings.run_sandbox_uid, egress=parse_allow_list(settings.run_egress_hosts),
        guard=EgressGuard(settings.allowed_internal_networks), own_addresses=_own_addresses(settings)))


def check_workdir_root(settings: Settings) -> None:
    root = settings.run_workdir_root.resolve()
    data = settings.data_dir.resolve()
    if root == data or data in root.parents:
        raise ValueError(f"BYOLLM_RUN_WORKDIR: {settings.run_workdir_root} is inside the data directory {data};"
                         " run working directories must live outside it (the default is <data dir>-runs)")


async def build_runs(settings: Settings, store: Store, gateway: Gateway,
                     oidc: OidcServices | None) -> RunServices | None:
    signals = signals_for(store)
    journal = RunJournal(store, signals)
    check_workdir_root(settings)
    sandbox = sandbox_for(settings)
    tools = default_registry(sandbox, settings.run_tools)
    service = RunService(store=store, catalog=gateway.catalog, journal=journal, tools=tools, limits=RunLimits(
        max_attempts=settings.run_max_attempts, max_turns=settings.run_max_turns,
        platform_credits=settings.run_platform_credits, user_tools=settings.run_user_tools))
    broker = oidc.web_identity if oidc is not None else None
    if broker is not None:
        async def record_failure(context: InferenceContext, error: ByollmError) -> None:
            if context.run_uid:
                await journal.record(context.run_uid, "web_identity_failure", {
                    "code": error.error_class.code, "message": error.detail,
                    "remediation": error.error_class.remediation})

        broker.on_failure = record_failure
    worker = None
    if settings.run_worker_embedded:
        prepare_runs_root(settings.run_workdir_root)
        worker = Worker(store=store, gateway=gateway, journal=journal, tools=tools,
                        config=execution_config(settings), concurrency=settings.run_worker_concurrency,
                        poll_s=settings.run_poll_s, web_identity=broker)
    return RunServices(service=service, journal=journal, signals=signals, tools=tools, sandbox=sandbox,
                       worker=worker, runs_root=settings.run_workdir_root)
