"""The OIDC issuer's public documents and the admin endpoints for IAM setup help and signing keys.

Public (no token): ``/.well-known/openid-configuration`` and ``/.well-known/jwks.json``, with
``Cache-Control: public, max-age=<BYOLLM_OIDC_JWKS_MAX_AGE_SECONDS>``; AWS STS fetches them.

Admin API (``/api/v1``):

- ``GET /teams/{team}/iam/trust-policy?agent=&format=&agent_strict=`` and
  ``GET /teams/{team}/iam/permissions-policy?agent=&format=`` (team admins);
- ``GET /iam/oidc-provider?format=`` (any signed-in user);
- ``GET /operator/signing-keys`` and ``POST /operator/signing-keys/rotate`` (the operator).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from byollm.api.auth import current_caller, services_of
from byollm.api.errors import AT_THE_DOOR, ApiShape, error_responses
from byollm.control.authz import Caller
from byollm.errors import ByollmError, ErrorClass
from byollm.iam.policies import IamDocument, OutputFormat, PolicyForm
from byollm.iam.service import IamSetup
from byollm.oidc.issuer import DISCOVERY_PATH, JWKS_PATH
from byollm.oidc.keys import KeyView
from byollm.oidc.wiring import OidcServices

__all__ = ["router"]

router = APIRouter(responses=error_responses(ApiShape.BYOLLM, *AT_THE_DOOR, 403, 404))

CallerDep = Annotated[Caller, Depends(current_caller)]
FormatQuery = Annotated[OutputFormat, Query(alias="format")]


def _oidc(request: Request) -> OidcServices:
    oidc = services_of(request).oidc
    if oidc is None:
        raise ByollmError(ErrorClass.NOT_FOUND, "this server does not run the OIDC issuer")
    return oidc


OidcDep = Annotated[OidcServices, Depends(_oidc)]


def _iam(request: Request) -> IamSetup:
    services = services_of(request)
    return IamSetup(services.control, services.catalog, _oidc(request).issuer,
                    session_seconds=services.settings.web_identity_session_seconds)


IamDep = Annotated[IamSetup, Depends(_iam)]


class IamDocumentView(BaseModel):
    kind: str
    format: OutputFormat
    document: dict[str, Any]
    rendered: str
    role_arn: str | None = None
    notes: list[str] = Field(default_factory=list)
    facts: dict[str, Any] = Field(default_factory=dict)


class SigningKeyView(BaseModel):
    kid: str
    generation: int
    status: str
    created_at: str
    activate_at: str
    retired_at: str | None = None
    unpublish_at: str | None = None


class RotateRequest(BaseModel):
    # bounded: an unbounded float overflowed timedelta (a 500 the API fuzz test found); 30 days is far past any
    # JWKS cache time a verifier uses
    publish_delay_seconds: float | None = Field(default=None, ge=0, le=30 * 24 * 3600)


def _doc(doc: IamDocument) -> IamDocumentView:
    return IamDocumentView(kind=doc.kind, format=doc.format, document=doc.document, rendered=doc.rendered,
                           role_arn=doc.role_arn, notes=list(doc.notes), facts=dict(doc.facts))


def _key(view: KeyView) -> SigningKeyView:
    return SigningKeyView(
        kid=view.kid, generation=view.generation, status=view.status.value, created_at=view.created_at.isoformat(),
        activate_at=view.activate_at.isoformat(),
        retired_at=view.retired_at.isoformat() if view.retired_at else None,
        unpublish_at=view.unpublish_at.isoformat() if view.unpublish_at else None,
    )


# --- public issuer documents ---------------------------------------------------------------------------------


@router.get(DISCOVERY_PATH, include_in_schema=False)
async def discovery(oidc: OidcDep) -> JSONResponse:
    if oidc.issuer.url is None:
        raise ByollmError(ErrorClass.NOT_FOUND, "no public issuer URL is configured (BYOLLM_PUBLIC_URL)")
    return JSONResponse(oidc.issuer.discovery(), headers={"cache-control": oidc.issuer.cache_control})


@router.get(JWKS_PATH, include_in_schema=False)
async def jwks(oidc: OidcDep) -> JSONResponse:
    return JSONResponse(await oidc.issuer.jwks(), media_type="application/json",
                        headers={"cache-control": oidc.issuer.cache_control})


# --- IAM setup help ------------------------------------------------------------------------------------------


@router.get("/api/v1/iam/oidc-provider", tags=["iam"], summary="The IAM OIDC provider to create for byollm")
async def oidc_provider(caller: CallerDep, iam: IamDep,
                        fmt: FormatQuery = OutputFormat.JSON) -> IamDocumentView:
    return _doc(await iam.oidc_provider(caller, fmt))


@router.get("/api/v1/teams/{team_uid}/iam/trust-policy", tags=["iam"],
            summary="The trust policy of the team's (or an agent's) role (admins)")
async def trust_policy(team_uid: str, caller: CallerDep, iam: IamDep, fmt: FormatQuery = OutputFormat.JSON,
                       agent: Annotated[str | None, Query()] = None,
                       agent_strict: Annotated[bool, Query()] = False) -> IamDocumentView:
    return _doc(await iam.trust_policy(caller, team_uid, fmt, agent=agent, agent_strict=agent_strict))


@router.get("/api/v1/teams/{team_uid}/iam/permissions-policy", tags=["iam"],
            summary="The Bedrock permissions the team's role needs for its enabled models (admins)")
async def permissions_policy(team_uid: str, caller: CallerDep, iam: IamDep, fmt: FormatQuery = OutputFormat.JSON,
                             agent: Annotated[str | None, Query()] = None,
                             form: Annotated[PolicyForm, Query()] = PolicyForm.LEAST_PRIVILEGE) -> IamDocumentView:
    return _doc(await iam.permissions_policy(caller, team_uid, fmt, agent=agent, form=form))


# --- signing keys (operator) ---------------------------------------------------------------------------------


@router.get("/api/v1/operator/signing-keys", tags=["operator"], summary="OIDC signing keys (operator)")
async def list_signing_keys(caller: CallerDep, oidc: OidcDep) -> list[SigningKeyView]:
    return [_key(v) for v in await oidc.list_keys(caller)]


@router.post("/api/v1/operator/signing-keys/rotate", tags=["operator"],
             summary="Start a new OIDC signing key; it signs after the publish delay (operator)")
async def rotate_signing_keys(caller: CallerDep, oidc: OidcDep,
                              body: RotateRequest | None = None) -> list[SigningKeyView]:
    delay = body.publish_delay_seconds if body is not None else None
    return [_key(v) for v in await oidc.rotate_keys(caller, publish_delay_s=delay)]
