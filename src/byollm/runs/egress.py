"""The egress proxy: the only way out of a tool's sandbox, and only to the hosts the operator lists.

Why a proxy of our own: a sandboxed tool has a network namespace with nothing in it (``runs.sandbox``). When
the operator lists hosts in ``BYOLLM_RUN_EGRESS_HOSTS``, each tool invocation gets one of these proxies on a
unix socket bound into its sandbox (the in-sandbox relay, ``runs.egress_relay``, turns it back into the TCP
``HTTP_PROXY`` tools expect). The proxy speaks HTTP ``CONNECT`` (for TLS) and plain-HTTP forwarding with
absolute URLs, and for every request decides, outside the sandbox where the tool cannot interfere:

- the host (as the tool wrote it, case-insensitive, one trailing dot ignored) and port must be on the
  allow-list: an entry ``host:port`` allows that port, a bare ``host`` ports 80 and 443;
- the host is resolved here, and every address it resolves to must pass the same egress guard the Bedrock
  endpoint uses (``byollm.netguard``: loopback, private, link-local (the metadata service), CGNAT... are
  refused unless inside ``BYOLLM_ALLOWED_INTERNAL_NETWORKS``); the connection goes to the address that was
  checked, so a second DNS answer cannot rebind it;
- byollm's own public address is refused whatever the lists say, so no tool reaches the admin API through
  the proxy.

A refusal is an HTTP 403 whose body says why (host names only, never a resolved internal address).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from byollm.netguard import DestinationRefused, EgressGuard, literal_address

__all__ = ["AllowList", "EgressProxy", "parse_allow_list"]

log = logging.getLogger(__name__)

HOSTS_SETTING = "BYOLLM_RUN_EGRESS_HOSTS"
_DEFAULT_PORTS = frozenset({80, 443})
_HEAD_LIMIT = 64 * 1024
_HEAD_TIMEOUT_S = 30.0
_CONNECT_TIMEOUT_S = 10.0
_HOP_HEADERS = frozenset({"proxy-connection", "proxy-authorization", "connection", "keep-alive"})


def _norm(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host[:-1] if host.endswith(".") else host


def _split_host_port(text: str, default: int | None) -> tuple[str, int | None]:
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[1:end], text[end + 1:]
        return host, int(rest[1:]) if rest.startswith(":") else default
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default


@dataclass(frozen=True, slots=True)
class AllowList:
    """``(host, port)`` pairs; port None means ports 80 and 443."""

    entries: frozenset[tuple[str, int | None]]

    def allows(self, host: str, port: int) -> bool:
        name = _norm(host)
        return (name, port) in self.entries or (port in _DEFAULT_PORTS and (name, None) in self.entries)

    def __bool__(self) -> bool:
        return bool(self.entries)


def parse_allow_list(values: Iterable[str]) -> AllowList:
    """Parse the operator's list; a malformed entry raises ``ValueError`` naming the setting."""
    entries: set[tuple[str, int | None]] = set()
    for raw in values:
        if not raw.strip():
            continue
        try:
            host, port = _split_host_port(raw, None)
        except ValueError:
            host, port = "", None
        if not host or "/" in host or (port is not None and not 0 < port < 65536):
            raise ValueError(f"{HOSTS_SETTING}: {raw.strip()!r} is not a host name or host:port (for example"
                             " pypi.org or files.example.com:8443)")
        entries.add((_norm(host), port))
    return AllowList(frozenset(entries))


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EgressProxy:
    """One proxy on one unix socket (one per tool invocation; ``start`` then ``close``)."""

    def __init__(self, allow: AllowList, guard: EgressGuard, *, own: Sequence[tuple[str, int]] = ()) -> None:
        """``own``: byollm's own ``(host, port)`` addresses (its public URL), refused whatever the lists say."""
        self._allow = allow
        self._guard = guard
        self._own = {(_norm(h), p) for h, p in own}
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, path: Path) -> None:
        self._server = await asyncio.start_unix_server(self._handle, path=str(path), limit=_HEAD_LIMIT)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    # --- the decision --------------------------------------------------------------------------------------

    async def _own_addresses(self) -> set[tuple[str, int]]:
        addresses: set[tuple[str, int]] = set()
        loop = asyncio.get_running_loop()
        for host, port in self._own:
            with contextlib.suppress(OSError):
                for info in await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM):
                    addresses.add((str(info[4][0]), port))
        return addresses

    async def _destination(self, host: str, port: int) -> list[str]:
        """The checked addresses to connect to for ``host:port``, or ``_Refused`` saying why not."""
        name = _norm(host)
        if not name:
            raise _Refused("the request names no host")
        if not self._allow.allows(name, port):
            raise _Refused(f"{name}:{port} is not on the operator's egress allow-list ({HOSTS_SETTING})")
        if (name, port) in self._own:
            raise _Refused(f"{name}:{port} is byollm itself; tools may not call byollm's API")
        literal = literal_address(name)
        try:
            if literal is not None:
                self._guard.check_address(name, literal)
                addresses = [str(literal)]
            else:
                infos = await asyncio.wait_for(
                    asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM), 5)
                addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
                if not addresses:
                    raise _Refused(f"{name} does not resolve from the byollm server")
                for address in addresses:
                    self._guard.check_address(name, address)
        except DestinationRefused as refused:
            raise _Refused(f"{refused.reason} (byollm refuses internal addresses unless the operator allows"
                           " the network in BYOLLM_ALLOWED_INTERNAL_NETWORKS)") from None
        except (OSError, TimeoutError):
            raise _Refused(f"{name} does not resolve from the byollm server") from None
        own = await self._own_addresses()
        if any((address, port) in own for address in addresses):
            raise _Refused(f"{name}:{port} is byollm itself; tools may not call byollm's API")
        return addresses

    # --- the protocol --------------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        upstream: asyncio.StreamWriter | None = None
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_TIMEOUT_S)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                await self._refuse(writer, 400, "not an HTTP proxy request")
                return
            method, target, version = parts
            try:
                if method.upper() == "CONNECT":
                    host, maybe_port = _split_host_port(target, None)
                    if maybe_port is None:
                        raise ValueError(target)
                    port, path = maybe_port, ""
                else:
                    url = urlsplit(target)
                    if url.scheme != "http" or not url.hostname:
                        await self._refuse(writer, 400, "send absolute http:// URLs, or CONNECT for https")
                        return
                    host, port = url.hostname, url.port or 80
                    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
            except ValueError:
                await self._refuse(writer, 400, f"cannot read the destination {target[:200]!r}")
                return
            try:
                addresses = await self._destination(host, port)
            except _Refused as refused:
                log.info("egress refused: %s", refused.reason)
                await self._refuse(writer, 403, refused.reason)
                return
            connected = await _connect(addresses, port)
            if connected is None:
                await self._refuse(writer, 502, f"could not connect to {_norm(host)}:{port}")
                return
            up_reader, up_writer = connected
            upstream = up_writer
            if method.upper() == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            else:
                kept = [line for line in lines[1:] if line and line.split(":", 1)[0].strip().lower()
                        not in _HOP_HEADERS]
                up_writer.write(("\r\n".join([f"{method} {path} {version}", *kept, "Connection: close"])
                                + "\r\n\r\n").encode("latin-1"))
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            for w in (upstream, writer):
                if w is not None:
                    w.close()

    @staticmethod
    async def _refuse(writer: asyncio.StreamWriter, status: int, reason: str) -> None:
        body = f"byollm egress proxy: {reason}\n".encode()
        phrase = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
        writer.write(f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                     f"Connection: close\r\n\r\n".encode() + body)
        with contextlib.suppress(OSError):
            await writer.drain()


async def _connect(addresses: Sequence[str], port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """Connect to the first of the checked ``addresses`` that answers (never to a name: no second lookup)."""
    for address in addresses:
        try:
            return await asyncio.wait_for(asyncio.open_connection(address, port), _CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError):
            continue
    return None


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()
