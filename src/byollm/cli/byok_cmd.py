"""``byollm keys add|show|remove``: your own provider keys (BYOK), kept on this device only.

A key lives in the OS keyring (or the client's 0600 fallback file) and is sent only as the per-request
``x-byollm-byok-<provider>`` header, on requests for a model that may route directly to that provider when
the team allows BYOK; the gateway never stores it. ``show`` says which providers have a key, never the key
(``keys list`` is the operator's signing-key listing).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from byollm.client.tokenstore import BYOK_PROVIDERS

__all__ = ["register"]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
PROVIDERS = BYOK_PROVIDERS


def _provider(value: str) -> str:
    if value not in PROVIDERS:
        raise typer.BadParameter(f"one of {', '.join(PROVIDERS)}")
    return value


def register(keys: typer.Typer) -> None:
    """Attach ``add``, ``show`` and ``remove`` to the ``byollm keys`` group."""

    @keys.command("add")
    def add(
        provider: Annotated[str, typer.Argument(callback=_provider, help="anthropic, openai or google")],
        stdin: Annotated[bool, typer.Option("--stdin", help="Read the key from stdin.")] = False,
    ) -> None:
        """Store your own API key for a provider (prompted, hidden; or from stdin)."""
        from byollm.client.tokenstore import TokenStoreError, byok_entry, open_token_store

        if stdin or not sys.stdin.isatty():
            key = sys.stdin.readline().strip()
        else:
            key = str(typer.prompt(f"{provider} API key (hidden)", hide_input=True)).strip()
        if not key:
            err.print("[red]✗[/] no key given")
            raise typer.Exit(2)
        try:
            store = open_token_store()
            store.set(byok_entry(provider), key)
        except TokenStoreError as exc:
            err.print(f"[red]✗[/] {escape(str(exc))}")
            raise typer.Exit(1) from None
        out.print(f"[green]✓[/] {provider} key kept in {escape(store.description)}")
        out.print("It is sent only with requests that may route directly to this provider, when your team allows"
                  " BYOK.")

    # signing keys list as `keys signing-list`, so `keys list` (and its alias `keys show`) is BYOK's
    @keys.command("list")
    @keys.command("show", hidden=True)
    def list_keys() -> None:
        """Which providers have a key (never the key itself)."""
        from byollm.client.tokenstore import open_token_store

        store = open_token_store()
        held = store.byok_keys()
        for provider in PROVIDERS:
            out.print(f"{provider:<10} {'key stored' if provider in held else '-'}")
        out.print(f"[dim]kept in {escape(store.description)}[/]")

    @keys.command("remove")
    def remove(provider: Annotated[str, typer.Argument(callback=_provider)]) -> None:
        """Delete your key for a provider."""
        from byollm.client.tokenstore import byok_entry, open_token_store

        store = open_token_store()
        removed = store.delete(byok_entry(provider))
        out.print(f"{provider} key removed" if removed else f"no {provider} key was stored")
