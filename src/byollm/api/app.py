"""The ASGI application factory. Nothing is built at import time: ``create_app(settings)`` builds one app.

The app's lifespan builds the services (store, catalog, control plane) unless the caller passes ready ones
(tests that share a store), and closes them on shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from byollm import __version__
from byollm.api import (
    admin_routes,
    docs_routes,
    doctor_routes,
    health_routes,
    inference_routes,
    oidc_routes,
    runs_routes,
)
from byollm.api.auth_gate import AuthBeforeBody
from byollm.api.body_limit import BodyLimitMiddleware
from byollm.api.errors import install_error_handlers
from byollm.api.fast_inference import FastInferencePath, fast_handler
from byollm.api.request_id import RequestIdMiddleware
from byollm.panel import routes as panel_routes
from byollm.secret_env import forget_secret_variables
from byollm.services import Services, build_services
from byollm.settings import Settings

__all__ = ["ByollmApp", "app_from_env", "create_app"]


class ByollmApp(FastAPI):
    """FastAPI, except that the inference POSTs go straight to ``FastInferencePath``.

    Why a subclass rather than a middleware: middleware added to FastAPI runs inside FastAPI's own outer
    layers (telemetry hooks, server-error and exception middleware, its body-size layer), which the hot path
    does not need. Dispatching in ``__call__`` skips them while the app stays the FastAPI app everything else
    uses (routes, OpenAPI, state, lifespan).

    Why the request id is added here, around FastAPI, rather than as a middleware: Starlette runs its
    server-error layer (which answers unhandled exceptions with ``internal_error``) outside every added
    middleware, so an id added inside it would be missing from exactly the answers whose id matters most.
    """

    def __init__(self, *, max_body_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.byollm_settings: Settings | None = None
        self._fast: ASGIApp = RequestIdMiddleware(
            BodyLimitMiddleware(FastInferencePath(), max_bytes=max_body_bytes))
        self._routed: ASGIApp = RequestIdMiddleware(super().__call__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if fast_handler(scope) is not None:
            scope["app"] = self  # what handlers read ``request.app.state`` from, as Starlette would set it
            await self._fast(scope, receive, send)
            return
        await self._routed(scope, receive, send)


def create_app(settings: Settings, *, services: Services | None = None, migrate: bool = True) -> FastAPI:
    """Build the gateway and control-plane app.

    ``migrate`` runs database migrations (under a lock) at start, as ``byollm serve`` does; with it off, an
    out-of-date schema is refused with the command that fixes it.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        built = services if services is not None else await build_services(settings, migrate=migrate)
        app.state.services = built
        try:
            yield
        finally:
            if owned:
                await built.close()

    app = ByollmApp(
        max_body_bytes=settings.max_body_bytes,
        # byollm has its own metrics (/metrics) and request log; FastAPI's native OpenTelemetry hooks would
        # only cost time on every request
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        title="byollm",
        version=__version__,
        summary="Gateway and control plane for AI agents on your own cloud's models.",
        lifespan=lifespan,
        docs_url=None,  # served by ``docs_routes`` with local assets and the panel's CSP
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.byollm_settings = settings  # the server's limits come from them (``api.serving``)
    if services is not None:
        app.state.services = services
    install_error_handlers(app)
    # the inference routes first: they are the hot path, and routing tries routes in order
    app.include_router(inference_routes.router)
    app.include_router(health_routes.router)
    app.include_router(docs_routes.router)
    app.include_router(admin_routes.router)
    app.include_router(oidc_routes.router)
    app.include_router(runs_routes.router)
    app.include_router(doctor_routes.router)
    app.include_router(panel_routes.router)
    app.add_middleware(AuthBeforeBody)  # inside the body limit: a declared oversized body is refused first
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (used by ``byollm serve`` so several workers can each build one).

    Once read, the key-encryption key leaves this process's environment (and its ``/proc`` entry)."""
    settings = Settings.from_env()
    forget_secret_variables()
    return create_app(settings)
