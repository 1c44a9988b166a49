"""Run an ASGI app with uvicorn on a real loopback socket in a background thread.

Why a real socket: tests and the demo talk to byollm through real HTTP clients (the official SDKs, httpx,
the CLI), so the protocol they see is the one production sees. Binding port 0 picks a free port; the
socket is bound before the thread starts, so ``url`` is valid as soon as ``start()`` returns.

When the app needs its own URL before it is built (the OIDC issuer URL must be in ``Settings`` before
``create_app(settings)``), bind first with ``bind_socket``, read ``socket_url``, build the app, and hand the
socket over: ``ServerThread(app, sock=sock)``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from byollm.api.server_limits import LimitedConfig, ServerLimits

# How long an idle client connection stays open (the default of ``BYOLLM_KEEP_ALIVE_SECONDS``). uvicorn's
# default (5 s) equals httpx's pool expiry, so a client reusing a connection at the moment the server closes it
# gets a dropped request; AWS's and most load balancers' idle timeouts are 60 s or more, and clients' pools
# expire well before that.
KEEP_ALIVE_S = int(ServerLimits().keep_alive_s)

__all__ = ["ServerThread", "bind_socket", "socket_url"]


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A bound (not yet listening) TCP socket; port 0 picks a free port.

    ``TCP_NODELAY`` is set here because accepted connections inherit it: asyncio's server on a socket it was
    handed does not set it per connection, and without it a response written as head and body waits for the
    client's delayed ACK (about 40 ms per request on a kept-alive connection).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock


def socket_url(sock: socket.socket) -> str:
    """The http URL a server on ``sock`` will answer at."""
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


class ServerThread:
    """``byollm serve``'s server (the same protocol and limits) for one app, in a thread.

    ``limits`` default to the ones of the app's settings when the app is byollm's (``create_app``), else the
    defaults."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
                 sock: socket.socket | None = None, limits: ServerLimits | None = None) -> None:
        self._sock = sock if sock is not None else bind_socket(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        if limits is None:
            settings = getattr(app, "byollm_settings", None)
            limits = ServerLimits.from_settings(settings) if settings is not None else ServerLimits()
        config = LimitedConfig(app, limits=limits, log_level=log_level, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"uvicorn:{self.port}", daemon=True)
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # surfaced by start()/stop() in the caller's thread
            self._error = exc

    def start(self, timeout: float = 30.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"server failed to start: {self._error!r}") from self._error
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start in time")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
