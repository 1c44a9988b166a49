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

    from byollm.api.serving import KEEP_ALIVE_S
    from byollm.errors import ByollmError
    from byollm.services import preflight
    from byollm.settings import Settings

    os.umask(0o077)  # the SQLite file, its journal, lock files and run directories: the operator's alone
    try:
        asyncio.run(preflight(Settings.from_env()))
    except ByollmError as exc:
        Console(stderr=True, highlight=False).print(f"[red]byollm cannot start:[/] {exc.detail}")
        raise typer.Exit(1) from None

    uvicorn.run(
        "byollm.api.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,  # our own request log never records credentials; uvicorn's would record paths only,
        # but one log source is easier to audit
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
