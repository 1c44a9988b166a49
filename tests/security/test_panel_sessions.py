"""Anonymous panel traffic creates no session and cannot push a signed-in admin out; sessions per address are
capped. Before this, every cookie-less ``GET /admin`` made a session in a store bounded at 10,000, so about
10,000 of them evicted every signed-in admin."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from byollm.api.app import create_app
from byollm.api.serving import ServerThread
from byollm.control.bootstrap import bootstrap_operator
from byollm.panel.sessions import MAX_SESSIONS_PER_ADDRESS
from byollm.settings import Settings

KEK = "CgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo="  # 32 bytes of 0x0a: tests only
CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, object]]:
    settings = Settings.for_data_dir(Path(tmp_path_factory.mktemp("panel-sessions")), kek=KEK,
                                     run_worker_embedded=False, failed_token_limit=0)
    boot = asyncio.run(bootstrap_operator(settings, email="op@panel.test", team_name="panel"))
    app = create_app(settings)
    with ServerThread(app) as running:
        yield running.url, boot.token, app


def _sign_in(url: str, token: str, **client_options: object) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30, **client_options)  # type: ignore[arg-type]
    csrf = CSRF.search(client.get("/admin").text)
    assert csrf
    signed = client.post("/admin/sign-in", data={"csrf_token": csrf.group(1), "token": token})
    assert signed.status_code == 303, signed.text
    assert "byollm_panel" in client.cookies
    return client


def _store_size(app: object) -> int:
    return len(app.state.panel.sessions)  # type: ignore[attr-defined]


def test_anonymous_traffic_leaves_a_signed_in_session_working(server: tuple[str, str, object]) -> None:
    url, token, app = server
    admin = _sign_in(url, token)
    assert "Sign out" in admin.get("/admin").text
    with httpx.Client(base_url=url, timeout=30) as anonymous:
        for i in range(10_000):
            anonymous.cookies.clear()
            page = anonymous.get("/admin")
            assert page.status_code == 200
            if i % 50 == 0:  # sign-in attempts too: a wrong token, a missing or foreign CSRF token
                csrf = CSRF.search(page.text)
                assert csrf
                wrong = anonymous.post("/admin/sign-in", data={"csrf_token": csrf.group(1), "token": "byo_nope"})
                assert wrong.status_code == 401 and "byollm_panel=" not in wrong.headers.get("set-cookie", "")
                anonymous.cookies.clear()
                forged = anonymous.post("/admin/sign-in", data={"csrf_token": csrf.group(1), "token": token},
                                        headers={"cookie": "byollm_panel_signin=forged"})
                assert forged.status_code == 403
    assert _store_size(app) == 1  # only the admin's
    page = admin.get("/admin")
    assert page.status_code == 200 and "Sign out" in page.text
    admin.close()


def test_sessions_per_address_are_capped(server: tuple[str, str, object]) -> None:
    url, token, app = server
    other = _sign_in(url, token, transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    before = _store_size(app)
    clients = [_sign_in(url, token) for _ in range(MAX_SESSIONS_PER_ADDRESS + 5)]
    assert _store_size(app) <= before + MAX_SESSIONS_PER_ADDRESS
    assert "Sign out" in clients[-1].get("/admin").text
    assert clients[0].get("/admin").text.count("Sign out") == 0  # the address's oldest made room
    assert "Sign out" in other.get("/admin").text  # another address is not affected
    for client in (other, *clients):
        client.close()
