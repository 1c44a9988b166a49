"""The ASGI application factory. Nothing is built at import time: ``create_app(settings)`` builds one app.

The app's lifespan builds the services (store, catalog, control plane) unless the caller passes ready ones
(tests that share a store), and closes them on shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from byollm import __version__
from byollm.api import admin_routes, doctor_routes, health_routes, inference_routes, oidc_routes, runs_routes
from byollm.api.body_limit import BodyLimitMiddleware
from byollm.api.errors import install_error_handlers
from byollm.api.fast_inference import FastInferencePath
from byollm.api.request_id import RequestIdMiddleware
from byollm.panel import routes as panel_routes
from byollm.services import Services, build_services
from byollm.settings import Settings

__all__ = ["app_from_env", "create_app"]


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

    app = FastAPI(
        title="byollm",
        version=__version__,
        summary="Gateway and control plane for AI agents on your own cloud's models.",
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    if services is not None:
        app.state.services = services
    install_error_handlers(app)
    # the inference routes first: they are the hot path, and routing tries routes in order
    app.include_router(inference_routes.router)
    app.include_router(health_routes.router)
    app.include_router(admin_routes.router)
    app.include_router(oidc_routes.router)
    app.include_router(runs_routes.router)
    app.include_router(doctor_routes.router)
    app.include_router(panel_routes.router)
    app.add_middleware(FastInferencePath)  # innermost: the two inference POSTs skip FastAPI's routing
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)  # added last: outermost, so every answer carries a request id
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (used by ``byollm serve`` so several workers can each build one)."""
    return create_app(Settings.from_env())
