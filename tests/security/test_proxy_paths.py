"""``byollm proxy`` forwards only the inference endpoints, whatever spelling of a path a client sends.

Its key is handed to every agent tool, and what it forwards carries the user's byollm token, which also opens
the admin API. Raw sockets send the targets exactly as written (clients and servers normalise paths
differently, httpx among them): dot segments plain, percent-encoded, double-encoded, with backslashes, empty
segments and absolute-form targets. Two sides are checked: the proxy answers each with a 400/404 in the tool's
error shape, and the server behind it never saw anything but an inference path (a recording listener standing
in for the gateway, then the real gateway, whose token list and audit log stay unchanged).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from byollm.api.serving import ServerThread
from byollm.client.proxy import ProxyState, build_proxy_app, new_proxy_key
from byollm.client.proxy_paths import decide
from support.client_env import make_client_env, running_proxy
from support.stack import Stack, Team, running_stack

ESCAPES = [
    ("GET", "/v1/../api/v1/me"),
    ("GET", "/v1/%2e%2e/api/v1/me"),
    ("GET", "/v1/%2E%2E/api/v1/me"),
    ("GET", "/v1/.%2e/api/v1/me"),
    ("GET", "/v1/..%2fapi/v1/me"),
    ("GET", "/v1/..%2Fapi%2Fv1%2Fme"),
    ("GET", "/v1/%2e%2e%2fapi%2fv1%2fme"),
    ("GET", "/v1/%252e%252e/api/v1/me"),
    ("GET", "/v1/%252e%252e%252fapi%252fv1%252fme"),
    ("GET", "/v1/%25252e%25252e/api/v1/me"),
    ("GET", "/v1\\..\\api\\v1\\me"),
    ("GET", "/v1/..\\api/v1/me"),
    ("GET", "/v1/%5c..%5capi/v1/me"),
    ("GET", "/v1/%5C%2E%2E%5Capi/v1/me"),
    ("GET", "//api/v1/me"),
    ("GET", "/v1//../api/v1/me"),
    ("GET", "/v1/./../api/v1/me"),
    ("GET", "/v1/models/../../api/v1/me"),
    ("GET", "/v1/models/..%2f..%2fapi%2fv1%2fme"),
    ("GET", "/v1/models/%2e%2e"),
    ("GET", "/v1/models/.."),
    ("GET", "/v1/models/.%2e"),
    ("GET", "/v1/messages/..;/..;/api/v1/me"),
    ("GET", "/api/v1/me"),
    ("GET", "/v1/api/v1/me"),
    ("GET", "/v1/me"),
    ("GET", "/admin"),
    ("GET", "/v1/messages%00/../../api/v1/me"),
    ("POST", "/v1/../api/v1/teams/TEAM/tokens"),
    ("POST", "/v1/messages/../../api/v1/teams/TEAM/tokens"),
    ("POST", "/v1/messages/%2e%2e/%2e%2e/api/v1/teams/TEAM/tokens"),
    ("POST", "/v1/messages%2f..%2f..%2fapi%2fv1%2fteams%2fTEAM%2ftokens"),
    ("POST", "/v1/chat/completions/../../../api/v1/teams/TEAM/tokens"),
    ("POST", "/v1/%252e%252e/api/v1/teams/TEAM/tokens"),
    ("POST", "/v1\\..\\api\\v1\\teams\\TEAM\\tokens"),
    ("POST", "http://127.0.0.1:GATEWAY_PORT/api/v1/teams/TEAM/tokens"),
    ("POST", "http://evil.example/v1/messages"),
    ("GET", "http://127.0.0.1:GATEWAY_PORT/api/v1/me"),
    ("GET", "*"),
    ("DELETE", "/v1/messages"),
    ("PUT", "/v1/chat/completions"),
    ("GET", "/v1/messages/"),
]


def _raw(url: str, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), rest


class RecordingGateway:
    """A listener standing in for the gateway: records every request target and header it receives."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.seen: list[tuple[str, dict[str, str]]] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                length = int(headers.get("content-length", "0"))
                while len(body) < length and (chunk := conn.recv(65536)):
                    body += chunk
                self.seen.append((lines[0], headers))
                answer = b'{"ok": true}'
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                             + str(len(answer)).encode() + b"\r\nconnection: close\r\n\r\n" + answer)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(Path(tmp_path_factory.mktemp("proxy-paths"))) as s:
        yield s


@pytest.fixture
def team(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Team:
    team = stack.new_team()
    make_client_env(tmp_path, stack, team, monkeypatch)
    return team


def _targets(team: Team, gateway_port: str) -> list[tuple[str, str]]:
    return [(m, t.replace("TEAM", team.uid).replace("GATEWAY_PORT", gateway_port)) for m, t in ESCAPES]


def test_escapes_never_reach_the_server_and_honest_requests_do(team: Team) -> None:
    from byollm.client.context import open_context

    recorder = RecordingGateway()
    ctx = open_context()
    key = new_proxy_key()
    lines: list[str] = []
    state = ProxyState(recorder.url, ctx.attacher, key, lines.append)
    try:
        with ServerThread(build_proxy_app(state)) as proxy:
            auth = {"x-api-key": key, "content-type": "application/json"}
            body = json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 5,
                               "messages": [{"role": "user", "content": "hi"}]}).encode()
            for method, target in _targets(team, recorder.url.rsplit(":", 1)[1]):
                status, answer = _raw(proxy.url, method, target, auth, body if method == "POST" else b"")
                assert status in (400, 404), (method, target, status, answer[:300])
                error = json.loads(answer)["error"]  # the tool's own error shape (both SDKs read error.message)
                assert error["message"] and error["byollm"]["code"] in ("not_found", "invalid_request")
            assert recorder.seen == [], recorder.seen
            assert not [line for line in lines if "->" in line], lines  # the proxy forwarded nothing

            honest = [("POST", "/v1/messages?beta=true", "POST /v1/messages?beta=true HTTP/1.1"),
                      ("POST", "/v1/messages/count_tokens", "POST /v1/messages/count_tokens HTTP/1.1"),
                      ("POST", "/v1/v1/messages", "POST /v1/messages HTTP/1.1"),
                      ("POST", "/v1/chat/completions", "POST /v1/chat/completions HTTP/1.1"),
                      ("POST", "/chat/completions", "POST /v1/chat/completions HTTP/1.1"),
                      ("POST", "/v1/responses", "POST /v1/responses HTTP/1.1"),
                      ("GET", "/v1/models", "GET /v1/models HTTP/1.1"),
                      ("GET", "/v1/models/claude-sonnet-4-6", "GET /v1/models/claude-sonnet-4-6 HTTP/1.1"),
                      ("GET", "/v1/models/anthropic.claude-v2%3A1", "GET /v1/models/anthropic.claude-v2:1 HTTP/1.1")]
            for method, target, expected in honest:
                status, answer = _raw(proxy.url, method, target, auth, body if method == "POST" else b"")
                assert status == 200, (target, answer[:300])
                seen_line, seen_headers = recorder.seen[-1]
                assert seen_line == expected
                assert seen_headers["authorization"].startswith("Bearer byo")  # the user's token, attached here
            assert len(recorder.seen) == len(honest)
    finally:
        recorder.close()
        ctx.close()


def test_the_real_gateway_mints_nothing_and_answers_honest_sdk_calls(stack: Stack, team: Team) -> None:
    def token_uids() -> list[str]:  # their uids only: last-use times change with the honest calls below
        return sorted(t["uid"] for t in team.admin.get(f"/teams/{team.uid}/tokens").json())

    def audit() -> list[tuple[str, str]]:
        return [(e["action"], e["at"]) for e in team.admin.get(f"/teams/{team.uid}/audit").json()]

    tokens_before, audit_before = token_uids(), audit()
    gateway_port = stack.url.rsplit(":", 1)[1]
    with running_proxy() as proxy:
        for method, target in _targets(team, gateway_port):
            status, answer = _raw(proxy.url, method, target, {"x-api-key": proxy.key},
                                  b'{"name": "stolen"}' if method == "POST" else b"")
            assert status in (400, 404), (method, target, status, answer[:300])
            assert b"byo_" not in answer and b'"uid"' not in answer  # neither a token nor the caller's identity
        assert not [line for line in proxy.lines if "->" in line], proxy.lines
        claude = anthropic.Anthropic(base_url=proxy.url, auth_token=proxy.key, max_retries=0)
        said = claude.messages.create(model="claude-sonnet-4-6", max_tokens=20,
                                      messages=[{"role": "user", "content": "hello proxy"}])
        assert said.content[0].text.startswith("[bedrock:")  # type: ignore[union-attr]
        gpt = openai.OpenAI(base_url=proxy.url + "/v1", api_key=proxy.key, max_retries=0)
        assert gpt.models.list().data
    assert token_uids() == tokens_before
    assert audit() == audit_before


@pytest.mark.parametrize(("method", "target"), [(m, t) for m, t in ESCAPES if t.startswith("/")])
def test_decide_refuses_every_escape_spelling(method: str, target: str) -> None:
    assert decide(method, target.encode()).path is None


def test_decide_forwards_canonical_paths_only() -> Any:
    assert decide("POST", b"/v1/messages?beta=true").path == "/v1/messages"
    assert decide("POST", b"/v1/messages?beta=true").query == b"beta=true"
    assert decide("GET", b"/models").path == "/v1/models"
    assert decide("POST", b"/v1/v1/chat/completions").path == "/v1/chat/completions"
    assert decide("GET", b"/v1/v1/v1/models").path == "/v1/models"
    assert decide("POST", b"/v1/messages/count_tokens").path == "/v1/messages/count_tokens"
    assert decide("GET", b"/v1/models/x%3Ay").path == "/v1/models/x:y"
