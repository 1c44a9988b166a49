"""`byollm sim`: run the local cloud simulator (AWS STS/IAM/Bedrock, direct provider APIs) on one port."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""

    @app.command("sim")
    def sim(
        port: int = typer.Option(4566, "--port", help="Port to listen on."),
        host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind."),
        world: Path | None = typer.Option(
            None, "--world", exists=True, dir_okay=False, help="World file (YAML or JSON)."
        ),
    ) -> None:
        """Serve the simulator: point boto3 at endpoint_url=http://HOST:PORT; admin API under /_sim."""
        from byollm.sim.server import serve
        from byollm.sim.world import WorldError, load_world

        try:
            loaded = load_world(world)
        except WorldError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        typer.echo(f"byollm sim: http://{host}:{port}  (world: {world or 'default'}; admin: /_sim/world)")
        serve(loaded, host=host, port=port)
