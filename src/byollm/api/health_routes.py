"""Liveness for load balancers: answers without touching the database."""

from __future__ import annotations

from fastapi import APIRouter

from byollm import __version__

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness probe")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "version": __version__}
