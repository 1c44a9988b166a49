"""Tables of byollm's OIDC issuer (signing keys). Registered on ``tables.Base``'s metadata."""

from __future__ import annotations
