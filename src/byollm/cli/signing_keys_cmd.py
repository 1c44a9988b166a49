"""``byollm keys signing-list`` and ``byollm keys rotate``: the OIDC issuer's signing keys (operator), via the API.

Rotation goes through the server so the operator needs only a token, and every replica sees the new key
through the database: it is published at once and signs after the publish delay.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from byollm.cli.admin_client import AdminApiError, AdminClient
from byollm.cli.admin_cmd import DEFAULT_URL, AsJson, Token, Url

__all__ = ["register"]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
COLUMNS = ["kid", "generation", "status", "created_at", "activate_at", "unpublish_at"]


def register(keys: typer.Typer) -> None:
    """Attach ``list``, ``rotate`` (and ``signing-list``, the same listing) to the ``byollm keys`` group.

    ``signing-list`` stays reachable whichever module of the group registers a plain ``list`` last.
    """
    # `byollm keys list` belongs to the user's own provider keys (BYOK); signing keys list under their name
    keys.command("signing-list")(list_keys)
    keys.command("rotate")(rotate)


def _call(url: str, token: str, method: str, path: str, body: Any = None) -> Any:
    if not token:
        err.print("[red]No token.[/] Pass --token or set BYOLLM_TOKEN (the operator's instance-wide token).")
        raise typer.Exit(2)
    try:
        with AdminClient(url, token) as client:
            return client.request(method, path, json=body)
    except AdminApiError as exc:
        err.print(f"[red]Error:[/] {exc.message} [dim]({exc.code})[/]")
        if exc.remediation:
            err.print(exc.remediation)
        raise typer.Exit(1) from None


def _show(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        out.print(json.dumps(rows, indent=2), markup=False)
        return
    table = Table(title="OIDC signing keys")
    for column in COLUMNS:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in COLUMNS))
    out.print(table)


def list_keys(url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    """List the issuer's signing keys: pending, active, retired (still published) and expired."""
    _show(_call(url, token, "GET", "/operator/signing-keys"), as_json)


def rotate(
    publish_delay: Annotated[float | None, typer.Option(
        "--publish-delay", min=0,
        help="Seconds the new key is published before it signs (default: the server's setting; 0 only after"
             " a key compromise).",
    )] = None,
    url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False,
) -> None:
    """Create the next signing key: published now, signing after the publish delay."""
    body = {"publish_delay_seconds": publish_delay} if publish_delay is not None else {}
    rows = _call(url, token, "POST", "/operator/signing-keys/rotate", body)
    _show(rows, as_json)
