"""``X-Forwarded-For`` and ``Forwarded`` name the client only when the TCP peer is a proxy the operator listed
(``BYOLLM_TRUSTED_PROXIES``); by default the client is the peer, so the failed-token limiter cannot be dodged
by a client rotating those headers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from byollm.api.app import create_app
from byollm.api.serving import ServerThread
from byollm.control.bootstrap import bootstrap_operator
from byollm.settings import Settings

KEK = "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk="  # 32 bytes of 0x09: tests only
BAD = {"authorization": "Bearer byo_" + "Z" * 43}


def _statuses(url: str, count: int) -> list[int]:
    out = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(count):
            forged = {"x-forwarded-for": f"198.51.100.{i + 1}", "forwarded": f"for=198.51.100.{i + 1}",
                      "x-real-ip": f"198.51.100.{i + 1}"}
            out.append(client.get("/api/v1/me", headers={**BAD, **forged}).status_code)
    return out


def _server(root: Path, **overrides: object) -> ServerThread:
    settings = Settings.for_data_dir(root, kek=KEK, failed_token_limit=3, run_worker_embedded=False, **overrides)
    asyncio.run(bootstrap_operator(settings, email="op@fwd.test", team_name="fwd"))
    return ServerThread(create_app(settings))


def test_a_loopback_client_rotating_forwarded_headers_is_still_limited(tmp_path: Path) -> None:
    with _server(tmp_path) as server:
        statuses = _statuses(server.url, 6)
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3:] == [429, 429, 429], statuses


def test_forwarded_headers_from_a_listed_proxy_name_the_client(tmp_path: Path) -> None:
    with _server(tmp_path, trusted_proxies=("127.0.0.1/32",)) as server:
        statuses = _statuses(server.url, 6)
    assert statuses == [401] * 6  # six different clients behind the operator's proxy, one failure each


def test_the_setting_is_read_and_checked() -> None:
    assert Settings.from_env({"BYOLLM_TRUSTED_PROXIES": "10.0.0.5, 10.1.0.0/16"}).trusted_proxies == (
        "10.0.0.5/32", "10.1.0.0/16")
    assert Settings.from_env({}).trusted_proxies == ()
    with pytest.raises(ValueError, match="BYOLLM_TRUSTED_PROXIES"):
        Settings.from_env({"BYOLLM_TRUSTED_PROXIES": "proxy.internal"})
