"""``byollm proxy``: a loopback Anthropic- and OpenAI-compatible endpoint in front of the gateway.

Agent tools (Claude Code via ``ANTHROPIC_BASE_URL``, the official SDKs, aider) talk to it unmodified. It
forwards only the inference endpoints an agent tool needs (``client.proxy_paths`` decides on the raw request
target; anything else, and any path spelled to escape them, is refused without the token). For each of those
requests the proxy:

1. checks the per-run proxy key the tool sends (``Authorization: Bearer`` or ``x-api-key``), so another
   local user cannot spend your credentials through your port, and strips it with every other auth header
   and any ``x-byollm-aws-*``/``x-byollm-byok-*`` header the tool sent;
2. attaches the gateway token, a fresh AWS snapshot and BYOK keys per ``client.attach``;
3. forwards to the gateway and streams the answer back byte for byte (status and headers included, so the
   tool sees ``x-byollm-route`` and friends).

When the AWS credentials expired (auto-refresh off) or the session can no longer refresh, nothing is sent:
the tool gets ``local_credentials_expired`` in its own API's error shape (Anthropic JSON on
``/v1/messages``, OpenAI JSON on ``/v1/chat/completions``) with 401 and ``x-should-retry: false``, which the
SDKs do not retry, and the proxy's terminal shows the one sentence that fixes it. After the user signs in
again (the AWS files change) or turns auto-refresh on (``byollm config set auto_refresh true``), the next
request picks that up without a restart.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import orjson
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from byollm.api.server_limits import TARGET_EXTENSION
from byollm.client.attach import Attacher
from byollm.client.aws import CredentialsExpiredError
from byollm.client.context import ClientContext
from byollm.client.proxy_paths import decide
from byollm.errors import ByollmError, ErrorClass

__all__ = ["ProxyState", "build_proxy_app", "describe_startup", "env_lines", "new_proxy_key", "request_target",
           "serve_proxy"]

_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "host", "content-length",
})
_STRIPPED = frozenset({"authorization", "x-api-key", "cookie", "x-byollm-team", "api-key",
                       "x-goog-api-key"})
_STRIPPED_PREFIXES = ("x-byollm-aws-", "x-byollm-byok-")
_MODEL_PATHS = ("/v1/messages", "/v1/messages/count_tokens", "/v1/chat/completions", "/v1/responses")


def new_proxy_key() -> str:
    return "byollm-proxy-" + secrets.token_urlsafe(24)


def env_lines(url: str, proxy_key: str) -> list[str]:
    """The shell lines that point agent tools at the proxy."""
    return [
        f"export ANTHROPIC_BASE_URL={url}",
        f"export ANTHROPIC_AUTH_TOKEN={proxy_key}",
        f"export OPENAI_BASE_URL={url}/v1",
        f"export OPENAI_API_KEY={proxy_key}",
    ]


@dataclass
class ProxyState:
    gateway_url: str
    attacher: Attacher
    proxy_key: str
    say: Callable[[str], None]  # a line on the proxy's own terminal (never a secret)
    auto_refresh_setting: Callable[[], bool] | None = None  # re-read from the config file on expiry
    timeout: httpx.Timeout = field(default_factory=lambda: httpx.Timeout(10.0, read=600.0, write=60.0))
    _last_said: dict[str, float] = field(default_factory=dict)
    http: httpx.AsyncClient | None = None

    def say_once(self, text: str, every_s: float = 10.0) -> None:
        now = time.monotonic()
        if now - self._last_said.get(text, -every_s) >= every_s:
            self._last_said[text] = now
            self.say(text)


def _shape(path: str) -> str:
    from byollm.api.errors import shape_for_path

    return shape_for_path(path)


def _error_response(path: str, error: ByollmError) -> Response:
    from byollm.api.errors import error_body

    rid = "req_local_" + secrets.token_hex(8)
    body = error_body(error, _shape(path), rid)
    headers = {"x-byollm-error-code": error.error_class.code, "request-id": rid, "x-request-id": rid}
    if not error.error_class.retryable:
        headers["x-should-retry"] = "false"
    return Response(orjson.dumps(body), status_code=error.status, media_type="application/json", headers=headers)


def _presented_key(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key", "").strip()


def _model_of(path: str, body: bytes) -> str | None:
    if path not in _MODEL_PATHS:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, str) and model else None


def _upstream_headers(request: Request, attached: dict[str, str]) -> dict[str, str]:
    out = {}
    for name, value in request.headers.items():
        lowered = name.lower()
        if lowered in _HOP_BY_HOP or lowered in _STRIPPED or lowered.startswith(_STRIPPED_PREFIXES):
            continue
        out[lowered] = value
    out.update(attached)
    return out


async def _attach(state: ProxyState, model: str | None) -> dict[str, str]:
    """The attached headers, giving the session one chance to have been renewed before refusing."""
    aws = state.attacher.aws
    try:
        headers, _ = await asyncio.to_thread(state.attacher.headers_for, model)
        return headers
    except CredentialsExpiredError:
        changed = False
        if state.auto_refresh_setting is not None:
            wanted = state.auto_refresh_setting()
            if wanted != aws.auto_refresh:
                aws.set_auto_refresh(wanted)
                state.say(f"auto-refresh is now {'on' if wanted else 'off'}")
                changed = True
        if not changed and not await asyncio.to_thread(aws.reload_if_signed_in_again):
            raise
        headers, _ = await asyncio.to_thread(state.attacher.headers_for, model)
        state.say("AWS credentials reloaded")
        return headers


def request_target(scope: Scope) -> bytes:
    """The request target exactly as the client sent it: the hardened server protocol records it
    (``api.server_limits``); other servers give only the parsed path, then rebuilt from ``raw_path``."""
    recorded = scope.get("extensions", {}).get(TARGET_EXTENSION)
    if isinstance(recorded, bytes):
        return recorded
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    return raw + (b"?" + query if query else b"")


def _refusal_shape_path(target: bytes) -> str:
    """A path that selects the tool's error shape for a refused target (Anthropic's on messages paths)."""
    return "/v1/messages" if b"messages" in target else "/v1/chat/completions"


async def _proxy(request: Request, path: str, query: bytes) -> Response:
    state: ProxyState = request.app.state.proxy
    if not hmac.compare_digest(_presented_key(request).encode(), state.proxy_key.encode()):
        return _error_response(path, ByollmError(
            ErrorClass.UNAUTHENTICATED, "this request did not carry the proxy key `byollm proxy` printed;"
            " set ANTHROPIC_AUTH_TOKEN (or OPENAI_API_KEY) to it"))
    body = await request.body()
    model = _model_of(path, body)
    try:
        attached = await _attach(state, model)
    except CredentialsExpiredError as exc:
        state.say_once("\n".join([f"[{path}] refused:", *exc.terminal_lines()]))
        return _error_response(path, exc)
    except ByollmError as exc:
        state.say_once(f"[{path}] {exc.detail}. {exc.error_class.remediation}")
        return _error_response(path, exc)
    assert state.http is not None
    url = httpx.URL(state.gateway_url + path, query=query) if query else httpx.URL(state.gateway_url + path)
    upstream = state.http.build_request(request.method, url, headers=_upstream_headers(request, attached),
                                        content=body)
    started = time.perf_counter()
    try:
        response = await state.http.send(upstream, stream=True)
    except httpx.HTTPError as exc:
        state.say_once(f"cannot reach the gateway at {state.gateway_url} ({type(exc).__name__})")
        return _error_response(path, ByollmError(ErrorClass.UPSTREAM_UNAVAILABLE,
                                                 f"byollm proxy cannot reach the gateway ({type(exc).__name__})"))
    route = response.headers.get("x-byollm-route", "-")
    fallbacks = response.headers.get("x-byollm-fallbacks", "0")
    code = response.headers.get("x-byollm-error-code")
    reasons = response.headers.get("x-byollm-fallback-reasons")
    billing = response.headers.get("x-byollm-billing")
    credits = response.headers.get("x-byollm-credits")
    state.say(f"{request.method} {path} {model or ''} -> {response.status_code} route={route} fallbacks={fallbacks}"
              + (f" ({reasons})" if reasons else "") + (f" billing={billing}" if billing else "")
              + (f" credits={credits}" if credits else "")
              + (f" error={code}" if code else "") + f" ({(time.perf_counter() - started) * 1000:.0f} ms to headers)")
    headers = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP}

    async def body_bytes() -> AsyncIterator[bytes]:
        async for chunk in response.aiter_raw():
            yield chunk

    return StreamingResponse(body_bytes(), status_code=response.status_code, headers=headers,
                             background=BackgroundTask(response.aclose))


class _ProxyApp:
    """Every HTTP request is decided on its raw target (``proxy_paths.decide``) before anything else; the
    Starlette app behind it only runs the lifespan and holds the state."""

    def __init__(self, inner: Starlette) -> None:
        self.inner = inner
        self.state = inner.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        scope["app"] = self.inner
        request = Request(scope, receive)
        target = request_target(scope)
        decision = decide(scope["method"], target)
        if decision.path is None:
            assert decision.refusal is not None
            status, reason = decision.refusal
            error_class = ErrorClass.NOT_FOUND if status == 404 else ErrorClass.INVALID_REQUEST
            response = _error_response(_refusal_shape_path(target), ByollmError(error_class, reason))
        else:
            response = await _proxy(request, decision.path, decision.query)
        await response(scope, receive, send)


def build_proxy_app(state: ProxyState) -> ASGIApp:
    """The proxy as an ASGI app; its HTTP client lives for the app's lifespan."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.http = httpx.AsyncClient(timeout=state.timeout, follow_redirects=False)
        try:
            yield
        finally:
            await state.http.aclose()
            state.http = None

    app = Starlette(lifespan=lifespan)
    app.state.proxy = state
    return _ProxyApp(app)


def describe_startup(state: ProxyState) -> list[str]:
    """What the proxy says when it starts: the credential source and, for long-term keys, a warning."""
    from byollm.client.aws import NoCredentialsFoundError

    lines = []
    try:
        info = state.attacher.aws.info()
    except (CredentialsExpiredError, NoCredentialsFoundError) as exc:
        sentence = exc.sentence if isinstance(exc, CredentialsExpiredError) else f"Run `{exc.command}`."
        return [f"AWS credentials: {exc.detail}. {sentence} (Direct-API models still work.)"]
    except ByollmError as exc:
        return [f"AWS credentials: {exc.detail}"]
    expiry = info.expires_at.isoformat(timespec="seconds") if info.expires_at else "no expiry"
    lines.append(f"AWS credentials: {info.method} (profile {info.profile or 'default'}), "
                 f"{'LONG-TERM keys' if info.long_term else 'temporary'}, {expiry}; "
                 f"auto-refresh {'on' if state.attacher.aws.auto_refresh else 'off'}")
    if info.long_term:
        lines.append("warning: these are an IAM user's long-term access keys; the gateway refuses them unless"
                     " your team allows them. Prefer `aws login` or IAM Identity Center.")
    return lines



class _ProxyLog:
    """The proxy's terminal lines, also appended to ``$XDG_STATE_HOME/byollm/proxy.log`` (0600). The lines
    carry methods, paths, models, routes and error classes: never a header value."""

    def __init__(self, say: Callable[[str], None]) -> None:
        from byollm.client.paths import ensure_private_dir, state_dir

        self._say = say
        self.path = ensure_private_dir(state_dir()) / "proxy.log"

    def __call__(self, line: str) -> None:
        import os
        from datetime import UTC, datetime

        self._say(line)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(f"{datetime.now(UTC).isoformat(timespec='seconds')} {line}\n")


def serve_proxy(ctx: ClientContext, *, port: int, say: Callable[[str], None], proxy_key: str | None = None) -> None:
    """Run the proxy on 127.0.0.1:``port`` in the foreground until interrupted."""
    import uvicorn

    from byollm.api.server_limits import LimitedConfig, ServerLimits
    from byollm.client.config import load_config

    log = _ProxyLog(say)
    key = proxy_key or new_proxy_key()
    assert ctx.config.gateway_url is not None
    state = ProxyState(ctx.config.gateway_url, ctx.attacher, key, log,
                       auto_refresh_setting=lambda: load_config().auto_refresh)
    url = f"http://127.0.0.1:{port}"
    say(f"byollm proxy on {url} -> {ctx.config.gateway_url}")
    for line in describe_startup(state):
        log(line)
    say("Use these in the shell that runs your agent tool:")
    for line in env_lines(url, key):
        say("  " + line)
    config = LimitedConfig(build_proxy_app(state), limits=ServerLimits(), host="127.0.0.1", port=port,
                           log_level="warning", lifespan="on")
    uvicorn.Server(config).run()
