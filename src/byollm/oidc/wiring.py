"""Build the OIDC issuer's services (signing keys, token minting, web-identity exchange) for one process.

``build_oidc`` makes sure a signing key exists before the server answers (the first start creates it; every
replica racing to do so ends up with the same key), and ``start`` runs automatic rotation. Without a public
issuer URL the services are still built (the JWKS is served), and an exchange fails with
``issuer_unreachable`` naming the setting to fix.
"""

from __future__ import annotations

from dataclasses import dataclass

from byollm.catalog.types import Catalog
from byollm.control.authz import Action, Caller, require
from byollm.credentials.web_identity import ExchangeConfig, WebIdentityBroker
from byollm.crypto.kek import KeyRing
from byollm.oidc.issuer import Issuer
from byollm.oidc.keys import KeyManager, KeyView
from byollm.oidc.rotation import RotationTask
from byollm.oidc.tokens import TokenMinter
from byollm.providers.http import HttpPool
from byollm.settings import Settings
from byollm.store import Store

__all__ = ["OidcServices", "build_oidc"]


@dataclass
class OidcServices:
    """The issuer (documents), its keys, the minter and the broker (``web_identity``) of one process."""

    web_identity: WebIdentityBroker
    keys: KeyManager
    issuer: Issuer
    minter: TokenMinter
    rotation: RotationTask
    catalog: Catalog

    async def start(self) -> None:
        """Start background work (key rotation on an interval, pruning of expired keys)."""
        await self.rotation.start()

    async def close(self) -> None:
        """Stop background work."""
        await self.rotation.close()

    async def list_keys(self, caller: Caller) -> list[KeyView]:
        """Every stored signing key and its place in the schedule (operator only)."""
        require(caller, Action.OPERATE)
        return await self.keys.views(fresh=True)

    async def rotate_keys(self, caller: Caller, *, publish_delay_s: float | None = None) -> list[KeyView]:
        """Start the next key generation now (operator only); it signs after the publish delay.

        A delay of 0 is for a suspected key compromise: the new key signs at once, before every verifier's
        cached JWKS may know it, so some exchanges can fail for up to the JWKS ``max-age``.
        """
        require(caller, Action.OPERATE)
        await self.keys.rotate(publish_delay_s=publish_delay_s)
        return await self.keys.views(fresh=True)


async def build_oidc(settings: Settings, store: Store, keyring: KeyRing, pool: HttpPool,
                     catalog: Catalog) -> OidcServices | None:
    keys = KeyManager(store, keyring, publish_delay_s=settings.oidc_key_publish_delay_seconds,
                      token_lifetime_s=settings.oidc_token_lifetime_seconds,
                      cache_s=settings.oidc_key_cache_seconds)
    await keys.ensure_active_key()
    issuer = Issuer(settings.oidc_issuer, keys, audience=settings.oidc_audience,
                    max_age_s=settings.oidc_jwks_max_age_seconds)
    minter = TokenMinter(issuer, keys, lifetime_s=settings.oidc_token_lifetime_seconds)
    broker = WebIdentityBroker(minter, pool, ExchangeConfig(
        sts_endpoint_url=settings.sts_endpoint_url, duration_s=settings.web_identity_session_seconds,
        connect_timeout_s=settings.sts_connect_timeout_seconds, read_timeout_s=settings.sts_read_timeout_seconds,
    ))
    rotation = RotationTask(keys, interval_s=settings.oidc_key_rotation_seconds)
    return OidcServices(web_identity=broker, keys=keys, issuer=issuer, minter=minter, rotation=rotation,
                        catalog=catalog)
