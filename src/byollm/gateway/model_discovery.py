"""Catalog refresh from the cloud: the Claude models a team's Bedrock lists in its region, cached per team+region.

Why: a new Claude is usable on the customer's Bedrock the day their cloud admin enables it, weeks before a byollm
release ships it. The gateway asks the Bedrock control plane (``ListFoundationModels`` and
``ListInferenceProfiles`` for the team's region; the doctor reads the same two) and ``catalog.discovery`` turns
the answers into catalog entries.

When it runs, and with which credentials:

- only for a name the shipped catalog and the team's aliases cannot resolve (or that only the Claude family
  mapping would), so a request for a known model never waits for it: the hot path is untouched;
- with the credentials the request itself carries: an interactive user's delegated session, or a cloud run's
  web-identity credentials for the team role. They are used for the two calls and dropped; only the model
  list is kept;
- the answer is cached per (team, region) for ``ttl_s``; a failed read (the identity may lack
  ``bedrock:ListFoundationModels``, or the control plane is away) is remembered for ``retry_after_s`` and the
  request carries on with the shipped catalog, so nothing fails because discovery did. Concurrent misses on
  one key share one read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from byollm.catalog.discovery import models_from_bedrock
from byollm.catalog.types import Catalog
from byollm.errors import ByollmError
from byollm.providers.base import AwsAuth
from byollm.providers.bedrock import default_endpoint, sigv4_headers
from byollm.providers.http import HttpPool

__all__ = ["BedrockModelDiscovery", "DiscoveryFailed"]

log = logging.getLogger("byollm.gateway.discovery")

DEFAULT_TTL_S = 600.0
DEFAULT_RETRY_AFTER_S = 60.0
_READ_TIMEOUT_S = 10.0


class DiscoveryFailed(Exception):
    """The control plane could not be read; ``reason`` names AWS's error code or the transport failure."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Entry:
    catalog: Catalog
    fetched_at: float
    ok: bool
    reason: str = ""


class BedrockModelDiscovery:
    """The per-team, per-region cache of discovered models (in memory; one per process)."""

    def __init__(self, pool: HttpPool, base: Catalog, *, ttl_s: float = DEFAULT_TTL_S,
                 retry_after_s: float = DEFAULT_RETRY_AFTER_S, max_entries: int = 10_000) -> None:
        self._pool = pool
        self._base = base
        self._ttl_s = ttl_s
        self._retry_after_s = retry_after_s
        self._max_entries = max_entries
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future[_Entry]] = {}

    def cached(self, team_uid: str, region: str) -> Catalog | None:
        """The team's catalog from the cache, fresh or stale, without any I/O; None when never read."""
        entry = self._entries.get((team_uid, region))
        return entry.catalog if entry is not None else None

    def _fresh(self, entry: _Entry | None, now: float) -> bool:
        if entry is None:
            return False
        return now - entry.fetched_at < (self._ttl_s if entry.ok else self._retry_after_s)

    def forget(self, team_uid: str) -> None:
        """Drop a team's entries (its region or endpoint changed)."""
        for key in [k for k in self._entries if k[0] == team_uid]:
            del self._entries[key]

    async def catalog_for(self, team_uid: str, region: str, endpoint_url: str | None, auth: AwsAuth | None) -> Catalog:
        """The shipped catalog extended with what the team's Bedrock lists in ``region``.

        Reads the control plane when the cached answer is stale and ``auth`` is given; otherwise answers from
        the cache (or the shipped catalog). Never raises: a failed read leaves the shipped catalog in use.
        """
        key = (team_uid, region)
        entry = self._entries.get(key)
        if self._fresh(entry, time.monotonic()) or auth is None:
            return entry.catalog if entry is not None else self._base
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._inflight[key] = pending
            try:
                fresh = await self._read(region, endpoint_url, auth, previous=entry)
            except BaseException:  # cancelled: the requests waiting on this read go on with what there is
                pending.set_result(entry or _Entry(self._base, time.monotonic(), ok=False, reason="cancelled"))
                raise
            finally:
                del self._inflight[key]
            if len(self._entries) >= self._max_entries:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = fresh
            pending.set_result(fresh)
            return fresh.catalog
        return (await asyncio.shield(pending)).catalog

    async def _read(self, region: str, endpoint_url: str | None, auth: AwsAuth, previous: _Entry | None) -> _Entry:
        now = time.monotonic()
        try:
            models = await self._get(region, endpoint_url, auth, "/foundation-models", {"byProvider": "Anthropic"})
            profiles = await self._get(region, endpoint_url, auth, "/inference-profiles",
                                       {"typeEquals": "SYSTEM_DEFINED", "maxResults": "1000"})
        except DiscoveryFailed as failed:
            log.info("bedrock model discovery failed in %s: %s", region, failed.reason)
            kept = previous.catalog if previous is not None else self._base  # a stale list beats none
            return _Entry(kept, now, ok=False, reason=failed.reason)
        found = models_from_bedrock(region, _items(models, "modelSummaries"),
                                    _items(profiles, "inferenceProfileSummaries"), self._base)
        return _Entry(self._base.extended(found), now, ok=True)

    async def _get(self, region: str, endpoint_url: str | None, auth: AwsAuth, path: str,
                   query: Mapping[str, str]) -> Mapping[str, Any]:
        base = (endpoint_url or default_endpoint(region, "bedrock")).rstrip("/")
        url = URL(base + path).with_query(dict(query))
        headers = sigv4_headers(auth, region, url, {"accept": "application/json"}, b"", method="GET")
        try:
            # the endpoint may be a team admin's choice: the guarded session refuses internal destinations
            async with self._pool.guarded_session.get(url, headers=headers, timeout=_timeout()) as response:
                raw = await response.read()
                status = response.status
                error_type = response.headers.get("x-amzn-ErrorType", "")
        except ByollmError as refused:
            raise DiscoveryFailed(refused.error_class.code) from None
        except (TimeoutError, OSError, aiohttp.ClientError) as exc:
            raise DiscoveryFailed(type(exc).__name__) from None
        if status != 200:
            raise DiscoveryFailed(f"HTTP {status} {error_type.split(':', 1)[0]}".strip())
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise DiscoveryFailed("malformed JSON") from None
        if not isinstance(payload, dict):
            raise DiscoveryFailed("malformed JSON")
        return payload


def _timeout() -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=_READ_TIMEOUT_S)


def _items(payload: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    items = payload.get(key)
    return [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []
