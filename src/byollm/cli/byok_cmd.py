"""Subcommands of `byollm keys` for this area."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(keys: typer.Typer) -> None:
    """Attach this module's subcommands to the `byollm keys` group."""
