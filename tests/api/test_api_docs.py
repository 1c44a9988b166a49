"""``/api/docs`` works with nothing but this origin: every asset is served locally and the page keeps the
panel's strict CSP (no inline script, nothing from a CDN), checked in a real browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from byollm.api.app import create_app
from byollm.api.serving import ServerThread
from byollm.panel.web import CSP
from byollm.settings import Settings
from support.browser import NEEDS_CHROMIUM, chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings.for_data_dir(tmp_path_factory.mktemp("docs"))
    with ServerThread(create_app(settings)) as running:
        yield running.url


def test_the_page_and_its_assets_come_from_this_origin_with_the_csp(server: str) -> None:
    page = httpx.get(f"{server}/api/docs")
    assert page.status_code == 200 and page.headers["content-security-policy"] == CSP
    assert "<script>" not in page.text and not re.search(r"<script(?![^>]*\bsrc=)", page.text)  # none inline
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/api/docs/assets/") for s in sources)
    for source in sources:
        asset = httpx.get(f"{server}{source}")
        assert asset.status_code == 200 and len(asset.content) > 100, source
    assert httpx.get(f"{server}/api/docs/assets/..%2Fapp.py").status_code == 404
    assert httpx.get(f"{server}/api/docs/assets/init.py").status_code == 404
    assert httpx.get(f"{server}/docs").status_code == 404  # FastAPI's CDN page is gone


@NEEDS_CHROMIUM
def test_swagger_ui_renders_the_admin_api_under_the_csp(server: str) -> None:
    with chromium() as browser:
        page = browser.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        outside: list[str] = []

        def route(r: Any) -> None:
            if not r.request.url.startswith(server):
                outside.append(r.request.url)
                r.abort()
            else:
                r.continue_()

        page.route("**/*", route)
        page.goto(f"{server}/api/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=20_000)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert any("/api/v1/teams" in p for p in paths)
        assert outside == []
        assert not [p for p in problems if "Content Security Policy" in p], problems
