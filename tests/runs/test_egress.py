"""The egress proxy over its unix socket, spoken to as a tool's HTTP client would (through the relay): allowed
hosts are reached by forwarding and by CONNECT; hosts off the list, internal addresses outside the operator's
networks, and byollm's own address are refused with 403 and a reason; the allow-list parser."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from byollm.netguard import EgressGuard
from byollm.runs.egress import EgressProxy, parse_allow_list


@pytest.fixture
async def upstream() -> AsyncIterator[int]:
    """A tiny HTTP server on loopback; answers with the request line it got."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        line = head.split(b"\r\n", 1)[0]
        body = b"upstream saw: " + line
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def _proxy(entries: list[str], networks: tuple[str, ...] = ("127.0.0.0/8",),
                 own: tuple[tuple[str, int], ...] = ()) -> tuple[EgressProxy, Path]:
    path = Path(tempfile.mkdtemp(prefix="byollm-egress-test-")) / "egress.sock"
    proxy = EgressProxy(parse_allow_list(entries), EgressGuard(networks), own=own)
    await proxy.start(path)
    return proxy, path


async def _ask(path: Path, request: bytes, then: bytes | None = None) -> bytes:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(request)
    await writer.drain()
    if then is not None:
        status = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in status:
            writer.close()
            return status
        writer.write(then)
        await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


async def test_allowed_host_is_forwarded_and_tunnelled(upstream: int) -> None:
    proxy, path = await _proxy([f"localhost:{upstream}"])
    try:
        got = await _ask(path, f"GET http://localhost:{upstream}/hello?x=1 HTTP/1.1\r\nHost: localhost\r\n"
                               "Proxy-Connection: keep-alive\r\n\r\n".encode())
        assert got.startswith(b"HTTP/1.1 200") and b"upstream saw: GET /hello?x=1 HTTP/1.1" in got
        tunnelled = await _ask(path, f"CONNECT localhost:{upstream} HTTP/1.1\r\n\r\n".encode(),
                               then=b"GET /through-tunnel HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"upstream saw: GET /through-tunnel" in tunnelled
    finally:
        await proxy.close()


async def test_hosts_off_the_list_are_refused(upstream: int) -> None:
    proxy, path = await _proxy([f"localhost:{upstream}", "pypi.org"])
    try:
        for target in (f"http://127.0.0.1:{upstream}/", f"http://localhost:{upstream + 1}/",
                       "http://169.254.169.254/latest/meta-data/", "http://example.com/", "http://pypi.org:8080/"):
            got = await _ask(path, f"GET {target} HTTP/1.1\r\n\r\n".encode())
            assert got.startswith(b"HTTP/1.1 403"), (target, got)
            assert b"not on the operator's egress allow-list (BYOLLM_RUN_EGRESS_HOSTS)" in got
        got = await _ask(path, f"CONNECT 127.0.0.1:{upstream} HTTP/1.1\r\n\r\n".encode())
        assert got.startswith(b"HTTP/1.1 403")
    finally:
        await proxy.close()


async def test_internal_addresses_are_refused_by_the_egress_guard_even_when_listed(upstream: int) -> None:
    proxy, path = await _proxy([f"localhost:{upstream}", "169.254.169.254:80", f"127.0.0.2:{upstream}",
                                f"2130706433:{upstream}"], networks=())
    try:
        for target, kind in ((f"localhost:{upstream}", b"loopback"), ("169.254.169.254:80", b"link-local"),
                             (f"127.0.0.2:{upstream}", b"loopback"), (f"2130706433:{upstream}", b"loopback")):
            got = await _ask(path, f"GET http://{target}/ HTTP/1.1\r\n\r\n".encode())
            assert got.startswith(b"HTTP/1.1 403") and kind in got, (target, got)
            assert b"BYOLLM_ALLOWED_INTERNAL_NETWORKS" in got
    finally:
        await proxy.close()


async def test_byollm_itself_is_refused_whatever_the_lists_say(upstream: int) -> None:
    proxy, path = await _proxy([f"localhost:{upstream}", f"127.0.0.1:{upstream}"],
                               own=(("127.0.0.1", upstream),))
    try:
        for host in ("localhost", "127.0.0.1"):
            got = await _ask(path, f"GET http://{host}:{upstream}/api/v1/me HTTP/1.1\r\n\r\n".encode())
            assert got.startswith(b"HTTP/1.1 403") and b"is byollm itself" in got, (host, got)
    finally:
        await proxy.close()


async def test_malformed_requests_get_400() -> None:
    proxy, path = await _proxy(["pypi.org"])
    try:
        assert (await _ask(path, b"GET /relative HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 400")
        assert (await _ask(path, b"nonsense\r\n\r\n")).startswith(b"HTTP/1.1 400")
        assert (await _ask(path, b"CONNECT pypi.org HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 400")
    finally:
        await proxy.close()


def test_allow_list_parsing() -> None:
    allow = parse_allow_list(["PyPI.org.", "files.example.com:8443", " ", "[::1]:8080"])
    assert allow.allows("pypi.org", 443) and allow.allows("pypi.org", 80) and not allow.allows("pypi.org", 22)
    assert allow.allows("files.example.com", 8443) and not allow.allows("files.example.com", 443)
    assert allow.allows("[::1]", 8080)
    assert not parse_allow_list([])
    for bad in ("http://x/", "host:99999", "host:abc", ":80"):
        with pytest.raises(ValueError, match="BYOLLM_RUN_EGRESS_HOSTS"):
            parse_allow_list([bad])
