"""The shared upstream HTTP client: one pooled aiohttp session per process.

Why aiohttp here (httpx elsewhere): this is the hot path, and aiohttp's client costs a fraction of
httpx's per request, which is most of the gateway's own overhead budget. Connections are pooled per host
and kept alive; DNS answers are cached. Timeouts are set per call by the adapters.
"""

from __future__ import annotations

import aiohttp

__all__ = ["HttpPool"]


class HttpPool:
    def __init__(self, *, limit: int = 512, limit_per_host: int = 256) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """Created lazily inside the running event loop (aiohttp binds a session to its loop)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit, limit_per_host=self._limit_per_host, ttl_dns_cache=300,
                enable_cleanup_closed=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                trust_env=False,  # never pick up proxies or netrc credentials from the environment
                skip_auto_headers=("User-Agent",),
                headers={"user-agent": "byollm"},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
