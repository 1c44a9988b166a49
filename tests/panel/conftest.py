"""Panel test fixtures: the admin API's cast (one server per module) and a browser-like form client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from byollm.settings import Settings
from support.admin_cast import TEST_KEK, Cast, cast

__all__ = ["PanelClient", "cast", "server_settings"]

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class PanelClient:
    """An httpx client that behaves like a browser on the panel: keeps the cookie, reads CSRF tokens."""

    def __init__(self, url: str, *, headers: dict[str, str] | None = None) -> None:
        self.http = httpx.Client(base_url=url, follow_redirects=False, timeout=30, headers=headers or {})
        self.pages: list[str] = []  # every page body seen, for canary scans

    def get(self, path: str, **kw: object) -> httpx.Response:
        r = self.http.get(path, **kw)  # type: ignore[arg-type]
        self.pages.append(r.text)
        return r

    def csrf(self, path: str = "/admin") -> str:
        match = _CSRF.search(self.get(path).text)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def post(self, path: str, data: dict[str, object], *, csrf_from: str | None = None,
             csrf: str | None = None) -> httpx.Response:
        """POST a form; its CSRF token (one per session) is read from ``csrf_from`` unless given."""
        token = csrf if csrf is not None else self.csrf(csrf_from or "/admin")
        r = self.http.post(path, data={"csrf_token": token, **data})  # type: ignore[dict-item]
        self.pages.append(r.text)
        return r

    def sign_in(self, token: str) -> httpx.Response:
        r = self.post("/admin/sign-in", {"token": token}, csrf_from="/admin")
        assert r.status_code == 303, r.text
        return r

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The admin cast's server, without the embedded run worker: runs stay queued, so steering is testable."""
    # loopback is a trusted proxy here: the secure-cookie test stands in for a TLS-terminating proxy on it
    return Settings.for_data_dir(Path(tmp_path_factory.mktemp("byollm")), kek=TEST_KEK, run_worker_embedded=False,
                                 run_tools=("shell",), trusted_proxies=("127.0.0.1/32",))


@pytest.fixture
def panel(cast: Cast) -> Iterator[PanelClient]:
    client = PanelClient(cast.url)
    yield client
    client.close()
