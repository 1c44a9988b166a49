"""The ``byollm`` command line. Each command group lives in its own module and is registered here.

Command modules import their heavy dependencies inside the command functions, so ``byollm --help`` stays
fast and no command pays for another's imports.
"""

from __future__ import annotations

import typer

from byollm.cli import (
    admin_cmd,
    client_cmd,
    db_cmd,
    demo_cmd,
    doctor_cmd,
    iam_cmd,
    keys_cmd,
    runs_cmd,
    serve_cmd,
    sim_cmd,
    worker_cmd,
)

app = typer.Typer(
    name="byollm",
    help="Run AI agents on models hosted in your own cloud account.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
serve_cmd.register(app)
demo_cmd.register(app)
sim_cmd.register(app)
db_cmd.register(app)
admin_cmd.register(app)
client_cmd.register(app)
doctor_cmd.register(app)
keys_cmd.register(app)
iam_cmd.register(app)
runs_cmd.register(app)
worker_cmd.register(app)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
