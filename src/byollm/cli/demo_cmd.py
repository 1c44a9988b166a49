"""``byollm demo``: the product end to end on this machine (see ``byollm.demo``)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    check: Annotated[bool, typer.Option("--check", help="Run every step without pausing; exit 0 only if each"
                                                         " behaved as expected.")] = False,
) -> None:
    """Start the simulator and a gateway on free ports, seed a team, and walk through the flows."""
    from byollm.demo import run_demo

    raise typer.Exit(run_demo(check=check))
