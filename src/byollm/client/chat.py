"""``byollm chat`` and ``byollm ask``: answers streamed from the gateway, with the route that served them.

``ChatSession`` holds one conversation: the model (a name or ``auto``), the messages so far, the last
answer's route, and per-route usage totals. ``run_chat`` is the interactive loop (readline input with a
credential-free history, Rich rendering, slash commands); ``ask`` is the one-shot form for scripts, with the
answer on stdout and the route on stderr so that ``$(byollm ask ...)`` captures only the answer.

Every request carries what ``client.attach`` decides (token, a fresh AWS snapshot, BYOK keys). When the
AWS credentials expired and auto-refresh is off, the request is not sent: the user is told the command to
run and offered to turn auto-refresh on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table

from byollm.client.aws import CredentialsExpiredError, NoCredentialsFoundError
from byollm.client.config import load_config, save_config, set_value
from byollm.client.context import ClientContext
from byollm.client.gateway import GatewayError, RouteFailure, StreamedAnswer
from byollm.client.history import SafeHistory
from byollm.errors import ByollmError, ErrorClass

__all__ = ["ChatSession", "ask", "run_chat"]

HELP = """\
/model [name]   show the models you may use, or switch (a model name or auto)
/route          which route served the last answer, and any fallback
/usage          requests and tokens in this session, per route
/reload         re-read your AWS credentials (after `aws login`)
/retry          send the last message again
/new            start a new conversation
/help           this list
/quit           leave (also Ctrl-D)"""


@dataclass
class _Totals:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class ChatSession:
    ctx: ClientContext
    model: str
    max_tokens: int = 1024
    messages: list[dict[str, Any]] = field(default_factory=list)
    last: StreamedAnswer | None = None
    pending: str | None = None  # a message that could not be sent (for /retry)
    usage: dict[str, _Totals] = field(default_factory=dict)

    def known_secrets(self) -> list[str]:
        """Values a history line must never contain (the token and BYOK keys; AWS values when loaded)."""
        values = [self.ctx.store.gateway_token() or "", *self.ctx.store.byok_keys().values()]
        return [v for v in values if v]

    def stream(self, text: str, on_text: Callable[[str], None]) -> StreamedAnswer:
        """Send ``text`` as the next user turn and stream the answer into ``on_text``.

        A message that contains the gateway token or a stored provider key is not sent: pasting a secret
        into the wrong window should cost nothing."""
        if any(secret in text for secret in self.known_secrets()):
            raise ByollmError(ErrorClass.INVALID_REQUEST, "this message contains your byollm token or one of your"
                              " provider keys, so it was not sent")
        headers, _ = self.ctx.attacher.headers_for(self.model)
        body = {"model": self.model, "max_tokens": self.max_tokens,
                "messages": [*self.messages, {"role": "user", "content": text}]}
        with self.ctx.gateway.stream_message(body, headers) as (answer, deltas):
            for delta in deltas:
                on_text(delta)
        self.messages += [{"role": "user", "content": text}, {"role": "assistant", "content": answer.text or "…"}]
        self.last = answer
        totals = self.usage.setdefault(answer.route or "?", _Totals())
        totals.requests += 1
        totals.input_tokens += answer.input_tokens
        totals.output_tokens += answer.output_tokens
        return answer


_BILLING = {"customer_cloud": "your team's AWS account", "ai_credits": "AI credits", "user_key": "your own key"}


def route_line(answer: StreamedAnswer) -> str:
    """One line after each answer: where it ran, any fallback and why, and who paid what."""
    parts = [f"route {answer.route or '?'}", f"model {answer.model or '?'}"]
    if answer.fallbacks:
        reasons = ", ".join(f"{f.route}: {f.code}" for f in answer.failures)
        parts.append(f"after {answer.fallbacks} fallback(s)" + (f" ({reasons})" if reasons else ""))
    else:
        parts.append("no fallback")
    if answer.billing:
        paid = f"billed to {_BILLING.get(answer.billing, answer.billing)}"
        if answer.billing == "ai_credits":
            paid += f": {answer.credits if answer.credits is not None else '?'} credits"
        parts.append(paid)
    if answer.auto_reason:
        parts.append(f"auto: {answer.auto_reason}")
    return " · ".join(parts)


def fix_lines(failures: Sequence[RouteFailure]) -> list[str]:
    """One line per failed route: its class and the sentence that fixes it."""
    return [f"  {f.route}: {f.code}" + (f". Fix: {f.remediation}" if f.remediation else "") for f in failures]


# --- ask -----------------------------------------------------------------------------------------------------


AUTO_REFRESH_QUESTION = "Turn on auto-refresh now, so the session refreshes as far as AWS allows? [y/N] "


def offer_auto_refresh(ctx: ClientContext, exc: BaseException, ask_yes: Callable[[str], bool] | None,
                       say: Callable[[str], None]) -> bool:
    """At an expiry with auto-refresh off, ask once whether to turn it on (saved in the client's settings);
    True when it was turned on. Without a way to ask (not a terminal), nothing is asked: the failure text
    already names `byollm config set auto_refresh true`."""
    if not isinstance(exc, CredentialsExpiredError) or ctx.aws.auto_refresh or ask_yes is None:
        return False
    if not ask_yes(AUTO_REFRESH_QUESTION):
        return False
    save_config(set_value(load_config(), "auto_refresh", "true"))
    ctx.aws.set_auto_refresh(True)
    say(f"auto-refresh is on. Run `{exc.command}` if the session itself ended, then try again.")
    return True


def ask(ctx: ClientContext, prompt: str, model: str, *, out: TextIO | None = None, err: TextIO | None = None,
        max_tokens: int = 1024, ask_yes: Callable[[str], bool] | None = None) -> int:
    """Answer on ``out``, route (or error and remediation) on ``err``; the exit code. With ``ask_yes`` (a
    terminal is attached), an expiry with auto-refresh off offers to turn it on, as ``chat`` does.

    The streams default to ``sys.stdout``/``sys.stderr`` as they are at call time, not at import time: a
    caller (a test runner, an embedding program) may have replaced them since this module was imported."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    session = ChatSession(ctx, model, max_tokens=max_tokens)

    def write(text: str) -> None:
        out.write(text)
        out.flush()

    try:
        answer = session.stream(prompt, write)
    except (ByollmError, GatewayError) as exc:
        err.write(_failure_text(exc) + "\n")
        err.flush()
        def say(line: str) -> None:
            err.write(line + "\n")

        offer_auto_refresh(ctx, exc, ask_yes, say)
        return 1
    out.write("\n")
    out.flush()
    for problem in answer.errors:
        err.write(f"error: {problem}\n")
    err.write(route_line(answer) + "\n")
    for line in fix_lines(answer.failures):
        err.write(line + "\n")
    return 1 if answer.errors else 0


def _failure_text(exc: BaseException) -> str:
    if isinstance(exc, CredentialsExpiredError):
        return f"{exc.detail} ({exc.error_class.code}). {exc.sentence}"
    if isinstance(exc, NoCredentialsFoundError):
        return f"{exc.detail} ({exc.error_class.code}). Run `{exc.command}`."
    if isinstance(exc, ByollmError):
        return f"{exc.detail} ({exc.error_class.code}). {exc.error_class.remediation}"
    if isinstance(exc, GatewayError):
        text = f"{exc.message} ({exc.code}). {exc.remediation}".rstrip()
        return "\n".join([text, *fix_lines(exc.attempts)])
    return str(exc)


# --- chat ----------------------------------------------------------------------------------------------------


class _Input:
    """``input()`` with readline editing, and history only through ``SafeHistory``."""

    def __init__(self, history: SafeHistory) -> None:
        self._history = history
        try:
            import readline
        except ImportError:  # pragma: no cover - readline is missing on some platforms
            self._readline: Any = None
            return
        self._readline = readline
        readline.set_auto_history(False)
        readline.clear_history()
        for line in history.load():
            readline.add_history(line)

    def read(self, prompt: str) -> str:
        line = input(prompt)
        if self._readline is not None and self._history.add(line):
            self._readline.add_history(line.strip())
        return line


def _models_table(session: ChatSession) -> Table:
    headers, _ = session.ctx.attacher.headers_for(None)
    table = Table(title="Models you may use", show_lines=False)
    table.add_column("model")
    table.add_column("routes (in order)")
    for row in session.ctx.gateway.models(headers):
        routes = ", ".join(f"{r['host']} ({r['billing']})" for r in (row.get("byollm") or {}).get("routes") or [])
        marker = " ◂" if row["id"] == session.model else ""
        table.add_row(row["id"] + marker, routes or "the best enabled model for the task")
    return table


def _usage_table(session: ChatSession) -> Table:
    table = Table(title="This session")
    for column in ("route", "requests", "input tokens", "output tokens"):
        table.add_column(column)
    for route, totals in session.usage.items():
        table.add_row(route, str(totals.requests), str(totals.input_tokens), str(totals.output_tokens))
    return table


def _command(session: ChatSession, console: Console, line: str, ask_yes: Callable[[str], bool]) -> str | None:
    """Run a slash command; return a message to send (``/retry``), ``"\\0quit"`` to leave, else ``None``."""
    name, _, arg = line[1:].partition(" ")
    name, arg = name.lower(), arg.strip()
    if name in ("quit", "exit", "q"):
        return "\0quit"
    if name == "help":
        console.print(HELP, markup=False)
    elif name == "model":
        if arg:
            session.model = arg
            console.print(f"model: [bold]{arg}[/]")
        else:
            console.print(_models_table(session))
    elif name == "route":
        console.print(route_line(session.last) if session.last else "no answer yet", markup=False)
    elif name == "usage":
        console.print(_usage_table(session))
    elif name == "reload":
        session.ctx.aws.reload()
        try:
            info = session.ctx.aws.info()
            expiry = info.expires_at.isoformat(timespec="seconds") if info.expires_at else "no expiry"
            console.print(f"AWS credentials reloaded: {info.method}, until {expiry}")
        except (ByollmError, GatewayError) as exc:
            _show_failure(session, console, exc, ask_yes)
    elif name == "retry":
        if session.pending:
            return session.pending
        console.print("nothing to retry")
    elif name == "new":
        session.messages.clear()
        console.print("new conversation")
    else:
        console.print(f"unknown command /{name}; /help lists them", markup=False)
    return None


def _show_failure(session: ChatSession, console: Console, exc: BaseException, ask_yes: Callable[[str], bool]) -> None:
    console.print(f"[red]✗[/] {escape(_failure_text(exc))}", highlight=False)
    offer_auto_refresh(session.ctx, exc, ask_yes,
                       lambda line: console.print(line.replace("try again", "/retry"), markup=False))


def _answer(session: ChatSession, console: Console, text: str, ask_yes: Callable[[str], bool]) -> None:
    shown = {"text": ""}
    try:
        with Live(Markdown(""), console=console, refresh_per_second=12, vertical_overflow="visible") as live:

            def on_text(delta: str) -> None:
                shown["text"] += delta
                live.update(Markdown(shown["text"]))

            answer = session.stream(text, on_text)
    except (ByollmError, GatewayError) as exc:
        session.pending = text
        _show_failure(session, console, exc, ask_yes)
        return
    session.pending = None
    for problem in answer.errors:
        console.print(f"[red]✗[/] {escape(problem)}", highlight=False)
    style = "yellow" if answer.fallbacks else "dim"
    console.print(f"[{style}]↳ {escape(route_line(answer))}[/]", highlight=False)
    for line in fix_lines(answer.failures):
        console.print(f"[{style}]{escape(line)}[/]", highlight=False)


def run_chat(ctx: ClientContext, model: str, *, console: Console | None = None,
             history: SafeHistory | None = None, max_tokens: int = 1024) -> int:
    console = console or Console(highlight=False)
    session = ChatSession(ctx, model, max_tokens=max_tokens)
    reader = _Input(history or SafeHistory(known=session.known_secrets))

    def ask_yes(question: str) -> bool:
        try:
            return reader_plain(question).strip().lower() in ("y", "yes")
        except EOFError:
            return False

    def reader_plain(question: str) -> str:
        return input(question)

    console.print(f"byollm chat · gateway {ctx.gateway.base_url} · model [bold]{model}[/] · "
                  f"auto-refresh {'on' if ctx.aws.auto_refresh else 'off'} · /help for commands", highlight=False)
    while True:
        try:
            line = reader.read("you ▸ ")
        except (EOFError, KeyboardInterrupt):
            console.print()
            return 0
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            try:
                result = _command(session, console, text, ask_yes)
            except (ByollmError, GatewayError) as exc:
                _show_failure(session, console, exc, ask_yes)
                continue
            if result == "\0quit":
                return 0
            if result is None:
                continue
            text = result
        _answer(session, console, text, ask_yes)


