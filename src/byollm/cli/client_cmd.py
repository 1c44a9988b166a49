"""The terminal client's commands: ``login`` (``configure``), ``logout``, ``config``, ``chat``, ``ask``
and ``proxy`` (``doctor --local`` is in ``doctor_cmd``). Each parses, calls one function in ``byollm.client``,
and renders."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["register"]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

Profile = Annotated[str | None, typer.Option("--profile", help="AWS profile (default: config, then AWS_PROFILE).")]
Model = Annotated[str | None, typer.Option("--model", "-m", help="Model name or auto (default: config).")]


def _fail(message: str, remediation: str = "", code: int = 1) -> typer.Exit:
    err.print(f"[red]✗[/] {escape(message)}")
    if remediation:
        err.print(escape(remediation))
    return typer.Exit(code)


@contextmanager
def _context(profile: str | None) -> Iterator[Any]:
    from byollm.client.config import ConfigError
    from byollm.client.context import NotLoggedInError, open_context
    from byollm.client.tokenstore import TokenStoreError

    try:
        ctx = open_context(profile=profile)
    except NotLoggedInError as exc:
        raise _fail(str(exc)) from None
    except (ConfigError, TokenStoreError) as exc:
        raise _fail(str(exc)) from None
    try:
        yield ctx
    finally:
        ctx.close()


def _secret_input(prompt: str, from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().strip()
    return str(typer.prompt(prompt, hide_input=True)).strip()


def _tty_question(question: str) -> bool:
    """A yes/no question on the terminal (stderr, so a script's captured stdout holds only the answer)."""
    err.print(question, end="", markup=False)
    try:
        return input().strip().lower() in ("y", "yes")
    except EOFError:
        return False


def register(app: typer.Typer) -> None:
    config_app = typer.Typer(help="Client settings (no secrets): gateway URL, team, AWS profile, auto-refresh,"
                                  " default model, proxy port.", no_args_is_help=True)
    app.add_typer(config_app, name="config")

    def login(
        url: Annotated[str | None, typer.Option("--url", envvar="BYOLLM_URL", help="Gateway URL.")] = None,
        team: Annotated[str | None, typer.Option("--team", help="Team UID, if your token can act in several.")] = None,
        token_stdin: Annotated[bool, typer.Option("--token-stdin", help="Read the token from stdin.")] = False,
        verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Check the token first.")] = True,
    ) -> None:
        """Point the client at a gateway and keep your byollm token in the OS keyring."""
        from byollm.client.config import ConfigError
        from byollm.client.context import login as do_login
        from byollm.client.gateway import GatewayError
        from byollm.client.tokenstore import TokenStoreError

        gateway_url = url or str(typer.prompt("Gateway URL")).strip()
        token = _secret_input("byollm token (hidden)", token_stdin)
        if not token:
            raise _fail("no token given")
        try:
            result = do_login(gateway_url, token, team=team, verify=verify)
        except GatewayError as exc:
            raise _fail(f"{exc.message} ({exc.code})", exc.remediation) from None
        except (ConfigError, TokenStoreError) as exc:
            raise _fail(str(exc)) from None
        out.print(f"[green]✓[/] logged in to {escape(result.gateway_url)} as {escape(result.principal)}"
                  + (f", team {escape(result.team)}" if result.team else ""))
        out.print(f"token kept in {escape(result.store_description)}")
        if not result.team and len(result.teams) > 1:
            out.print("your token can act in several teams: choose one with `byollm config set team <uid>`")

    app.command("login")(login)
    app.command("configure", help="Alias of `byollm login`.")(login)

    @app.command("logout")
    def logout() -> None:
        """Remove your byollm token from the token store."""
        from byollm.client.context import logout as do_logout

        removed, where = do_logout()
        out.print(f"token removed from {escape(where)}" if removed else f"no token was stored in {escape(where)}")

    @config_app.command("set")
    def config_set(key: str, value: str) -> None:
        """Change one setting, e.g. `byollm config set auto_refresh true`."""
        from byollm.client.config import ConfigError, load_config, save_config, set_value

        try:
            path = save_config(set_value(load_config(), key, value))
        except ConfigError as exc:
            raise _fail(str(exc), code=2) from None
        out.print(f"{key.replace('-', '_')} = {escape(value)}  [dim]({escape(str(path))})[/]")

    @config_app.command("get")
    def config_get(key: str) -> None:
        """Print one setting's value."""
        from byollm.client.config import SETTINGS, load_config

        name = key.replace("-", "_")
        if name not in SETTINGS:
            raise _fail(f"unknown setting {key!r}; settings: {', '.join(SETTINGS)}", code=2)
        value = getattr(load_config(), name)
        typer.echo("" if value is None else str(value).lower() if isinstance(value, bool) else str(value))

    @config_app.command("show")
    def config_show() -> None:
        """Every setting, what it does, and where the token is kept."""
        from rich.table import Table

        from byollm.client.config import SETTINGS, config_path, load_config
        from byollm.client.tokenstore import open_token_store

        config = load_config()
        table = Table(title=str(config_path()))
        for column in ("setting", "value", "meaning"):
            table.add_column(column)
        for name, (_, meaning) in SETTINGS.items():
            value = getattr(config, name)
            table.add_row(name, "" if value is None else str(value), meaning)
        out.print(table)
        store = open_token_store()
        out.print(f"token: {'stored' if store.gateway_token() else 'none'} in {escape(store.description)}")

    @app.command("chat")
    def chat(model: Model = None, profile: Profile = None) -> None:
        """Chat in the terminal: streamed answers, the route that served each, slash commands (/help)."""
        from byollm.client.chat import run_chat

        with _context(profile) as ctx:
            raise typer.Exit(run_chat(ctx, model or ctx.config.default_model))

    @app.command("ask")
    def ask(
        prompt: Annotated[str, typer.Argument(help="The question; - reads it from stdin.")],
        model: Model = None,
        profile: Profile = None,
        max_tokens: Annotated[int, typer.Option("--max-tokens", min=1)] = 1024,
    ) -> None:
        """One answer for scripts: the answer on stdout, the route (or the error) on stderr."""
        from byollm.client.chat import ask as do_ask

        text = sys.stdin.read() if prompt == "-" else prompt
        ask_yes = _tty_question if prompt != "-" and sys.stdin.isatty() and sys.stderr.isatty() else None
        with _context(profile) as ctx:
            raise typer.Exit(do_ask(ctx, text, model or ctx.config.default_model, max_tokens=max_tokens,
                                    ask_yes=ask_yes))

    @app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                           "allow_interspersed_args": False})
    def exec_(
        tool: Annotated[typer.Context, typer.Argument(hidden=True)],
        profile: Profile = None,
        verbose: Annotated[bool, typer.Option("--verbose", help="Show each proxied request on stderr.")] = False,
    ) -> None:
        """Run an agent tool through byollm: `byollm exec -- claude -p "hi"` (or `byollm exec codex ...`).

        Starts the proxy on a free loopback port for as long as the tool runs, points the tool at it
        (ANTHROPIC_BASE_URL/ANTHROPIC_AUTH_TOKEN, OPENAI_BASE_URL/OPENAI_API_KEY, and Claude Code's model
        variables from your team's models), and exits with the tool's status.
        """
        from byollm.client.exec_tool import ExecError, run_tool

        argv = list(tool.args)
        if argv and argv[0] == "--":
            argv = argv[1:]

        def say(line: str) -> None:
            if verbose or not line.startswith(("GET ", "POST ", "HEAD ")):
                err.print(escape(f"byollm: {line}"))

        with _context(profile) as ctx:
            try:
                code = run_tool(ctx, argv, say=say)
            except ExecError as exc:
                raise _fail(str(exc), code=exc.exit_code) from None
        raise typer.Exit(code)

    @app.command("proxy")
    def proxy(
        port: Annotated[int | None, typer.Option("--port", help="Loopback port (default: config).")] = None,
        profile: Profile = None,
    ) -> None:
        """A local Anthropic/OpenAI-compatible endpoint for agent tools (Claude Code, SDKs, aider)."""
        from byollm.client.proxy import serve_proxy

        say: Callable[[str], None] = lambda line: err.print(escape(line))  # noqa: E731
        with _context(profile) as ctx:
            serve_proxy(ctx, port=port or ctx.config.proxy_port, say=say)
