"""Limits at the door: failed token attempts per client, request body size, and no CORS anywhere."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from byollm.api.app import create_app
from byollm.api.serving import ServerThread
from byollm.control.attempts import FailedAttemptLimiter
from byollm.control.bootstrap import bootstrap_operator
from byollm.errors import ByollmError, ErrorClass
from byollm.settings import Settings

KEK = "BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU="


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_counts_per_client_and_forgets_after_the_window() -> None:
    clock = FakeClock()
    limiter = FailedAttemptLimiter(limit=3, window_s=60, clock=clock)
    for _ in range(3):
        limiter.check("10.0.0.1")
        limiter.failed("10.0.0.1")
    with pytest.raises(ByollmError) as refused:
        limiter.check("10.0.0.1")
    assert refused.value.error_class is ErrorClass.TOO_MANY_ATTEMPTS and refused.value.status == 429
    limiter.check("10.0.0.2")  # another client is not affected
    clock.now += 61
    limiter.check("10.0.0.1")  # the window passed


def test_limiter_table_is_bounded() -> None:
    limiter = FailedAttemptLimiter(limit=1, max_clients=100)
    for i in range(1000):
        limiter.failed(f"client-{i}")
    limiter.check("client-0")  # evicted: the oldest entries go first
    with pytest.raises(ByollmError):
        limiter.check("client-999")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    settings = Settings.for_data_dir(Path(tmp_path_factory.mktemp("limits")), kek=KEK, failed_token_limit=3,
                                     max_body_bytes=4096)
    boot = asyncio.run(bootstrap_operator(settings, email="op@limits.test", team_name="limits"))
    with ServerThread(create_app(settings)) as running:
        yield running.url, boot.token


def test_bodies_over_the_limit_are_refused_in_the_callers_shape(server: tuple[str, str]) -> None:
    url, _token = server
    big = {"model": "x", "max_tokens": 1, "messages": [{"role": "user", "content": "a" * 10_000}]}
    declared = httpx.post(f"{url}/v1/messages", json=big)
    assert declared.status_code == 413
    assert declared.json()["type"] == "error"  # Anthropic's shape on /v1/messages
    assert declared.json()["error"]["byollm"]["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b"x" * 1000

    chunked = httpx.post(f"{url}/api/v1/teams", content=chunks(), headers={"content-type": "application/json",
                                                                         "authorization": f"Bearer {_token}"})
    assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "payload_too_large"
    anonymous = httpx.post(f"{url}/api/v1/teams", content=chunks(), headers={"content-type": "application/json"})
    assert anonymous.status_code == 401  # refused before its body is read
    small = httpx.post(f"{url}/v1/chat/completions", json={"model": "x", "messages": []})
    assert small.status_code == 401  # under the limit: on to authentication as usual


def test_too_many_failed_tokens_and_the_client_must_wait(server: tuple[str, str]) -> None:
    url, token = server
    bad = {"authorization": "Bearer byo_" + "Z" * 43}
    statuses = [httpx.get(f"{url}/api/v1/me", headers=bad).status_code for _ in range(3)]
    assert statuses == [401, 401, 401]
    refused = httpx.get(f"{url}/api/v1/me", headers={"authorization": f"Bearer {token}"})
    assert refused.status_code == 429  # even a good token waits: the client is refused before any lookup
    error = refused.json()["error"]
    assert error["code"] == "too_many_attempts" and error["remediation"]
    inference = httpx.post(f"{url}/v1/messages", headers=bad, json={"model": "x", "max_tokens": 1, "messages": []})
    assert inference.status_code == 429 and inference.json()["error"]["byollm"]["code"] == "too_many_attempts"


def test_no_cors_headers_on_any_endpoint(server: tuple[str, str]) -> None:
    url, token = server
    origin = {"origin": "https://evil.example", "access-control-request-method": "POST"}
    for method, path in (("OPTIONS", "/api/v1/teams"), ("OPTIONS", "/v1/messages"), ("GET", "/api/v1/me"),
                         ("GET", "/v1/models"), ("GET", "/admin")):
        r = httpx.request(method, f"{url}{path}", headers={**origin, "authorization": f"Bearer {token}"})
        assert not [h for h in r.headers if h.lower().startswith("access-control-")], (path, r.headers)


def test_a_chunked_body_under_the_limit_still_gets_a_streamed_answer(server: tuple[str, str]) -> None:
    """The replayed body must not make a streaming response think the client left."""
    url, _token = server

    def chunks() -> Iterator[bytes]:
        yield b'{"model": "x", "max_tokens": 1, '
        yield b'"messages": [], "stream": true}'

    with httpx.stream("POST", f"{url}/v1/messages", content=chunks(),
                      headers={"content-type": "application/json"}) as r:
        body = r.read()
    assert r.status_code in (401, 429)  # the request reached authentication intact
    assert b"error" in body
