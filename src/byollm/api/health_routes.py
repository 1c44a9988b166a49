"""Operational endpoints: liveness for load balancers and Prometheus metrics.

``/healthz`` answers without touching the database. ``/metrics`` carries identifier-only labels from closed
sets (see ``gateway.metrics``: no request input ever becomes a label), so by default it can be scraped without
authentication; an operator who would rather not publish traffic volumes sets ``BYOLLM_METRICS_TOKEN`` and the
scraper sends it as a bearer token.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response

from byollm import __version__
from byollm.api.auth import services_of
from byollm.errors import ByollmError, ErrorClass
from byollm.gateway.metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness probe")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    services = services_of(request)
    wanted = services.settings.metrics_token
    if wanted is not None:
        presented = request.headers.get("authorization", "")
        scheme, _, value = presented.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), wanted.encode()):
            raise ByollmError(ErrorClass.UNAUTHENTICATED,
                              "this server's /metrics needs the scrape token the operator set in"
                              " BYOLLM_METRICS_TOKEN, sent as `Authorization: Bearer`")
    services.metrics.log_pending.set(services.request_log.pending)
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)
