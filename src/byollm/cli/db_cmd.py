"""`byollm db ...` and `byollm kek ...`: schema migrations and the key-encryption key.

Thin on purpose: each command reads ``Settings.from_env()``, makes one call into ``byollm.store`` and
prints the outcome. Store modules are imported inside the commands, so ``byollm --help`` never loads
SQLAlchemy or Alembic. Failures print the error's safe message and exit with status 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import typer
from rich.console import Console

from byollm.errors import ByollmError
from byollm.settings import Settings

__all__ = ["register"]

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except ByollmError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc.detail}", highlight=False)
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    """Attach the ``db`` and ``kek`` command groups to the root app."""
    db = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
    kek = typer.Typer(help="The key-encryption key that seals stored secrets.", no_args_is_help=True)

    @db.command("upgrade")
    def upgrade() -> None:
        """Migrate the database to this byollm's schema (safe to run while replicas start)."""
        from byollm.store.migrate import upgrade as run_upgrade

        result = _run(run_upgrade(Settings.from_env()))
        if result.applied:
            Console().print(f"database upgraded from {result.before or 'empty'} to {result.after}")
        else:
            Console().print(f"database already at {result.after}; nothing to do")

    @db.command("current")
    def current() -> None:
        """Show the database's schema revision and whether it is up to date."""
        from byollm.store.migrate import schema_status

        status = _run(schema_status(Settings.from_env()))
        console = Console()
        console.print(f"database: {status.url}", highlight=False)
        console.print(f"current:  {status.current or '(empty: no byollm schema)'}")
        console.print(f"head:     {status.head}")
        if status.up_to_date:
            console.print("[green]up to date[/green]")
        else:
            console.print("[yellow]out of date: run `byollm db upgrade`[/yellow]")
            raise typer.Exit(1)

    @kek.command("rotate")
    def rotate() -> None:
        """Re-seal every stored secret under the current key.

        With BYOLLM_KEK set: set it to the new key and BYOLLM_KEK_PREVIOUS to the old one first. With the
        embedded key file: stop the server first; a new key is generated and the old one kept until every
        secret is re-sealed.
        """
        from byollm.store.keys import rotate_kek

        report = _run(rotate_kek(Settings.from_env()))
        console = Console()
        if report.generated:
            console.print("generated a new key-encryption key in the data directory")
        console.print(
            f"re-sealed {report.result.resealed} secret(s) under key {report.result.kek_id};"
            f" {report.result.already_current} already used it"
        )
        if not report.generated and not report.previous_ids and report.result.resealed == 0:
            console.print(
                "nothing to rotate from: to change an environment key, set BYOLLM_KEK to the new key and"
                " BYOLLM_KEK_PREVIOUS to the old one, then run this again"
            )

    @kek.command("reset-secrets")
    def reset_secrets(
        yes: bool = typer.Option(False, "--yes", help="Confirm deleting the secrets no known key can open."),
    ) -> None:
        """Delete the stored secrets that no known key can open (only when the old key is lost for good)."""
        from byollm.store.keys import reset_unreadable_secrets

        if not yes:
            Console(stderr=True).print("this deletes secrets for good; run again with --yes to confirm")
            raise typer.Exit(2)
        names = _run(reset_unreadable_secrets(Settings.from_env()))
        Console().print(f"deleted {len(names)} unreadable secret(s)" + (f": {', '.join(names)}" if names else ""))

    app.add_typer(db, name="db")
    app.add_typer(kek, name="kek")
