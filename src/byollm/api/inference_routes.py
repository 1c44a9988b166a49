"""Inference endpoints: Anthropic Messages (``/v1/messages``), OpenAI Chat Completions
(``/v1/chat/completions``), token counting and the model list.

Thin by design: authenticate, parse, build the ``InferenceContext`` (team, actor, this request's delegated
AWS credentials and BYOK keys), call the gateway once, and render in the caller's API shape. Errors are
rendered by ``api.errors`` in the same shape.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from byollm.api.auth import authenticate_request, services_of, token_from_headers
from byollm.api.errors import AT_THE_DOOR, ApiShape, error_responses
from byollm.api.request_id import request_id_of, request_started_of
from byollm.control.authz import Caller, PrincipalKind
from byollm.credentials.delegated import is_secure_transport, parse_delegated_headers
from byollm.errors import ByollmError, ErrorClass
from byollm.gateway.executor import InferenceContext, ModelListing, Served, ServedStream
from byollm.policy.types import Actor, ActorKind, Host, RouteRequest
from byollm.providers.base import CanonicalRequest, StreamEvent
from byollm.providers.sse import encode_sse
from byollm.providers.translate_openai import (
    CanonicalStreamToOpenAI,
    canonical_to_openai_response,
    openai_request_to_canonical,
)
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


def _check_messages_body(body: Mapping[str, Any], *, need_max_tokens: bool = True) -> None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ByollmError(ErrorClass.INVALID_REQUEST, "model: a model name (or \"auto\") is required")
    if not isinstance(body.get("messages"), list):
        raise ByollmError(ErrorClass.INVALID_REQUEST, "messages: a list of messages is required")
    if need_max_tokens and (not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1):
        raise ByollmError(ErrorClass.INVALID_REQUEST, "max_tokens: a positive integer is required")


def _route_request(body: Mapping[str, Any], size: int, stream: bool) -> RouteRequest:
    max_tokens = body.get("max_tokens")
    return RouteRequest(
        model=str(body["model"]), stream=stream, estimated_input_tokens=size // 4,
        max_output_tokens=max_tokens if isinstance(max_tokens, int) else 0, uses_tools=bool(body.get("tools")),
    )


def _canonical(request: Request, body: Mapping[str, Any], context: InferenceContext, stream: bool) -> CanonicalRequest:
    betas = tuple(b.strip() for b in request.headers.get("anthropic-beta", "").split(",") if b.strip())
    return CanonicalRequest(
        body=body, stream=stream, anthropic_version=request.headers.get("anthropic-version", "2023-06-01"),
        anthropic_beta=betas, request_id=context.request_id, team_uid=context.team_uid,
    )


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


def credits_comment(opened: ServedStream) -> bytes:
    """An SSE comment with what a streamed answer cost, sent after its last event: the headers left before
    the usage was known, and every SSE reader (the official SDKs included) skips comment lines."""
    return f": x-byollm-credits={opened.credits if opened.credits is not None else 0}\n\n".encode()


def _event_bytes(event: StreamEvent) -> bytes:
    return event.raw if event.raw is not None else orjson.dumps(event.data)


# --- Anthropic Messages -------------------------------------------------------------------------------------


@router.post("/v1/messages", summary="Anthropic Messages API", openapi_extra=_MESSAGES_SCHEMA,
             responses=_ANTHROPIC_ERRORS)
async def messages(request: Request) -> Response:
    services = services_of(request)
    context = await _context(request, services, "anthropic")
    body, size = await _json_body(request)
    _check_messages_body(body)
    stream = bool(body.get("stream"))
    canonical = _canonical(request, body, context, stream)
    route_request = _route_request(body, size, stream)
    if not stream:
        served = await services.gateway.complete(context, canonical, route_request)
        message = served.value
        content = message.raw if message.raw is not None else orjson.dumps(message.message)
        return Response(content, media_type="application/json", headers=_headers(served))
    opened = await services.gateway.stream(context, canonical, route_request)

    async def sse() -> AsyncIterator[bytes]:
        preamble: list[bytes] = []
        async for event in opened.events:
            encoded = encode_sse(event.type, _event_bytes(event))
            if len(preamble) < opened.preamble:  # the events read before committing go out in one write
                preamble.append(encoded)
                if len(preamble) == opened.preamble:
                    yield b"".join(preamble)
                continue
            yield encoded
        if 0 < len(preamble) < opened.preamble:
            yield b"".join(preamble)
        yield credits_comment(opened)

    return StreamingResponse(sse(), media_type="text/event-stream",
                             headers={**_headers(opened), "cache-control": "no-cache"})


@router.post("/v1/messages/count_tokens", summary="Count input tokens (Anthropic API)",
             openapi_extra=_COUNT_TOKENS_SCHEMA, responses=_ANTHROPIC_ERRORS)
async def count_tokens(request: Request) -> Response:
    services = services_of(request)
    context = await _context(request, services, "anthropic")
    body, size = await _json_body(request)
    _check_messages_body(body, need_max_tokens=False)
    body = {**body, "max_tokens": body.get("max_tokens") or 1}
    served = await services.gateway.count_tokens(context, _canonical(request, body, context, False),
                                                 _route_request(body, size, False))
    return Response(orjson.dumps({"input_tokens": served.value}), media_type="application/json",
                    headers=_headers(served))


# --- OpenAI Chat Completions ----------------------------------------------------------------------------------


@router.post("/v1/chat/completions", summary="OpenAI Chat Completions API", openapi_extra=_CHAT_SCHEMA,
             responses=_OPENAI_ERRORS)
async def chat_completions(request: Request) -> Response:
    services = services_of(request)
    context = await _context(request, services, "openai")
    raw_body, size = await _json_body(request)
    body = openai_request_to_canonical(raw_body)
    _check_messages_body(body)
    stream = bool(raw_body.get("stream"))
    canonical = _canonical(request, body, context, stream)
    route_request = _route_request(body, size, stream)
    model_name = str(raw_body.get("model"))
    if not stream:
        served = await services.gateway.complete(context, canonical, route_request)
        answer = canonical_to_openai_response(served.value.message, model_name, context.request_id)
        return Response(orjson.dumps(answer), media_type="application/json", headers=_headers(served))
    opened = await services.gateway.stream(context, canonical, route_request)
    include_usage = bool((raw_body.get("stream_options") or {}).get("include_usage"))
    translator = CanonicalStreamToOpenAI(model_name, context.request_id, include_usage=include_usage)

    async def chunks() -> AsyncIterator[bytes]:
        async for event in opened.events:
            if event.type == "error":
                yield b"data: " + orjson.dumps({"error": event.data.get("error")}) + b"\n\n"
                continue
            for chunk in translator.feed(event.data):
                yield b"data: " + orjson.dumps(chunk) + b"\n\n"
        yield credits_comment(opened)
        yield b"data: [DONE]\n\n"

    return StreamingResponse(chunks(), media_type="text/event-stream",
                             headers={**_headers(opened), "cache-control": "no-cache"})


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
        data = [{"type": "model", "id": m.id, "display_name": m.display_name, "created_at": "2025-01-01T00:00:00Z",
                 "byollm": _listing_extra(m)} for m in listing]
        page, has_more = _page(data, request.query_params)
        body: dict[str, Any] = {"data": page, "has_more": has_more,
                                "first_id": page[0]["id"] if page else None,
                                "last_id": page[-1]["id"] if page else None}
    else:
        body = {"object": "list", "data": [
            {"id": m.id, "object": "model", "created": 1735689600, "owned_by": m.owner,
             "byollm": {"display_name": m.display_name, **_listing_extra(m)}} for m in listing]}
    return Response(orjson.dumps(body), media_type="application/json")
