"""The server's own limits, over raw sockets against ``byollm serve``'s server (``ServerThread`` runs the same
protocol and configuration): header size and count, header and body read timeouts, idle keep-alive, the
connection cap, and no request body read before its caller's token was checked."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from byollm.api.app import create_app
from byollm.api.serving import ServerThread
from byollm.control.bootstrap import bootstrap_operator
from byollm.settings import Settings

KEK = "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg="  # 32 bytes of 0x08: tests only
TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, str]]:
    settings = Settings.for_data_dir(Path(tmp_path_factory.mktemp("server-limits")), kek=KEK,
                                     header_timeout_s=TIMEOUT_S, body_timeout_s=TIMEOUT_S, keep_alive_s=TIMEOUT_S,
                                     run_worker_embedded=False, max_body_bytes=1024 * 1024)
    boot = asyncio.run(bootstrap_operator(settings, email="op@limits.test", team_name="limits"))
    with ServerThread(create_app(settings)) as running:
        yield running.host, running.port, boot.token


def _connect(server: tuple[str, int, str]) -> socket.socket:
    return socket.create_connection(server[:2], timeout=15)


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_an_oversized_header_is_refused_with_431(server: tuple[str, int, str]) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1024 * 1024) + b"\r\n\r\n")
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


def test_too_many_headers_are_refused_with_431(server: tuple[str, int, str]) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    with _connect(server) as sock:  # within the limits all is well
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers[:500] + b"\r\n")
        assert _read_all(sock).startswith(b"HTTP/1.1 200 ")


def test_unfinished_huge_headers_do_not_grow_memory(server: tuple[str, int, str]) -> None:
    """Four connections each sending 24 MiB of one header that never ends, all kept open while measuring."""
    before = _rss_bytes()
    sockets = []
    chunk = b"a" * (256 * 1024)
    for _ in range(4):
        sock = _connect(server)
        sock.settimeout(5)
        sockets.append(sock)
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            for _ in range(96):
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the server closed the connection: what the limit does
    time.sleep(0.5)
    grown = _rss_bytes() - before
    for sock in sockets:
        sock.close()
    assert grown < 16 * 1024 * 1024, f"RSS grew by {grown / 1048576:.1f} MiB"


def test_a_slow_header_connection_is_closed(server: tuple[str, int, str]) -> None:
    started = time.monotonic()
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        sock.settimeout(0.5)
        closed = False
        for i in range(30):  # one header line every half second: never a complete request
            try:
                sock.sendall(b"X-Slow-%d: 1\r\n" % i)
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if data == b"" or data.startswith(b"HTTP/1.1 408"):
                closed = True
                break
    elapsed = time.monotonic() - started
    assert closed, "the connection was still open after 15 s of slow headers"
    assert elapsed < TIMEOUT_S + 2


def test_a_silent_connection_is_closed(server: tuple[str, int, str]) -> None:
    started = time.monotonic()
    with _connect(server) as sock:
        assert _read_all(sock) == b""
    assert time.monotonic() - started < TIMEOUT_S + 2


def test_a_slow_body_is_cut_off(server: tuple[str, int, str]) -> None:
    token = server[2]
    started = time.monotonic()
    with _connect(server) as sock:
        sock.sendall(b"POST /api/v1/teams HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: 1000\r\n\r\n{")
        answer = _read_all(sock)
    assert time.monotonic() - started < TIMEOUT_S + 3
    assert b"201" not in answer.split(b"\r\n", 1)[0]


def test_an_idle_kept_alive_connection_is_closed(server: tuple[str, int, str]) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b"}"):  # the whole (JSON) answer
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        assert _read_all(sock) == b""
    assert time.monotonic() - started < TIMEOUT_S + 2


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions", "/v1/messages/count_tokens",
                                  "/api/v1/teams"])
def test_an_unauthenticated_chunked_body_is_refused_before_it_is_read(server: tuple[str, int, str],
                                                                      path: str) -> None:
    """The body never ends: an answer can only come from a server that did not wait to read it."""
    with _connect(server) as sock:
        sock.settimeout(TIMEOUT_S - 0.5)  # before the body timeout could close it
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode() + b"10\r\n{\"model\": \"x\",  \r\n")
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:300]
    assert b"unauthenticated" in answer


def test_a_wrong_token_with_a_chunked_body_is_refused_before_it_is_read(server: tuple[str, int, str]) -> None:
    with _connect(server) as sock:
        sock.settimeout(TIMEOUT_S - 0.5)
        sock.sendall(b"POST /api/v1/teams HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer byo_" + b"Q" * 43
                     + b"\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"name\": \"xy\",  \r\n")
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:300]


def test_connections_over_the_cap_are_answered_503(tmp_path: Path) -> None:
    settings = Settings.for_data_dir(tmp_path, kek=KEK, max_connections=4, run_worker_embedded=False)
    with ServerThread(create_app(settings)) as running:
        held = [socket.create_connection((running.host, running.port), timeout=10) for _ in range(4)]
        try:
            time.sleep(0.3)
            with socket.create_connection((running.host, running.port), timeout=10) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert _read_all(sock).startswith(b"HTTP/1.1 503 ")
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.3)
        with socket.create_connection((running.host, running.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert _read_all(sock).startswith(b"HTTP/1.1 200 ")
