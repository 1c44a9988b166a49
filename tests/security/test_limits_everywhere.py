"""The limits at the door, on every route of the route table (``tests/api/test_limits.py`` checks a sample).

- No CORS: no route answers a cross-origin request or preflight with any ``Access-Control-*`` header, so no
  other origin can read an admin, runs, panel or inference answer with the user's credentials.
- Body size: every route that takes a body refuses one over ``BYOLLM_MAX_BODY_BYTES`` with 413
  ``payload_too_large``: a declared one before anything else (authentication included); a chunked one as it is
  read, which happens only after the caller's credential was checked (without one: 401, or 403 on the panel).
- Failed token attempts: once a client address has failed too often, every entry point that takes a token
  (admin API, runs, doctor, IAM help, inference, panel sign-in) refuses it with 429, even with a good token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from byollm.api.app import create_app
from byollm.api.serving import ServerThread
from byollm.control.bootstrap import bootstrap_operator
from byollm.settings import Settings
from security.route_table import fill, walk

KEK = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="  # 32 bytes of 0x07: tests only
LIMIT = 4096
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _settings(root: Path) -> Settings:
    return Settings.for_data_dir(root, kek=KEK, failed_token_limit=3, max_body_bytes=LIMIT,
                                 public_url="http://127.0.0.1:9", run_worker_embedded=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, list[tuple[str, str]]]]:
    settings = _settings(Path(tmp_path_factory.mktemp("limits-all")))
    boot = asyncio.run(bootstrap_operator(settings, email="op@limits.test", team_name="limits"))
    app = create_app(settings)
    routes = sorted(walk(list(app.routes)))
    with ServerThread(app) as running:
        yield running.url, boot.token, routes


def test_no_route_sends_cors_headers(server: tuple[str, str, list[tuple[str, str]]]) -> None:
    url, token, routes = server
    origin = {"origin": "https://evil.example", "authorization": f"Bearer {token}"}
    checked = 0
    with httpx.Client(base_url=url, timeout=30, headers=origin) as client:
        for method, template in routes:
            path = fill(template, "AAAAAAAAAAAAAAAAAAAAAA")
            answers = [client.options(path, headers={"access-control-request-method": method,
                                                     "access-control-request-headers": "authorization"})]
            if method == "GET" and not path.endswith("/events"):
                answers.append(client.get(path))
            for answer in answers:
                leaked = [h for h in answer.headers if h.lower().startswith("access-control-")]
                assert leaked == [], (method, template, answer.status_code, leaked)
                checked += 1
    assert checked > len(routes)


def test_every_body_route_refuses_an_oversized_body_before_authentication(
        server: tuple[str, str, list[tuple[str, str]]]) -> None:
    url, _token, routes = server
    with_body = [(m, t) for m, t in routes if m in BODY_METHODS]
    assert len(with_body) > 20
    big = b"{" + b" " * (LIMIT + 10) + b"}"

    def chunks() -> Iterator[bytes]:
        for _ in range(LIMIT // 1000 + 2):
            yield b" " * 1000

    with httpx.Client(base_url=url, timeout=30) as client:  # no token: a limit must not need one
        for method, template in with_body:
            path = fill(template, "AAAAAAAAAAAAAAAAAAAAAA")
            declared = client.request(method, path, content=big, headers={"content-type": "application/json"})
            chunked = client.request(method, path, content=chunks(), headers={"content-type": "application/json"})
            assert declared.status_code == 413, (method, template, declared.status_code, declared.text[:200])
            assert declared.headers["x-byollm-error-code"] == "payload_too_large"
            # a chunked body from a caller without a credential is refused before any of it is read
            expected = 403 if path.startswith("/admin") else 401
            assert chunked.status_code == expected, (method, template, chunked.status_code, chunked.text[:200])


def test_every_api_body_route_refuses_an_oversized_chunked_body_from_a_token_holder(
        server: tuple[str, str, list[tuple[str, str]]]) -> None:
    url, token, routes = server
    with_body = [(m, t) for m, t in routes if m in BODY_METHODS and not t.startswith("/admin")]

    def chunks() -> Iterator[bytes]:
        yield b'{"x": "'
        for _ in range(LIMIT // 1000 + 2):
            yield b" " * 1000
        yield b'"}'

    refused = 0
    with httpx.Client(base_url=url, timeout=30, headers={"authorization": f"Bearer {token}"}) as client:
        for method, template in with_body:
            path = fill(template, "AAAAAAAAAAAAAAAAAAAAAA")
            answer = client.request(method, path, content=chunks(), headers={"content-type": "application/json"})
            assert answer.status_code >= 400, (method, template, answer.status_code)
            if answer.status_code == 413:
                assert answer.headers["x-byollm-error-code"] == "payload_too_large"
                refused += 1
    assert refused >= len(with_body) // 2, refused  # every route that reads its body; the rest never read it


def test_too_many_failed_tokens_lock_out_every_token_entry_point(
        server: tuple[str, str, list[tuple[str, str]]]) -> None:
    url, token, routes = server
    team = httpx.get(f"{url}/api/v1/teams", headers={"authorization": f"Bearer {token}"}, timeout=10).json()[0]["uid"]
    bad = {"authorization": "Bearer byo_" + "Z" * 43}
    good = {"authorization": f"Bearer {token}"}
    probes = [
        ("GET", "/api/v1/me"), ("GET", f"/api/v1/teams/{team}/policy"), ("GET", f"/api/v1/teams/{team}/runs"),
        ("GET", f"/api/v1/teams/{team}/doctor"), ("GET", "/api/v1/iam/oidc-provider"),
        ("GET", "/api/v1/operator/signing-keys"), ("POST", "/v1/messages"), ("POST", "/v1/chat/completions"),
        ("POST", "/v1/responses"), ("GET", "/v1/models"),
    ]
    served = {(m, fill(t, team)) for m, t in routes}
    assert all(p in served for p in probes), [p for p in probes if p not in served]
    with httpx.Client(base_url=url, timeout=30) as client:
        assert [client.get("/api/v1/me", headers=bad).status_code for _ in range(3)] == [401, 401, 401]
        for method, path in probes:
            answer = client.request(method, path, headers=good, json={"model": "x", "messages": []})
            assert answer.status_code == 429, (method, path, answer.status_code, answer.text[:200])
            assert answer.headers["x-byollm-error-code"] == "too_many_attempts"
        page = client.get("/admin")
        csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        signin = client.post("/admin/sign-in", data={"csrf_token": csrf, "token": token})
        assert signin.status_code == 429 and "byollm_panel" not in str(signin.headers.get("location", ""))
        assert client.get("/healthz").status_code == 200  # what takes no token is not locked
