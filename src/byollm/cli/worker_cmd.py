"""``byollm worker``: execute cloud runs in a separate process, sharing the run queue with the gateways.

It builds the same services as ``byollm serve`` (store, gateway, OIDC broker) with the embedded worker on
and no HTTP server, and runs until SIGTERM or SIGINT; then it hands its runs in flight back to the queue
and exits. Use it with PostgreSQL (``BYOLLM_DATABASE_URL``) and ``BYOLLM_RUN_WORKER_EMBEDDED=0`` on the
gateway replicas to scale execution apart from serving. The schema must be current (``byollm db upgrade``,
or any ``byollm serve``, migrates it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from byollm.settings import Settings

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)


def worker(
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", "-c", min=1, help="Runs executed at once (default BYOLLM_RUN_WORKER_CONCURRENCY).")] = None,
) -> None:
    """Execute queued cloud runs until stopped (SIGTERM/SIGINT)."""
    import asyncio
    import contextlib
    import dataclasses
    import logging
    import os

    from byollm.secret_env import forget_secret_variables
    from byollm.settings import Settings

    os.umask(0o077)  # whatever the worker creates (run directories, lock files) is the operator's alone
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    base = Settings.from_env()
    forget_secret_variables()
    settings = dataclasses.replace(base, run_worker_embedded=True,
                                   run_worker_concurrency=concurrency or base.run_worker_concurrency)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(settings))


async def _run(settings: Settings) -> None:
    import asyncio
    import signal

    from byollm.services import build_services

    services = await build_services(settings, migrate=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = services.runs.worker if services.runs is not None else None
    typer.echo(f"byollm worker {worker.worker_id if worker else '?'} started "
               f"(concurrency {settings.run_worker_concurrency})", err=True)
    try:
        await stop.wait()
    finally:
        await services.close()
