"""The issuer's public documents: OpenID discovery and the JWKS, as AWS IAM fetches them.

AWS STS validates a web-identity token by fetching ``<iss>/.well-known/openid-configuration``, following its
``jwks_uri`` and picking the key named by the token's ``kid``. Both documents are public and carry a
``Cache-Control: max-age`` shorter than the publish delay of a new key (see ``oidc.keys``), so a verifier's
cached JWKS always knows a key before it signs. The routes live at the server's root; an issuer URL with a
path (``https://host/byollm``) needs the reverse proxy to map ``<path>/.well-known/*`` to them.
"""

from __future__ import annotations

from typing import Any

from byollm.errors import ByollmError, ErrorClass
from byollm.oidc.keys import ALG, KeyManager

__all__ = ["DISCOVERY_PATH", "JWKS_PATH", "Issuer", "issuer_host"]

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/.well-known/jwks.json"
CLAIMS = ("iss", "sub", "aud", "iat", "nbf", "exp", "jti", "byollm_team", "byollm_actor_type", "byollm_principal",
          "byollm_agent", "byollm_run")


def issuer_host(url: str) -> str:
    """``HOST[/PATH]`` of an issuer URL: the IAM provider's name and the trust-policy condition-key prefix."""
    return url.split("://", 1)[-1].rstrip("/")


class Issuer:
    """The configured issuer URL and the documents it serves."""

    def __init__(self, url: str | None, keys: KeyManager, *, audience: str, max_age_s: int) -> None:
        self._url = url.rstrip("/") if url else None
        self._keys = keys
        self.audience = audience
        self.max_age_s = max_age_s

    @property
    def url(self) -> str | None:
        return self._url

    def require_url(self) -> str:
        """The issuer URL, or ``issuer_unreachable`` naming the settings that configure it."""
        if self._url is None:
            raise ByollmError(ErrorClass.ISSUER_UNREACHABLE,
                              "byollm has no public issuer URL: set BYOLLM_PUBLIC_URL (or BYOLLM_OIDC_ISSUER_URL)"
                              " to the public HTTPS address AWS can reach")
        return self._url

    @property
    def host(self) -> str:
        return issuer_host(self.require_url())

    @property
    def cache_control(self) -> str:
        return f"public, max-age={self.max_age_s}"

    def discovery(self) -> dict[str, Any]:
        url = self.require_url()
        return {
            "issuer": url,
            "jwks_uri": url + JWKS_PATH,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALG],
            "scopes_supported": ["openid"],
            "claims_supported": list(CLAIMS),
        }

    async def jwks(self) -> dict[str, Any]:
        return await self._keys.jwks()
