"""Bedrock control plane (rest-json, SigV4): ListFoundationModels, GetFoundationModel, ListInferenceProfiles,
GetInferenceProfile, GetModelInvocationLoggingConfiguration.

Answers are derived from the world: models offered in the caller's region, system profiles whose source
regions include it (with the foundation-model ARNs they route to), the account's application profiles,
and whether the account has invocation logging configured. Each call is authorised against the caller's
identity policies (``bedrock:ListFoundationModels`` on ``*``, ``bedrock:GetInferenceProfile`` on the
profile ARN, …).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from byollm.sim.authorize import authorise, policy_sets, request_context
from byollm.sim.bedrock_runtime import BedrockError, json_error
from byollm.sim.iam_policy import ALLOWED
from byollm.sim.sigv4 import BEDROCK_MAX_SKEW_S, SigV4Error, SigV4Verifier, Verified
from byollm.sim.state import SimState
from byollm.sim.world import Account, FoundationModel, World

__all__ = ["bedrock_control_routes"]

_CREATED = "2025-01-01T00:00:00Z"
_GEO_LABEL = {"us": "US", "eu": "EU", "apac": "APAC", "global": "Global"}


def _model_summary(model: FoundationModel, region: str) -> dict[str, Any]:
    return {
        "modelArn": model.arn(region),
        "modelId": model.model_id,
        "modelName": model.name,
        "providerName": model.provider,
        "inputModalities": ["TEXT", "IMAGE"],
        "outputModalities": ["TEXT"],
        "responseStreamingSupported": True,
        "customizationsSupported": [],
        "inferenceTypesSupported": ["ON_DEMAND"] if model.on_demand else ["INFERENCE_PROFILE"],
        "modelLifecycle": {"status": "ACTIVE"},
    }


def _system_profile(world: World, account_id: str, region: str, profile_id: str) -> dict[str, Any] | None:
    found = world.system_profile(profile_id)
    if found is None:
        return None
    geo, model = found
    regions = world.profile_regions(geo, model)
    if region not in regions:
        return None
    return {
        "inferenceProfileName": f"{_GEO_LABEL[geo]} {model.name}",
        "description": f"Routes requests to {model.name} in {', '.join(regions)}.",
        "createdAt": _CREATED,
        "updatedAt": _CREATED,
        "inferenceProfileArn": f"arn:aws:bedrock:{region}:{account_id}:inference-profile/{profile_id}",
        "models": [{"modelArn": model.arn(r)} for r in regions],
        "inferenceProfileId": profile_id,
        "status": "ACTIVE",
        "type": "SYSTEM_DEFINED",
    }


def _app_profile(world: World, account: Account, region: str, profile_id: str) -> dict[str, Any] | None:
    prof = account.application_profiles.get(profile_id)
    if prof is None or prof.region != region:
        return None
    source = prof.source_arn.split(":", 5)[-1]
    kind, _, ident = source.partition("/")
    if kind == "inference-profile":
        inner = _system_profile(world, account.account_id, region, ident)
        models = inner["models"] if inner else []
    else:
        models = [{"modelArn": prof.source_arn}]
    return {
        "inferenceProfileName": prof.name,
        "createdAt": _CREATED,
        "updatedAt": _CREATED,
        "inferenceProfileArn": prof.arn(account.account_id),
        "models": models,
        "inferenceProfileId": prof.profile_id,
        "status": "ACTIVE",
        "type": "APPLICATION",
    }


def _profile_arn(world: World, verified: Verified, account: Account, ident: str) -> str:
    """The ARN GetInferenceProfile is authorised against: the profile in the caller's Region and account
    (``inference-profile/`` for a system profile id, ``application-inference-profile/`` otherwise)."""
    if ident.startswith("arn:"):
        return ident
    kind = "inference-profile" if world.system_profile(ident) is not None else "application-inference-profile"
    return f"arn:aws:bedrock:{verified.region}:{account.account_id}:{kind}/{ident}"


class _Control:
    def __init__(self, state: SimState, verifier: SigV4Verifier) -> None:
        self._state = state
        self._verifier = verifier

    def _json(self, data: dict[str, Any], request_id: str) -> Response:
        return Response(orjson.dumps(data), media_type="application/json", headers={"x-amzn-RequestId": request_id})

    async def _auth(
        self, request: Request, action: str, resource: Callable[[Verified, Account], str] | None = None
    ) -> tuple[Verified, Account]:
        body = request.scope.get("sim.body")
        if body is None:
            body = await request.body()
        try:
            verified = self._verifier.verify(
                method=request.method,
                raw_path=request.scope.get("raw_path", b"/").decode("latin-1"),
                query=request.scope.get("query_string", b"").decode("latin-1"),
                headers=request.scope["headers"],
                body=body,
                max_skew_s=BEDROCK_MAX_SKEW_S,
                scope=request.scope,
            )
        except SigV4Error as err:
            raise BedrockError.from_sigv4(err) from None
        account = self._state.account(verified.principal.account_id)
        if account is None or verified.region not in account.regions or verified.service != "bedrock":
            raise BedrockError(
                "UnrecognizedClientException", "The security token included in the request is invalid.", 403
            )
        target = resource(verified, account) if resource is not None else "*"
        context = request_context(verified, self._state.clock(), requested_region=verified.region)
        decision, why = authorise(policy_sets(self._state, verified), action, target, context)
        if decision != ALLOWED:
            raise BedrockError(
                "AccessDeniedException",
                f"User: {verified.principal.arn} is not authorized to perform: {action} on resource: {target} {why}",
            )
        return verified, account

    def wrap(self, handler: Callable[[Request, str], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            request_id = self._state.request_id()
            try:
                return await handler(request, request_id)
            except BedrockError as err:
                status, headers, payload = json_error(err, request_id)
                return Response(payload, status_code=status, headers={k.decode(): v.decode() for k, v in headers})

        return endpoint

    async def list_models(self, request: Request, request_id: str) -> Response:
        verified, _ = await self._auth(request, "bedrock:ListFoundationModels")
        q = request.query_params
        out = []
        for model in self._state.world.models.values():
            if verified.region not in model.regions:
                continue
            if q.get("byProvider") and q["byProvider"].lower() != model.provider.lower():
                continue
            if q.get("byOutputModality") and q["byOutputModality"] != "TEXT":
                continue
            summary = _model_summary(model, verified.region)
            if q.get("byInferenceType") and q["byInferenceType"] not in summary["inferenceTypesSupported"]:
                continue
            out.append(summary)
        return self._json({"modelSummaries": out}, request_id)

    async def get_model(self, request: Request, request_id: str) -> Response:
        ident = unquote(request.path_params["ident"])
        model_id = ident.rsplit("/", 1)[-1]
        verified, _ = await self._auth(request, "bedrock:GetFoundationModel")
        model = self._state.world.models.get(model_id)
        if model is None or verified.region not in model.regions:
            raise BedrockError("ResourceNotFoundException", "The specified model identifier is not found.")
        return self._json({"modelDetails": _model_summary(model, verified.region)}, request_id)

    async def get_profile(self, request: Request, request_id: str) -> Response:
        ident = unquote(request.path_params["ident"])
        verified, account = await self._auth(
            request, "bedrock:GetInferenceProfile", lambda v, a: _profile_arn(self._state.world, v, a, ident)
        )
        profile_id = ident.rsplit("/", 1)[-1]
        if ident.startswith("arn:") and ident.split(":")[4] not in ("", account.account_id):
            raise BedrockError("AccessDeniedException", "You don't have access to the inference profile.")
        found = _system_profile(self._state.world, account.account_id, verified.region, profile_id)
        if found is None:
            found = _app_profile(self._state.world, account, verified.region, profile_id)
        if found is None:
            raise BedrockError("ResourceNotFoundException", f"Inference profile {ident} not found.")
        return self._json(found, request_id)

    async def list_profiles(self, request: Request, request_id: str) -> Response:
        verified, account = await self._auth(request, "bedrock:ListInferenceProfiles")
        kind = request.query_params.get("typeEquals", "SYSTEM_DEFINED")
        world = self._state.world
        out: list[dict[str, Any]] = []
        if kind == "SYSTEM_DEFINED":
            for model in world.models.values():
                for geo in model.profile_geos:
                    found = _system_profile(world, account.account_id, verified.region, f"{geo}.{model.model_id}")
                    if found:
                        out.append(found)
        else:
            for pid in account.application_profiles:
                found = _app_profile(world, account, verified.region, pid)
                if found:
                    out.append(found)
        return self._json({"inferenceProfileSummaries": out}, request_id)

    async def logging(self, request: Request, request_id: str) -> Response:
        _, account = await self._auth(request, "bedrock:GetModelInvocationLoggingConfiguration")
        if not account.invocation_logging:
            return self._json({}, request_id)
        config = {
            "cloudWatchConfig": {
                "logGroupName": "/aws/bedrock/modelinvocations",
                "roleArn": f"arn:aws:iam::{account.account_id}:role/BedrockInvocationLogging",
            },
            "textDataDeliveryEnabled": True,
            "imageDataDeliveryEnabled": False,
            "embeddingDataDeliveryEnabled": False,
        }
        return self._json({"loggingConfig": config}, request_id)


def bedrock_control_routes(state: SimState, verifier: SigV4Verifier) -> list[BaseRoute]:
    control = _Control(state, verifier)
    return [
        Route("/foundation-models", control.wrap(control.list_models), methods=["GET"]),
        Route("/foundation-models/{ident:path}", control.wrap(control.get_model), methods=["GET"]),
        Route("/inference-profiles", control.wrap(control.list_profiles), methods=["GET"]),
        Route("/inference-profiles/{ident:path}", control.wrap(control.get_profile), methods=["GET"]),
        Route("/logging/modelinvocations", control.wrap(control.logging), methods=["GET"]),
    ]
