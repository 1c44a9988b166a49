"""``byollm keys``: one group for two kinds of keys, each defined in its own module.

``signing_keys_cmd`` holds the operator's OIDC signing-key commands (``rotate``, ``signing-list``); ``byok_cmd``
the user's own provider keys kept in the OS keyring (``add``, ``list``, ``remove``).
"""

from __future__ import annotations

import typer

from byollm.cli import byok_cmd, signing_keys_cmd

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    keys = typer.Typer(help="Signing keys (operator) and your own provider keys (BYOK).", no_args_is_help=True)
    signing_keys_cmd.register(keys)
    byok_cmd.register(keys)
    if keys.registered_commands or keys.registered_groups:
        app.add_typer(keys, name="keys")
