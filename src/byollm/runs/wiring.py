"""Build the cloud-run services (run service, embedded worker) for one process."""

from __future__ import annotations

from dataclasses import dataclass

from byollm.gateway.executor import Gateway
from byollm.oidc.wiring import OidcServices
from byollm.settings import Settings
from byollm.store import Store

__all__ = ["RunServices", "build_runs"]


@dataclass
class RunServices:
    async def start(self) -> None:
        """Start the embedded worker, if configured."""

    async def close(self) -> None:
        """Stop workers; runs in flight are left for another worker to recover."""


async def build_runs(settings: Settings, store: Store, gateway: Gateway,
                     oidc: OidcServices | None) -> RunServices | None:
    return None
