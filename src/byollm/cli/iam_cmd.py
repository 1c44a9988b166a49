"""`byollm iam` commands (see this module's owner area)."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
