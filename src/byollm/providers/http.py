"""The shared upstream HTTP client: pooled aiohttp sessions, one per process and trust level.

Why aiohttp here (httpx elsewhere): this is the hot path, and aiohttp's client costs a fraction of
httpx's per request, which is most of the gateway's own overhead budget. Connections are pooled per host
and kept alive; DNS answers are cached. Timeouts are set per call by the adapters.

Why two sessions: destinations the operator configured (direct-provider base URLs, the STS endpoint) are
trusted, while a Bedrock endpoint comes from a team admin and may point anywhere the server can reach (see
``byollm.netguard``). ``guarded_session`` applies the egress guard where the connection is made: its
resolver refuses a hostname when any address it resolves to is internal and not allowed (checked on the
addresses actually connected to, so DNS rebinding between a check and the connect cannot slip through), and
a client middleware refuses hosts written as addresses, which aiohttp connects to without asking the
resolver, on every request including redirects. A refusal is a ``ByollmError`` of class
``endpoint_not_allowed``: it fails over to the next route like any other admin-fixable route failure.

Why no redirect is ever followed: aiohttp follows them by default, re-sending the request (signed Bedrock and
STS calls with the user's ``X-Amz-Security-Token``, provider calls with the operator's key) to wherever the
``Location`` points. No AWS or provider API byollm calls answers a legitimate request with a redirect, so
every session here carries ``_refuse_redirects``: a 3xx answer is released unread and becomes
``UpstreamRedirected``, an ``upstream_unavailable`` failure naming the status and the setting to check, before
aiohttp's redirect loop could act on it. It is also an ``aiohttp.ClientError``, so callers that classify
transport failures (STS, the doctor, model discovery) treat it as one.
"""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_middlewares import ClientHandlerType

from byollm.errors import ByollmError, ErrorClass
from byollm.netguard import DestinationRefused, EgressGuard

__all__ = ["GuardedResolver", "HttpPool", "UpstreamRedirected", "endpoint_not_allowed"]

_LITERAL_CACHE_SIZE = 4096
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class UpstreamRedirected(ByollmError, aiohttp.ClientError):
    """An upstream answered with a redirect, which byollm never follows."""

    def __init__(self, status: int, host: str) -> None:
        super().__init__(ErrorClass.UPSTREAM_UNAVAILABLE,
                         f"{host} answered with a redirect (HTTP {status}), which byollm never follows; the operator"
                         " or team admin should check the endpoint URL configured for it", host=host, status=status)


async def _refuse_redirects(request: aiohttp.ClientRequest, handler: ClientHandlerType) -> aiohttp.ClientResponse:
    response = await handler(request)
    if response.status in _REDIRECTS:
        response.release()
        raise UpstreamRedirected(response.status, request.url.host or "the upstream")
    return response


def endpoint_not_allowed(refused: DestinationRefused) -> ByollmError:
    """The request-time error for a refused admin-set destination (identifiers only, no resolved address)."""
    return ByollmError(ErrorClass.ENDPOINT_NOT_ALLOWED,
                       f"the Bedrock endpoint was not called: {refused.reason}, which this server does not allow",
                       host=refused.host)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, with every answer checked by the egress guard before aiohttp connects to it."""

    def __init__(self, guard: EgressGuard, inner: AbstractResolver | None = None) -> None:
        self._guard = guard
        self._inner = inner or aiohttp.DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        try:
            for result in results:
                self._guard.check_address(host, result["host"])
        except DestinationRefused as refused:
            raise endpoint_not_allowed(refused) from None
        return results

    async def close(self) -> None:
        await self._inner.close()


class HttpPool:
    def __init__(self, *, guard: EgressGuard | None = None, limit: int = 512, limit_per_host: int = 256) -> None:
        """``guard`` decides what ``guarded_session`` may reach; the default allows no internal network."""
        self._guard = guard or EgressGuard()
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._session: aiohttp.ClientSession | None = None
        self._guarded: aiohttp.ClientSession | None = None
        self._resolver: GuardedResolver | None = None
        self._literal_hosts: dict[str, DestinationRefused | None] = {}

    def _new_session(self, resolver: AbstractResolver | None = None, **options: Any) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._limit, limit_per_host=self._limit_per_host, ttl_dns_cache=300,
            enable_cleanup_closed=True, resolver=resolver,
        )
        return aiohttp.ClientSession(
            connector=connector,
            auto_decompress=True,
            trust_env=False,  # never pick up proxies or netrc credentials from the environment
            skip_auto_headers=("User-Agent",),
            headers={"user-agent": "byollm"},
            **options,
        )

    def _new_guarded_session(self, resolver: AbstractResolver) -> aiohttp.ClientSession:
        return self._new_session(resolver, middlewares=(self._literal_guard, _refuse_redirects))

    @property
    def session(self) -> aiohttp.ClientSession:
        """For operator-configured destinations. Created lazily inside the running event loop (aiohttp binds
        a session to its loop)."""
        if self._session is None or self._session.closed:
            self._session = self._new_session(middlewares=(_refuse_redirects,))
        return self._session

    @property
    def guarded_session(self) -> aiohttp.ClientSession:
        """For destinations a team admin chose (the Bedrock endpoint): every connection passes the guard."""
        if self._guarded is None or self._guarded.closed:
            self._resolver = GuardedResolver(self._guard)
            self._guarded = self._new_guarded_session(self._resolver)
        return self._guarded

    async def _literal_guard(self, request: aiohttp.ClientRequest,
                             handler: ClientHandlerType) -> aiohttp.ClientResponse:
        host = request.url.raw_host or ""
        if host not in self._literal_hosts:  # the decision for a host is fixed for this process's settings
            if len(self._literal_hosts) >= _LITERAL_CACHE_SIZE:
                self._literal_hosts.clear()
            try:
                self._guard.check_literal(host)
                self._literal_hosts[host] = None
            except DestinationRefused as exc:
                self._literal_hosts[host] = exc
        decision = self._literal_hosts[host]
        if decision is not None:
            raise endpoint_not_allowed(decision)
        return await handler(request)

    async def close(self) -> None:
        for session in (self._session, self._guarded):
            if session is not None and not session.closed:
                await session.close()
        if self._resolver is not None:  # a connector does not close a resolver it was given
            await self._resolver.close()
        self._session = self._guarded = self._resolver = None
