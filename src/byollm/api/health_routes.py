"""Operational endpoints: liveness for load balancers and Prometheus metrics.

``/healthz`` answers without touching the database. ``/metrics`` carries identifier-only labels (see
``gateway.metrics``), so it can be scraped without authentication.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from byollm import __version__
from byollm.api.auth import services_of
from byollm.gateway.metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness probe")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    services = services_of(request)
    services.metrics.log_pending.set(services.request_log.pending)
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)
