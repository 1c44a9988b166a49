"""Fixtures for the provider tests: one simulator per session (reset after each test), a fresh aiohttp pool
per test (a session is bound to its event loop), and a factory for ``UpstreamCall`` values."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx
import pytest

from byollm.policy.types import BillingBucket, CredentialSource, Host, RouteCandidate
from byollm.providers.base import ApiKeyAuth, CanonicalRequest, UpstreamCall
from byollm.providers.http import HttpPool
from byollm.sim import SimServer
from providers.provider_support import CallFactory

BASE_PATHS: Mapping[Host, str] = {Host.ANTHROPIC: "/anthropic", Host.OPENAI: "/openai", Host.GOOGLE: "/google"}


@pytest.fixture(scope="session")
def sim_server() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


@pytest.fixture
def sim(sim_server: SimServer) -> Iterator[SimServer]:
    """The shared simulator, reset to the default world after each test."""
    sim_server.state.reset()
    yield sim_server
    sim_server.state.reset()


@pytest.fixture
async def admin(sim: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator's admin API (fault rules, request journal)."""
    async with httpx.AsyncClient(base_url=f"{sim.url}/_sim", timeout=10) as client:
        yield client


@pytest.fixture
async def pool() -> AsyncIterator[HttpPool]:
    pool = HttpPool()
    yield pool
    await pool.close()


@pytest.fixture
def make_call(sim: SimServer) -> CallFactory:
    """``make_call(host, model, body, stream=False, key=None, **call_fields)``: an attempt at the simulator
    with the world's valid key for that provider unless ``key`` is given."""

    def make(
        host: Host,
        model: str,
        body: Mapping[str, Any],
        *,
        stream: bool = False,
        key: str | None = None,
        anthropic_beta: tuple[str, ...] = (),
        **fields: Any,
    ) -> UpstreamCall:
        candidate = RouteCandidate(
            model=model, host=host, upstream_model_id=model,
            credential=CredentialSource.OPERATOR_KEY, billing=BillingBucket.AI_CREDITS,
        )
        request = CanonicalRequest(body=body, stream=stream, anthropic_beta=anthropic_beta, request_id="req-test")
        api_key = key if key is not None else sorted(sim.state.provider_keys(host.value))[0]
        return UpstreamCall(
            candidate=candidate, request=request, auth=ApiKeyAuth(api_key),
            base_url=sim.url + BASE_PATHS[host], **fields,
        )

    return make
