"""``byollm serve``: run the gateway and control plane with uvicorn.

Migrations run at start under a lock (see ``store.migrate``), so several replicas can start together.
"""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the gateway and the admin API (migrations run first, under a lock)."""
    import asyncio
    import os

    import uvicorn
    from rich.console import Console
    from uvicorn.supervisors import Multiprocess

    from byollm.api.server_limits import LimitedConfig, ServerLimits
    from byollm.errors import ByollmError
    from byollm.services import preflight
    from byollm.settings import Settings

    os.umask(0o077)  # the SQLite file, its journal, lock files and run directories: the operator's alone
    try:
        settings = Settings.from_env()
        asyncio.run(preflight(settings))
    except (ByollmError, ValueError) as exc:
        detail = exc.detail if isinstance(exc, ByollmError) else str(exc)
        Console(stderr=True, highlight=False).print(f"[red]byollm cannot start:[/] {detail}")
        raise typer.Exit(1) from None

    # uvicorn's access log stays off (LimitedConfig): our own request log never records credentials, and one
    # log source is easier to audit. The limits (headers, timeouts, connections, trusted proxies) come from
    # the settings; see byollm.api.server_limits.
    config = LimitedConfig("byollm.api.app:app_from_env", limits=ServerLimits.from_settings(settings),
                           factory=True, host=host, port=port, workers=workers, log_level=log_level)
    server = uvicorn.Server(config)
    if config.workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        server.run()
    if not server.started and config.workers == 1:
        raise typer.Exit(1)
