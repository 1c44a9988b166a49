"""Debian's Chromium under Playwright, the one way browser tests start a browser.

Why one place: the panel tour, the panel browser tests and the API-docs test each launched Chromium with the same
path and flags; a machine without Chromium (or Playwright) must skip all of them for the same stated reason.
Screenshots go to ``artifacts/panel/`` (ignored by git) so a person can look at what an admin sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

__all__ = ["ARTIFACTS", "CHROMIUM", "NEEDS_CHROMIUM", "chromium"]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "panel"
NEEDS_CHROMIUM = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed at /usr/bin/chromium (`apt-get install chromium`); browser tests"
           " skipped")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium browser (Playwright's ``Browser``), closed on exit."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright (Python) is not installed")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            yield launched
        finally:
            launched.close()
