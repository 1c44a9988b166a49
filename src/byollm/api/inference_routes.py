"""Inference endpoints: Anthropic Messages (``/v1/messages``), OpenAI Chat Completions
(``/v1/chat/completions``), OpenAI Responses (``/v1/responses``), token counting and the model list.

Thin by design: authenticate, build the ``InferenceContext`` (team, actor, this request's delegated AWS
credentials and BYOK keys), let the client API's front end (``api/frontends``) parse and check the body,
call the gateway once, and let the front end render. ``serve`` is that loop, shared by every client API.
Errors are rendered by ``api.errors`` in the caller's shape.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from byollm.api.auth import authenticate_request, services_of, token_from_headers
from byollm.api.errors import AT_THE_DOOR, ApiShape, error_responses
from byollm.api.frontends import ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_RESPONSES, ClientApi, RequestMeta
from byollm.api.request_id import request_id_of, request_started_of
from byollm.control.authz import Caller, PrincipalKind
from byollm.credentials.delegated import is_secure_transport, parse_delegated_headers
from byollm.errors import ByollmError, ErrorClass
from byollm.gateway.executor import InferenceContext, ModelListing, Served, ServedStream
from byollm.policy.types import Actor, ActorKind, Host
from byollm.services import Services

__all__ = ["router"]

router = APIRouter(tags=["inference"])

BYOK_HEADERS = {host: f"x-byollm-byok-{host.value}" for host in Host if host.is_direct}
_HEADER_SAFE = re.compile(r"[^\x20-\x7e]")

_MESSAGES_SCHEMA: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["model", "messages", "max_tokens"],
        "properties": {"model": {"type": "string"}, "messages": {"type": "array"},
                       "max_tokens": {"type": "integer", "minimum": 1}, "stream": {"type": "boolean"},
                       "system": {}, "tools": {"type": "array"}},
    }}}},
}
_CHAT_SCHEMA: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["model", "messages"],
        "properties": {"model": {"type": "string"}, "messages": {"type": "array"}, "stream": {"type": "boolean"},
                       "tools": {"type": "array"}, "max_tokens": {"type": "integer"}},
    }}}},
}
# --- documented answers: a JSON body, or an event stream when the request asked for ``stream`` ----------------
def _sse(data: dict[str, Any]) -> dict[str, Any]:
    """An event stream whose events' ``data`` is ``data`` (OpenAPI 3.2's ``itemSchema``, one entry per event)."""
    return {"text/event-stream": {"itemSchema": {"type": "object", "required": ["data"], "properties": {
        "event": {"type": "string"}, "id": {"type": "string"}, "data": data}}}}


_MESSAGES_SCHEMA["responses"] = {"200": {"description": "An Anthropic message, or its event stream", "content": {
    "application/json": {"schema": {
        "type": "object", "required": ["id", "type", "role", "content", "model"],
        "properties": {"id": {"type": "string"}, "type": {"const": "message"}, "role": {"const": "assistant"},
                       "content": {"type": "array"}, "model": {"type": "string"}, "usage": {"type": "object"}},
    }}, **_sse({"type": "string", "contentMediaType": "application/json", "contentSchema": {
        "type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}}})}}}
_COUNT_TOKENS_BODY = {**_MESSAGES_SCHEMA["requestBody"]["content"]["application/json"]["schema"],
                      "required": ["model", "messages"]}  # max_tokens is optional when only counting
_COUNT_TOKENS_SCHEMA: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": _COUNT_TOKENS_BODY}}},
    "responses": {"200": {"description": "The input's token count", "content": {"application/json": {"schema": {
        "type": "object", "required": ["input_tokens"],
        "properties": {"input_tokens": {"type": "integer", "minimum": 0}},
    }}}}},
}
_CHAT_SCHEMA["responses"] = {"200": {"description": "A chat completion, or its chunks as an event stream", "content": {
    "application/json": {"schema": {
        "type": "object", "required": ["id", "object", "choices", "model"],
        "properties": {"id": {"type": "string"}, "object": {"const": "chat.completion"},
                       "choices": {"type": "array"}, "model": {"type": "string"}, "usage": {"type": "object"}},
    }}, **_sse({"type": "string", "description": "a chat.completion.chunk as JSON, an error, or [DONE]"})}}}
_MODELS_SCHEMA: dict[str, Any] = {"responses": {"200": {"description": "Anthropic's or OpenAI's list", "content": {
    "application/json": {"schema": {
        "type": "object", "required": ["data"],
        "properties": {"data": {"type": "array", "items": {"type": "object", "required": ["id"]}}},
    }}}}}}
_RESPONSES_SCHEMA: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["model", "input"],
        "properties": {"model": {"type": "string"}, "input": {"type": ["string", "array"]},
                       "instructions": {"type": "string"}, "stream": {"type": "boolean"},
                       "tools": {"type": "array"}, "max_output_tokens": {"type": "integer", "minimum": 1}},
    }}}},
    "responses": {"200": {"description": "A Response object, or its typed events as an event stream", "content": {
        "application/json": {"schema": {
            "type": "object", "required": ["id", "object", "output", "model"],
            "properties": {"id": {"type": "string"}, "object": {"const": "response"}, "output": {"type": "array"},
                           "model": {"type": "string"}, "status": {"type": "string"}, "usage": {}},
        }}, **_sse({"type": "string", "contentMediaType": "application/json", "contentSchema": {
            "type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}}})}}},
}
_INPUT_TOKENS_SCHEMA: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        **_RESPONSES_SCHEMA["requestBody"]["content"]["application/json"]["schema"], "required": ["model"]}}}},
    "responses": {"200": {"description": "The input's token count", "content": {"application/json": {"schema": {
        "type": "object", "required": ["object", "input_tokens"],
        "properties": {"object": {"const": "response.input_tokens"}, "input_tokens": {"type": "integer", "minimum": 0}},
    }}}}},
}
# every taxonomy status an inference request can meet, except 500 (a bug, never a documented answer)
_INFERENCE_STATUSES = (*AT_THE_DOOR, 402, 403, 404, 424, 503)
_ANTHROPIC_ERRORS = error_responses(ApiShape.ANTHROPIC, *_INFERENCE_STATUSES)
_OPENAI_ERRORS = error_responses(ApiShape.OPENAI, *_INFERENCE_STATUSES)


def _team_for(caller: Caller, requested: str | None) -> str:
    if caller.token_team_uid is not None:
        if requested and requested != caller.token_team_uid:
            raise ByollmError(ErrorClass.NOT_FOUND, "no such team", team=requested)
        return caller.token_team_uid
    teams = caller.visible_teams()
    if requested:
        if requested not in teams:
            raise ByollmError(ErrorClass.NOT_FOUND, "no such team", team=requested)
        return requested
    if len(teams) == 1:
        return teams[0]
    raise ByollmError(ErrorClass.INVALID_REQUEST,
                      "this token can act in several teams; name one with the x-byollm-team header")


async def _context(request: Request, services: Services, api: str) -> InferenceContext:
    headers = request.headers
    token = token_from_headers(headers.get("authorization"), headers.get("x-api-key"))
    if token is None:
        raise ByollmError(ErrorClass.UNAUTHENTICATED, "no byollm token in the request")
    caller = await authenticate_request(request, token)
    team_uid = _team_for(caller, headers.get("x-byollm-team"))
    policy = await services.policies.get(team_uid)
    client_host = request.client.host if request.client else None
    delegated = parse_delegated_headers(
        headers,
        long_term_allowed=policy.settings.long_term_keys_allowed,
        secure_transport=is_secure_transport(request.url.scheme, client_host,
                                             services.settings.allow_insecure_credentials),
    )
    byok = {host: value.strip() for host, name in BYOK_HEADERS.items() if (value := headers.get(name, "").strip())}
    if caller.kind is PrincipalKind.AGENT:
        actor = Actor(ActorKind.AGENT_RUN, caller.principal_uid, agent_uid=caller.principal_uid)
    else:
        actor = Actor(ActorKind.INTERACTIVE_USER, caller.principal_uid)
    return InferenceContext(
        request_id=request_id_of(request.scope), api=api, team_uid=team_uid, principal_type=caller.kind.value,
        principal_uid=caller.principal_uid, actor=actor, token_uid=caller.token_uid, delegated=delegated,
        byok=byok, started=request_started_of(request.scope),
    )


async def _json_body(request: Request) -> tuple[dict[str, Any], int]:
    raw = await request.body()  # its size is bounded by BodyLimitMiddleware
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ByollmError(ErrorClass.INVALID_REQUEST, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ByollmError(ErrorClass.INVALID_REQUEST, "the request body must be a JSON object")
    return body, len(raw)


def _headers(served: Served | ServedStream) -> dict[str, str]:
    headers = {
        "x-byollm-route": served.route,
        "x-byollm-model": served.model,
        "x-byollm-fallbacks": str(served.fallbacks),
        "x-byollm-overhead-ms": f"{served.overhead_ms:.3f}",
    }
    if served.model_rule not in ("catalog", "auto"):  # an alias or a family mapping chose the model
        headers["x-byollm-requested-model"] = _HEADER_SAFE.sub("?", served.requested_model)[:200]
        headers["x-byollm-model-rule"] = _HEADER_SAFE.sub("?", served.model_rule)[:220]
    if served.auto_reason is not None:
        headers["x-byollm-auto-model"] = served.model
        headers["x-byollm-auto-reason"] = _HEADER_SAFE.sub("?", served.auto_reason)[:300]
    if served.failures:
        reasons = ", ".join(f"{a.route}={a.error_class.code}" for a in served.failures)
        headers["x-byollm-fallback-reasons"] = _HEADER_SAFE.sub("?", reasons)[:2000]
    if served.billing:
        headers["x-byollm-billing"] = served.billing
    if served.credits is not None:
        headers["x-byollm-credits"] = str(served.credits)
    return headers


class _StreamAnswer(StreamingResponse):
    """A streamed answer that settles its request however the sending ends: a stream never started (the
    client left before the first write) or broken off by a failure is logged and charged all the same."""

    def __init__(self, content: AsyncIterator[bytes], opened: ServedStream) -> None:
        super().__init__(content, media_type="text/event-stream",
                         headers={**_headers(opened), "cache-control": "no-cache"})
        self._opened = opened

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except (ClientDisconnect, OSError, asyncio.CancelledError):
            await self._opened.abandon(499, "client_disconnected")
            raise
        except BaseException:
            await self._opened.abandon(ErrorClass.INTERNAL_ERROR.status, ErrorClass.INTERNAL_ERROR.code)
            raise
        finally:
            await self._opened.abandon(499, "client_disconnected")  # a no-op once the relay settled it


async def serve(request: Request, frontend: ClientApi) -> Response:
    """One inference request through ``frontend``: authenticate, parse and check the whole body (nothing
    is sent upstream before that), serve through the gateway, render; the request is settled (logged,
    charged) with the status its client received."""
    services = services_of(request)
    context = await _context(request, services, frontend.api)
    body, size = await _json_body(request)
    parsed = frontend.parse(body, size, RequestMeta(context.request_id, context.team_uid, request.headers))
    gateway = services.gateway
    if not parsed.canonical.stream:
        async with gateway.completing(context, parsed.canonical, parsed.route) as served:
            content = frontend.render(served, parsed, context.request_id)
        return Response(content, media_type="application/json", headers=_headers(served))
    opened = await gateway.stream(context, parsed.canonical, parsed.route)
    try:
        return _StreamAnswer(frontend.render_stream(opened, parsed, context.request_id), opened)
    except BaseException:
        await opened.abandon(ErrorClass.INTERNAL_ERROR.status, ErrorClass.INTERNAL_ERROR.code)
        raise


# --- Anthropic Messages -------------------------------------------------------------------------------------


@router.post("/v1/messages", summary="Anthropic Messages API", openapi_extra=_MESSAGES_SCHEMA,
             responses=_ANTHROPIC_ERRORS)
async def messages(request: Request) -> Response:
    return await serve(request, ANTHROPIC_MESSAGES)


@router.post("/v1/messages/count_tokens", summary="Count input tokens (Anthropic API)",
             openapi_extra=_COUNT_TOKENS_SCHEMA, responses=_ANTHROPIC_ERRORS)
async def count_tokens(request: Request) -> Response:
    services = services_of(request)
    context = await _context(request, services, ANTHROPIC_MESSAGES.api)
    body, size = await _json_body(request)
    parsed = ANTHROPIC_MESSAGES.parse_count_tokens(
        body, size, RequestMeta(context.request_id, context.team_uid, request.headers))
    served = await services.gateway.count_tokens(context, parsed.canonical, parsed.route)
    return Response(orjson.dumps({"input_tokens": served.value}), media_type="application/json",
                    headers=_headers(served))


# --- OpenAI Chat Completions ----------------------------------------------------------------------------------


@router.post("/v1/chat/completions", summary="OpenAI Chat Completions API", openapi_extra=_CHAT_SCHEMA,
             responses=_OPENAI_ERRORS)
async def chat_completions(request: Request) -> Response:
    return await serve(request, OPENAI_CHAT)


# --- OpenAI Responses ----------------------------------------------------------------------------------------


@router.post("/v1/responses", summary="OpenAI Responses API", openapi_extra=_RESPONSES_SCHEMA,
             responses=_OPENAI_ERRORS)
async def responses(request: Request) -> Response:
    return await serve(request, OPENAI_RESPONSES)


@router.post("/v1/responses/input_tokens", summary="Count input tokens (OpenAI Responses API)",
             openapi_extra=_INPUT_TOKENS_SCHEMA, responses=_OPENAI_ERRORS)
async def responses_input_tokens(request: Request) -> Response:
    services = services_of(request)
    context = await _context(request, services, OPENAI_RESPONSES.api)
    body, size = await _json_body(request)
    parsed = OPENAI_RESPONSES.parse_input_tokens(
        body, size, RequestMeta(context.request_id, context.team_uid, request.headers))
    served = await services.gateway.count_tokens(context, parsed.canonical, parsed.route)
    return Response(orjson.dumps({"object": "response.input_tokens", "input_tokens": served.value}),
                    media_type="application/json", headers=_headers(served))


# --- model list -------------------------------------------------------------------------------------------------


def _listing_extra(m: ModelListing) -> dict[str, Any]:
    return {"routes": m.routes, **({"alias_of": m.alias_of} if m.alias_of else {})}


_DEFAULT_PAGE, _MAX_PAGE = 20, 1000


def _page(data: list[dict[str, Any]], query: Mapping[str, str]) -> tuple[list[dict[str, Any]], bool]:
    """Anthropic's list paging (``limit``, ``after_id``, ``before_id``), as the SDKs' auto-pagers send it.

    An id that is not in the list gives an empty page rather than an error: the list changes when an admin
    edits the policy, and a pager must then stop, not fail.
    """
    try:
        limit = min(max(int(query.get("limit", _DEFAULT_PAGE)), 1), _MAX_PAGE)
    except ValueError:
        raise ByollmError(ErrorClass.INVALID_REQUEST, "limit: must be an integer from 1 to 1000") from None
    ids = [str(d["id"]) for d in data]
    after, before = query.get("after_id"), query.get("before_id")
    if after is not None:
        start = ids.index(after) + 1 if after in ids else len(ids)
        return data[start:start + limit], start + limit < len(data)
    if before is not None:
        end = ids.index(before) if before in ids else 0
        return data[max(0, end - limit):end], end - limit > 0
    return data[:limit], limit < len(data)


@router.get("/v1/models", summary="Models this caller may use, and their routes", openapi_extra=_MODELS_SCHEMA,
            responses=_OPENAI_ERRORS)
async def list_models(request: Request) -> Response:
    """Anthropic's list shape when the caller sends ``anthropic-version``, OpenAI's otherwise."""
    services = services_of(request)
    context = await _context(request, services, "anthropic" if "anthropic-version" in request.headers else "openai")
    listing = await services.gateway.list_models(context)
    if context.api == "anthropic":
        data = [_anthropic_model(m) for m in listing]
        page, has_more = _page(data, request.query_params)
        body: dict[str, Any] = {"data": page, "has_more": has_more,
                                "first_id": page[0]["id"] if page else None,
                                "last_id": page[-1]["id"] if page else None}
    else:
        body = {"object": "list", "data": [_openai_model(m) for m in listing]}
    return Response(orjson.dumps(body), media_type="application/json")


def _anthropic_model(m: ModelListing) -> dict[str, Any]:
    return {"type": "model", "id": m.id, "display_name": m.display_name, "created_at": "2025-01-01T00:00:00Z",
            "byollm": _listing_extra(m)}


def _openai_model(m: ModelListing) -> dict[str, Any]:
    return {"id": m.id, "object": "model", "created": 1735689600, "owned_by": m.owner,
            "byollm": {"display_name": m.display_name, **_listing_extra(m)}}


@router.get("/v1/models/{model_id}", summary="One model this caller may use (Anthropic's or OpenAI's shape)",
            responses=_OPENAI_ERRORS)
async def get_model(model_id: str, request: Request) -> Response:
    """What the SDKs' ``models.retrieve`` asks; a name the team cannot use is ``model_not_found``."""
    services = services_of(request)
    context = await _context(request, services, "anthropic" if "anthropic-version" in request.headers else "openai")
    listing = await services.gateway.list_models(context)
    found = next((m for m in listing if m.id == model_id), None)
    if found is None:
        names = ", ".join(m.id for m in listing[:20]) or "none"
        raise ByollmError(ErrorClass.MODEL_NOT_FOUND, f"model {model_id[:100]!r} is not one this team can use"
                          f" (usable: {names})", model=model_id[:100])
    body = _anthropic_model(found) if context.api == "anthropic" else _openai_model(found)
    return Response(orjson.dumps(body), media_type="application/json")
