"""What the client adds to each inference request: the gateway token, an AWS snapshot, BYOK keys.

The rules, in one place for ``chat``, ``ask`` and the proxy:

- the gateway token always (``Authorization: Bearer``), and the team when configured;
- a fresh AWS snapshot (``AwsCredentialSource.snapshot``) when the requested model may route through
  Bedrock: a model the team enables on Bedrock, ``auto``, or a name the client cannot resolve (the gateway
  decides then). If the credentials expired, the request fails here, before anything leaves the machine.
  For a model that routes only to a direct API, no AWS credentials are sent at all;
- a BYOK key for provider P only when the team allows BYOK and the model may route directly to P (for
  ``auto``: any P some enabled model routes to directly). Unknown models get no BYOK key.

The team's routes come from ``GET /api/v1/teams/{team}/policy`` and ``/settings`` (a member may read both),
cached for ``ttl_s``; model names are resolved through the packaged catalog (aliases included).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from byollm.client.aws import AwsCredentialSource, AwsSnapshot
from byollm.client.gateway import GatewayClient, GatewayError

__all__ = ["Attacher", "Need", "RouteHints"]

BYOK_HEADER = "x-byollm-byok-{provider}"


class Need:
    REQUIRED = "required"  # the request cannot succeed as meant without AWS credentials
    OPTIONAL = "optional"  # attach when available (the model list)
    NONE = "none"


@dataclass(frozen=True, slots=True)
class RouteHints:
    bedrock_models: frozenset[str] = frozenset()
    direct_providers: Mapping[str, str] = field(default_factory=dict)  # model id -> provider
    byok_allowed: bool = False
    known: bool = False  # False when the policy could not be read: be conservative

    @classmethod
    def from_views(cls, policy: Mapping[str, Any], settings: Mapping[str, Any]) -> RouteHints:
        direct_off = bool(policy.get("direct_api_disabled"))
        bedrock, direct = set(), {}
        for row in policy.get("models") or []:
            if row.get("bedrock"):
                bedrock.add(str(row["model"]))
            if row.get("direct") and not direct_off and row.get("direct_provider"):
                direct[str(row["model"])] = str(row["direct_provider"])
        return cls(frozenset(bedrock), direct, bool(settings.get("byok_allowed")), known=True)


def _resolver() -> Callable[[str], str | None]:
    from byollm.catalog import load_catalog

    catalog = load_catalog()

    def resolve(name: str) -> str | None:
        model = catalog.resolve(name)
        return model.id if model is not None else None

    return resolve


class Attacher:
    """Builds the extra headers for one request (see the module docstring). Thread-safe."""

    def __init__(self, gateway: GatewayClient, token: str, aws: AwsCredentialSource, byok: Mapping[str, str], *,
                 team: str | None = None, ttl_s: float = 60.0) -> None:
        self._gateway = gateway
        self._token = token
        self.aws = aws
        self._byok = dict(byok)
        self._team = team
        self._ttl_s = ttl_s
        self._hints: RouteHints | None = None
        self._hints_at = 0.0
        self._lock = threading.Lock()
        self._resolve: Callable[[str], str | None] | None = None

    def hints(self) -> RouteHints:
        with self._lock:
            if self._hints is not None and time.monotonic() - self._hints_at < self._ttl_s:
                return self._hints
        try:
            team = self._team or self._gateway.team_uid()
            self._team = team
            hints = RouteHints.from_views(self._gateway.team_policy(team), self._gateway.team_settings(team))
        except GatewayError:
            hints = RouteHints()
        with self._lock:
            self._hints, self._hints_at = hints, time.monotonic()
        return hints

    def model_id(self, name: str) -> str | None:
        if name.strip().lower() == "auto":
            return "auto"
        if self._resolve is None:
            self._resolve = _resolver()
        return self._resolve(name)

    def aws_need(self, model: str | None) -> str:
        if model is None:
            return Need.OPTIONAL
        hints = self.hints()
        model_id = self.model_id(model)
        if not hints.known or model_id is None:
            return Need.REQUIRED
        if model_id == "auto":
            return Need.REQUIRED if hints.bedrock_models else Need.NONE
        return Need.REQUIRED if model_id in hints.bedrock_models else Need.NONE

    def byok_providers(self, model: str | None) -> set[str]:
        if model is None or not self._byok:
            return set()
        hints = self.hints()
        if not hints.byok_allowed:
            return set()
        model_id = self.model_id(model)
        if model_id == "auto":
            wanted = set(hints.direct_providers.values())
        elif model_id is not None and model_id in hints.direct_providers:
            wanted = {hints.direct_providers[model_id]}
        else:
            wanted = set()
        return wanted & set(self._byok)

    def base_headers(self) -> dict[str, str]:
        headers = {"authorization": f"Bearer {self._token}"}
        if self._team:
            headers["x-byollm-team"] = self._team
        return headers

    def headers_for(self, model: str | None) -> tuple[dict[str, str], AwsSnapshot | None]:
        """The headers for one request to ``model`` (``None``: a request without a model, e.g. the model
        list). Raises ``CredentialsExpiredError`` when the model needs AWS credentials that expired."""
        headers = self.base_headers()
        snapshot = None
        need = self.aws_need(model)
        if need == Need.REQUIRED:
            snapshot = self.aws.snapshot()
        elif need == Need.OPTIONAL:
            from byollm.errors import ByollmError

            try:
                snapshot = self.aws.snapshot()
            except ByollmError:
                snapshot = None
        if snapshot is not None:
            headers.update(snapshot.headers())
        for provider in sorted(self.byok_providers(model)):
            headers[BYOK_HEADER.format(provider=provider)] = self._byok[provider]
        return headers, snapshot
