"""The HTTP server's own limits: header size and count, header and body read timeouts, idle keep-alive,
concurrent connections, and which peers may speak for a client through forwarding headers.

Why a subclass of uvicorn's httptools protocol: uvicorn bounds neither the size nor the number of request
headers for httptools (a single unfinished header is buffered whole, so two 32 MiB ones pinned 124 MiB), and
has no timeout while headers or a body arrive (a client sending one header line every few seconds kept its
connection forever). These limits sit where the bytes arrive, before any request exists, so they cost the
hot path one counter and one timer per request and nothing inside the app. The rest is uvicorn's own
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


class HardenedHttpProtocol(HttpToolsProtocol):
    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.limits: ServerLimits = getattr(config, "limits", None) or ServerLimits()
        self._in_headers = True
        self._begun = False  # a request has started arriving on this connection and its headers have not
        self._header_bytes = 0
        self._header_count = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    # --- connection -------------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
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
        self._header_bytes = 0
        self._header_count = 0
        self._arm_header_timer()

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

    def on_headers_complete(self) -> None:
        self._in_headers = self._begun = False
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self.scope["extensions"] = {TARGET_EXTENSION: bytes(self.url)}  # type: ignore[dict-item]
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.more_body and self._has_body():
            self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_timed_out)

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    # --- helpers ----------------------------------------------------------------------------------------------
    def _has_body(self) -> bool:
        for name, value in self.headers:
            if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"0", b"")):
                return True
        return False

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.limits.header_timeout_s, self._headers_timed_out)

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if self._in_headers and not self.transport.is_closing():
            if self._header_bytes or self._begun:
                self._refuse(408, b"Request headers not received in time.")
            else:
                self.transport.close()  # an idle connection that never started a request: nothing to answer

    def _body_timed_out(self) -> None:
        """The body did not arrive in time: the app sees a disconnect (it may be mid-read, so no answer is
        written over whatever it is about to send)."""
        self._body_timer = None
        if not self.transport.is_closing():
            self.logger.warning("closed a connection whose request body was not received in %.0f s",
                                self.limits.body_timeout_s)
            self.transport.close()

    def _refuse(self, status: int, message: bytes) -> None:
        """Answer ``status`` and close, unless an earlier response is still being written (then just close)."""
        self._cancel_timers()
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(b"".join([
                STATUS_LINE[status], b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: ", str(len(message)).encode(), b"\r\n", b"connection: close\r\n\r\n", message]))
        self.transport.close()
