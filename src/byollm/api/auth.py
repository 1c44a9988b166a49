"""Authenticate API callers by their byollm token (``Authorization: Bearer`` or ``x-api-key``).

Both headers are accepted because Claude Code and the Anthropic SDK send ``x-api-key`` (or a bearer
token with ``ANTHROPIC_AUTH_TOKEN``) and the OpenAI SDK sends a bearer token.

Concurrent requests with the same token share one lookup (``_single_flight``): when the authentication
cache entry of a busy token expires, the requests that arrive during the reload wait for it instead of each
querying the database (at concurrency 64, that was 64 identical queries queued on one database thread,
every cache period).
"""

from __future__ import annotations

import asyncio

from fastapi import Request

from byollm.control.authz import Caller
from byollm.errors import ByollmError, ErrorClass
from byollm.services import Services

__all__ = ["authenticate_request", "current_caller", "services_of", "token_from_headers"]


def token_from_headers(authorization: str | None, api_key: str | None) -> str | None:
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if api_key and api_key.strip():
        return api_key.strip()
    return None


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _single_flight(request: Request, services: Services, token: str) -> Caller:
    """``services.control.authenticate(token)``, shared by every request that asks for the same token while
    one call is under way. A cache hit never waits, so it finishes before another request can join it.

    The in-flight calls live on the app's state (one event loop per app), keyed by the token for the
    duration of one call only. Each joining request gets the leader's answer or the leader's error; if the
    leader itself is cancelled (its client went away), a joining request looks the token up on its own.
    """
    flights: dict[str, asyncio.Future[Caller]] | None = getattr(request.app.state, "auth_flights", None)
    if flights is None:
        flights = request.app.state.auth_flights = {}
    while (pending := flights.get(token)) is not None:
        try:
            return await asyncio.shield(pending)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if pending.cancelled() and task is not None and not task.cancelling():
                continue  # the leader was cancelled, not this request
            raise
    future: asyncio.Future[Caller] = asyncio.get_running_loop().create_future()
    flights[token] = future
    try:
        caller = await services.control.authenticate(token)
    except asyncio.CancelledError:
        future.cancel()
        raise
    except Exception as error:
        future.set_exception(error)
        future.exception()  # retrieved: no "exception was never retrieved" warning when nobody joined
        raise
    else:
        future.set_result(caller)
        return caller
    finally:
        del flights[token]


async def authenticate_request(request: Request, token: str) -> Caller:
    """The caller behind ``token``; failed attempts are counted per client address, and a client with too
    many in the window is refused before any lookup (``too_many_attempts``)."""
    services = services_of(request)
    client = request.client.host if request.client else None
    services.attempts.check(client)
    try:
        return await _single_flight(request, services, token)
    except ByollmError as error:
        if error.error_class is ErrorClass.UNAUTHENTICATED:
            services.attempts.failed(client)
        raise


async def current_caller(request: Request) -> Caller:
    """FastAPI dependency: the authenticated caller, or ``unauthenticated``."""
    token = token_from_headers(request.headers.get("authorization"), request.headers.get("x-api-key"))
    if token is None:
        raise ByollmError(ErrorClass.UNAUTHENTICATED, "no byollm token in the request")
    return await authenticate_request(request, token)
