"""The HTTP server's own limits: header size and count, header and body read timeouts, idle keep-alive,
concurrent connections, and which peers may speak for a client through forwarding headers.

Why a subclass of uvicorn's httptools protocol: uvicorn bounds neither the size nor the number of request
headers for httptools (a single unfinished header is buffered whole, so two 32 MiB ones pinned 124 MiB), and
has no timeout while headers or a body arrive (a client sending one header line every few seconds kept its
connection forever). These limits sit where the bytes arrive, before any request exists, so they cost the
hot path a few counters and two deadlines (floats, checked by one sweep per server every ``SWEEP_S``) per
request, and nothing inside the app. The rest is uvicorn's own
configuration: ``timeout_keep_alive``, ``limit_concurrency`` (requests on a server over its connection cap
are answered 503), and forwarded headers trusted only from the operator's ``BYOLLM_TRUSTED_PROXIES``.

The protocol also records each request's target exactly as sent (``TARGET_EXTENSION`` in the scope's
extensions), so ``byollm proxy`` can decide on the raw bytes rather than on a decoded path.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from byollm.settings import Settings

__all__ = ["TARGET_EXTENSION", "HardenedHttpProtocol", "LimitedConfig", "ServerLimits"]

TARGET_EXTENSION = "byollm.request_target"
SWEEP_S = 0.5  # how often header and body deadlines are checked


@dataclass(frozen=True, slots=True)
class ServerLimits:
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    keep_alive_s: float = 75.0
    max_connections: int = 1000
    trusted_proxies: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerLimits:
        return cls(max_header_bytes=settings.max_header_bytes, max_headers=settings.max_headers,
                   header_timeout_s=settings.header_timeout_s, body_timeout_s=settings.body_timeout_s,
                   keep_alive_s=settings.keep_alive_s, max_connections=settings.max_connections,
                   trusted_proxies=settings.trusted_proxies)


class _HeadersTooLarge(Exception):
    """Raised from a parser callback; the parser wraps it and ``data_received`` answers 431."""


class LimitedConfig(uvicorn.Config):
    """uvicorn's configuration with byollm's limits applied; picklable, so ``--workers`` processes get it."""

    def __init__(self, app: Any, *, limits: ServerLimits, **kwargs: Any) -> None:
        trusted = list(limits.trusted_proxies)
        super().__init__(app, http=HardenedHttpProtocol, ws="none", timeout_keep_alive=int(limits.keep_alive_s),
                         limit_concurrency=limits.max_connections, proxy_headers=bool(trusted),
                         forwarded_allow_ips=trusted or [], server_header=False, access_log=False, **kwargs)
        self.limits = limits


def _sweep(loop: asyncio.AbstractEventLoop, state: Any) -> None:
    """Close the connections of one server whose header or body deadline passed; runs every ``SWEEP_S`` while
    the server has connections. Why a sweep rather than a timer per request: arming and cancelling two timers
    per request cost the hot path more than everything else here together; a deadline is one float."""
    now = loop.time()
    for protocol in list(state.connections):
        if isinstance(protocol, HardenedHttpProtocol):
            protocol.check_deadlines(now)
    if state.connections:
        loop.call_later(SWEEP_S, _sweep, loop, state)
    else:
        state.byollm_sweeping = False


class HardenedHttpProtocol(HttpToolsProtocol):
    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.limits: ServerLimits = getattr(config, "limits", None) or ServerLimits()
        self._in_headers = True
        self._begun = False  # a request has started arriving on this connection and its headers have not
        self._header_bytes = 0
        self._header_count = 0
        self._has_body = False
        self._header_deadline: float | None = None
        self._body_deadline: float | None = None

    # --- connection -------------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline = self.loop.time() + self.limits.header_timeout_s
        if not getattr(self.server_state, "byollm_sweeping", False):
            self.server_state.byollm_sweeping = True  # type: ignore[attr-defined]
            self.loop.call_later(SWEEP_S, _sweep, self.loop, self.server_state)

    def connection_lost(self, exc: Exception | None) -> None:
        self._header_deadline = self._body_deadline = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, b"Upgrades are not supported.")
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadersTooLarge) or isinstance(exc.__cause__, _HeadersTooLarge):
                self._refuse(431, b"Request header fields too large.")
            else:
                self._refuse(400, b"Invalid HTTP request received.")
            return
        if self._in_headers:  # every byte of this read is part of a request line or header still unfinished
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._refuse(431, b"Request header fields too large.")

    # --- parser callbacks -------------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = self._begun = True
        self._has_body = False
        self._header_bytes = 0
        self._header_count = 0
        if self._header_deadline is None:
            self._header_deadline = self.loop.time() + self.limits.header_timeout_s

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_header_bytes:
            raise _HeadersTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value) + 4
        if self._header_count > self.limits.max_headers or self._header_bytes > self.limits.max_header_bytes:
            raise _HeadersTooLarge
        super().on_header(name, value)
        lowered = self.headers[-1][0]
        if lowered == b"content-length" or lowered == b"transfer-encoding":
            self._has_body = True

    def on_headers_complete(self) -> None:
        self._in_headers = self._begun = False
        self._header_deadline = None
        self.scope["extensions"] = {TARGET_EXTENSION: bytes(self.url)}  # type: ignore[dict-item]
        super().on_headers_complete()
        if self._has_body:
            self._body_deadline = self.loop.time() + self.limits.body_timeout_s

    def on_message_complete(self) -> None:
        self._body_deadline = None
        super().on_message_complete()

    # --- deadlines --------------------------------------------------------------------------------------------
    def check_deadlines(self, now: float) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self._header_deadline is not None and now >= self._header_deadline:
            self._header_deadline = None
            if self._in_headers:
                if self._header_bytes or self._begun:
                    self._refuse(408, b"Request headers not received in time.")
                else:
                    self.transport.close()  # an idle connection that never started a request: nothing to answer
        elif self._body_deadline is not None and now >= self._body_deadline:
            # the app may be mid-read: it sees a disconnect, and nothing is written over what it may send
            self._body_deadline = None
            self.logger.warning("closed a connection whose request body was not received in %.0f s",
                                self.limits.body_timeout_s)
            self.transport.close()

    def _refuse(self, status: int, message: bytes) -> None:
        """Answer ``status`` and close, unless an earlier response is still being written (then just close)."""
        self._header_deadline = self._body_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(b"".join([
                STATUS_LINE[status], b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: ", str(len(message)).encode(), b"\r\n", b"connection: close\r\n\r\n", message]))
        self.transport.close()
