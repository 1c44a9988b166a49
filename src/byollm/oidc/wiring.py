"""Build the OIDC issuer's services (signing keys, token minting, web-identity exchange) for one process."""

from __future__ import annotations

from dataclasses import dataclass

from byollm.catalog.types import Catalog
from byollm.crypto.kek import KeyRing
from byollm.gateway.executor import WebIdentitySource
from byollm.providers.http import HttpPool
from byollm.settings import Settings
from byollm.store import Store

__all__ = ["OidcServices", "build_oidc"]


@dataclass
class OidcServices:
    web_identity: WebIdentitySource

    async def start(self) -> None:
        """Start background work (key rotation on an interval)."""

    async def close(self) -> None:
        """Stop background work."""


async def build_oidc(settings: Settings, store: Store, keyring: KeyRing, pool: HttpPool,
                     catalog: Catalog) -> OidcServices | None:
    """None until the issuer is built (the gateway then refuses web-identity routes)."""
    return None
