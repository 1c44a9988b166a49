"""No upstream call follows a redirect. An endpoint answering 307 to another origin used to receive nothing
special, but aiohttp followed it: the signed Bedrock request went again, with the user's
``X-Amz-Security-Token``, to wherever ``Location`` pointed. Here a redirector answers every request with 307 to a
second listener (the sink) that records whether it was ever called and with which headers; the redirector
stands as a team's Bedrock endpoint and as the operator's Anthropic base URL, and every shared session is
pointed at it directly too (STS, the doctor and model discovery use those)."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from byollm.errors import ErrorClass
from byollm.netguard import EgressGuard
from byollm.providers.http import HttpPool, UpstreamRedirected
from support.stack import DEFAULT_MODELS, LOOPBACK_NETWORKS, Stack, running_stack


class _Listener:
    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Sink:
    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        calls = self.calls

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self) -> None:
                calls.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = _record

            def log_message(self, *args: Any) -> None:
                pass

        self.listener = _Listener(Handler)
        self.url = self.listener.url


class Redirector:
    def __init__(self, target: str) -> None:
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _redirect(self) -> None:
                outer.hits += 1
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                self.send_response(307)
                self.send_header("location", target + self.path)
                self.send_header("content-length", "0")
                self.end_headers()

            do_GET = do_POST = _redirect

            def log_message(self, *args: Any) -> None:
                pass

        self.listener = _Listener(Handler)
        self.url = self.listener.url


@pytest.fixture(scope="module")
def doors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Redirector, Sink]]:
    sink = Sink()
    redirector = Redirector(sink.url)
    try:
        with running_stack(Path(tmp_path_factory.mktemp("redirects")),
                           anthropic_base_url=f"{redirector.url}/anthropic") as stack:
            yield stack, redirector, sink
    finally:
        redirector.listener.close()
        sink.listener.close()


def test_a_bedrock_307_is_not_followed(doors: tuple[Stack, Redirector, Sink]) -> None:
    stack, redirector, sink = doors
    team = stack.new_team({"claude-sonnet-4-6": {"bedrock": True}})
    team.bedrock(endpoint_url=redirector.url)
    before = redirector.hits
    with stack.gateway(team.token, stack.delegated_headers()) as client:
        answer = client.post("/v1/messages", json={"model": "claude-sonnet-4-6", "max_tokens": 5,
                                                   "messages": [{"role": "user", "content": "hi"}]})
    assert redirector.hits > before  # Bedrock was called, and answered 307
    assert sink.calls == []  # ... and nothing went where it pointed: no X-Amz-Security-Token there
    assert answer.status_code >= 400
    body = answer.json()["error"]
    attempts = str(body)
    assert "redirect" in attempts and ErrorClass.UPSTREAM_UNAVAILABLE.code in attempts, body


def test_a_direct_provider_307_is_not_followed(doors: tuple[Stack, Redirector, Sink]) -> None:
    stack, redirector, sink = doors
    team = stack.new_team({"claude-haiku-4-5": {"direct": True}})
    before = redirector.hits
    with stack.gateway(team.token) as client:
        answer = client.post("/v1/messages", json={"model": "claude-haiku-4-5", "max_tokens": 5,
                                                   "messages": [{"role": "user", "content": "hi"}]})
    assert redirector.hits > before
    assert sink.calls == []  # the operator's key never left for the redirect's target
    assert answer.status_code >= 400 and "redirect" in str(answer.json()["error"])


def test_no_shared_session_follows_a_redirect(doors: tuple[Stack, Redirector, Sink]) -> None:
    """STS (web identity and the delegated-credential check), the doctor and model discovery all call through
    these two sessions."""
    _stack, redirector, sink = doors

    async def run() -> list[BaseException]:
        pool = HttpPool(guard=EgressGuard(LOOPBACK_NETWORKS))
        errors: list[BaseException] = []
        try:
            for session in (pool.session, pool.guarded_session):
                for method in ("GET", "POST"):
                    try:
                        async with session.request(method, f"{redirector.url}/sts",
                                                   headers={"x-amz-security-token": "FwoGZXIvYXdzEXAMPLE"}):
                            pass
                    except UpstreamRedirected as exc:
                        errors.append(exc)
        finally:
            await pool.close()
        return errors

    errors = asyncio.run(run())
    assert len(errors) == 4 and sink.calls == []
    assert all(isinstance(e, UpstreamRedirected) and e.error_class is ErrorClass.UPSTREAM_UNAVAILABLE
               for e in errors)


def test_the_default_models_still_work_without_redirects(doors: tuple[Stack, Redirector, Sink]) -> None:
    stack, _redirector, sink = doors
    team = stack.new_team({"claude-sonnet-4-6": DEFAULT_MODELS["claude-sonnet-4-6"]})
    with stack.gateway(team.token, stack.delegated_headers()) as client:
        answer = client.post("/v1/messages", json={"model": "claude-sonnet-4-6", "max_tokens": 5,
                                                   "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200, answer.text
    assert sink.calls == []
