"""Authenticate API callers by their byollm token (``Authorization: Bearer`` or ``x-api-key``).

Both headers are accepted because Claude Code and the Anthropic SDK send ``x-api-key`` (or a bearer
token with ``ANTHROPIC_AUTH_TOKEN``) and the OpenAI SDK sends a bearer token.

Concurrent requests with the same token share one lookup (``_single_flight``): when the authentication
cache entry of a busy token expires, the requests that arrive during the reload wait for it instead of each
querying the database (at concurrency 64, that was 64 identical queries queued on one database thread,
every cache period).
"""

from __future__ import annotations

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


async def authenticate_request(request: Request, token: str) -> Caller:
    """The caller behind ``token``; failed attempts are counted per client address, and a client with too
    many in the window is refused before any lookup (``too_many_attempts``)."""
    services = services_of(request)
    client = request.client.host if request.client else None
    services.attempts.check(client)
    try:
        return await services.control.authenticate(token)
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
