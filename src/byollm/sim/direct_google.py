"""The simulated Gemini API: ``models/{model}:generateContent``, ``:streamGenerateContent``, ``:countTokens``.

Mounted under ``/google`` so clients use ``<sim>/google/v1beta/models/...`` (google-genai: ``http_options=
{"base_url": "<sim>/google"}``). The API key comes from the ``x-goog-api-key`` header or the ``key``
query parameter. ``contents``/``systemInstruction``/``tools``/``toolConfig``/``generationConfig`` are
translated into the canonical Anthropic Messages body, answered by :mod:`byollm.sim.engine` (tagged
``[google:<model>]``) and rendered back as ``GenerateContentResponse`` objects: one JSON object, an SSE
stream of them with ``alt=sse``, or a streamed JSON array without it. Errors use Google's
``{"error": {"code", "message", "status"}}``; a mid-stream fault sends that object as the next chunk,
which google-genai raises as its ``APIError``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from byollm.sim import engine
from byollm.sim.faults import Fault, break_off_stream, with_transport_fault

if TYPE_CHECKING:
    from byollm.sim.state import SimState

__all__ = ["GOOGLE_MODELS", "GoogleError", "gemini_to_messages_body", "google_routes"]

GOOGLE_MODELS: tuple[str, ...] = ("gemini-2.5-pro", "gemini-2.5-flash")

_SERVICE = "google"
_DEFAULT_MAX_TOKENS = 8192
_STATUS_CODES: Mapping[str, int] = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
_STATUS_BY_CODE: Mapping[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_DEFAULT_MESSAGES: Mapping[str, str] = {
    "RESOURCE_EXHAUSTED": "Resource has been exhausted (e.g. check quota).",
    "UNAVAILABLE": "The model is overloaded. Please try again later.",
    "INTERNAL": "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    "DEADLINE_EXCEEDED": "The request timed out. Please try again.",
}
_FINISH_REASONS: Mapping[str, str] = {
    "end_turn": "STOP",
    "stop_sequence": "STOP",
    "tool_use": "STOP",
    "max_tokens": "MAX_TOKENS",
}


class GoogleError(Exception):
    """An error answered in Google's shape; ``status`` is the canonical code name."""

    def __init__(self, status: str, message: str, *, code: int | None = None, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.code = code or _STATUS_CODES.get(status, 500)
        self.details = details

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def google_routes(state: SimState) -> list[BaseRoute]:
    """Routes to mount under ``/google``; they share ``state`` and nothing else."""
    api = _GeminiApi(state)
    routes: list[BaseRoute] = []
    for version in ("v1beta", "v1"):
        routes.append(Route(f"/{version}/models", api.list_models, methods=["GET"]))
        routes.append(Route(f"/{version}/models/{{name}}", api.model_call, methods=["GET", "POST"]))
    return routes


# ------------------------------------------------------------------------------------ translation


def _lower_types(schema: Any) -> Any:
    """Gemini schemas may spell types in upper case (``OBJECT``); the engine reads JSON Schema."""
    if isinstance(schema, Mapping):
        return {
            key: (value.lower() if key == "type" and isinstance(value, str) else _lower_types(value))
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_lower_types(item) for item in schema]
    return schema


def _part_blocks(parts: Any, role: str, pending: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Gemini parts → Anthropic blocks. Calls without ids get one per name, matched to responses by name."""
    blocks: list[dict[str, Any]] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, Mapping):
            continue
        if "text" in part:
            blocks.append({"type": "text", "text": str(part["text"])})
        elif isinstance(call := part.get("functionCall"), Mapping) and role == "assistant":
            name = str(call.get("name"))
            call_id = str(call.get("id") or f"{name}#{sum(len(v) for v in pending.values())}")
            pending.setdefault(name, []).append(call_id)
            blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": call.get("args") or {}})
        elif isinstance(result := part.get("functionResponse"), Mapping):
            name = str(result.get("name"))
            queue = pending.get(name) or []
            call_id = str(result.get("id") or (queue.pop(0) if queue else name))
            content = json.dumps(result.get("response") or {}, sort_keys=True)
            blocks.append({"type": "tool_result", "tool_use_id": call_id, "content": content})
    return blocks


def _tool_choice(config: Any) -> dict[str, Any] | None:
    calling = config.get("functionCallingConfig") if isinstance(config, Mapping) else None
    if not isinstance(calling, Mapping):
        return None
    mode = str(calling.get("mode", "AUTO")).upper()
    allowed = calling.get("allowedFunctionNames") or []
    if mode == "NONE":
        return {"type": "none"}
    if mode in ("ANY", "VALIDATED") and len(allowed) == 1:
        return {"type": "tool", "name": allowed[0]}
    if mode == "ANY":
        return {"type": "any"}
    return None


def gemini_to_messages_body(request: Mapping[str, Any]) -> dict[str, Any]:
    """Translate a ``GenerateContentRequest`` into the canonical Anthropic Messages body."""
    contents = request.get("contents")
    if not isinstance(contents, list) or not contents:
        raise GoogleError("INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified")
    messages: list[dict[str, Any]] = []
    pending: dict[str, list[str]] = {}
    for content in contents:
        if not isinstance(content, Mapping):
            raise GoogleError("INVALID_ARGUMENT", "* GenerateContentRequest.contents: must be Content objects")
        role = "assistant" if content.get("role") == "model" else "user"
        blocks = _part_blocks(content.get("parts"), role, pending)
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        elif blocks:
            messages.append({"role": role, "content": blocks})
    config = request.get("generationConfig") or {}
    body: dict[str, Any] = {
        "messages": messages,
        "max_tokens": config.get("maxOutputTokens") or _DEFAULT_MAX_TOKENS,
    }
    system = request.get("systemInstruction") or request.get("system_instruction")
    if isinstance(system, str):
        body["system"] = system
    elif isinstance(system, Mapping):
        body["system"] = " ".join(b["text"] for b in _part_blocks(system.get("parts"), "user", {}) if "text" in b)
    tools = [
        {
            "name": decl.get("name"),
            "description": decl.get("description", ""),
            "input_schema": _lower_types(
                decl.get("parametersJsonSchema") or decl.get("parameters") or {"type": "object"}
            ),
        }
        for tool in request.get("tools") or []
        if isinstance(tool, Mapping)
        for decl in tool.get("functionDeclarations") or []
        if isinstance(decl, Mapping)
    ]
    if tools:
        body["tools"] = tools
    if (choice := _tool_choice(request.get("toolConfig"))) is not None:
        body["tool_choice"] = choice
    if stops := config.get("stopSequences"):
        body["stop_sequences"] = list(stops)
    return body


def _usage(reply: engine.ModelReply, *, final: bool) -> dict[str, Any]:
    output = reply.output_tokens if final else 0
    usage: dict[str, Any] = {
        "promptTokenCount": reply.input_tokens,
        "totalTokenCount": reply.input_tokens + output,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.input_tokens}],
    }
    if final:
        usage["candidatesTokenCount"] = output
    return usage


def _response(
    parts: list[dict[str, Any]], reply: engine.ModelReply, *, model: str, response_id: str, final: bool
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if final:
        candidate["finishReason"] = _FINISH_REASONS.get(reply.stop_reason, "STOP")
    return {
        "candidates": [candidate],
        "usageMetadata": _usage(reply, final=final),
        "modelVersion": model,
        "responseId": response_id,
    }


def _parts(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"text": b["text"]} if b["type"] == "text" else {"functionCall": {"name": b["name"], "args": b["input"]}}
        for b in blocks
    ]


def _stream_chunks(reply: engine.ModelReply, *, model: str, response_id: str) -> list[dict[str, Any]]:
    """The reply as Gemini streams it: text in small pieces, each function call whole, the last chunk
    carrying the finish reason and the full usage."""
    pieces: list[dict[str, Any]] = []
    for event in engine.anthropic_stream_events(reply, model=model, message_id=response_id):
        if event["type"] == "content_block_delta" and event["delta"]["type"] == "text_delta":
            pieces.append({"text": event["delta"]["text"]})
        elif event["type"] == "content_block_stop":
            block = reply.content[event["index"]]
            if block["type"] == "tool_use":
                pieces.extend(_parts([block]))
    pieces = pieces or [{"text": ""}]
    return [
        _response([piece], reply, model=model, response_id=response_id, final=index == len(pieces) - 1)
        for index, piece in enumerate(pieces)
    ]


# --------------------------------------------------------------------------------------- handlers


def _fault_error(fault: Fault) -> GoogleError:
    status = fault.error or _STATUS_BY_CODE.get(fault.status or 500, "INTERNAL")
    message = fault.message or _DEFAULT_MESSAGES.get(status, status.replace("_", " ").capitalize())
    return GoogleError(status, message, code=fault.status)


def _model_object(model: str) -> dict[str, Any]:
    return {
        "name": f"models/{model}",
        "version": "001",
        "displayName": model.replace("-", " ").title(),
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens", "streamGenerateContent"],
    }


class _GeminiApi:
    """Request handlers; one instance per mounted app so state is never global."""

    def __init__(self, state: SimState) -> None:
        self._state = state

    def _authenticate(self, request: Request) -> None:
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            raise GoogleError(
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
            )
        if key not in self._state.provider_keys(_SERVICE):
            raise GoogleError(
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    }
                ],
            )

    async def list_models(self, request: Request) -> Response:
        try:
            self._authenticate(request)
        except GoogleError as exc:
            return JSONResponse(exc.body(), status_code=exc.code)
        return JSONResponse({"models": [_model_object(m) for m in GOOGLE_MODELS]})

    async def model_call(self, request: Request) -> Response:
        model, _, action = str(request.path_params["name"]).partition(":")
        fault: Fault | None = None
        try:
            self._authenticate(request)
            if model not in GOOGLE_MODELS:
                raise GoogleError(
                    "NOT_FOUND",
                    f"models/{model} is not found for API version v1beta, or is not supported for "
                    f"{action or 'get'}. Call ListModels to see the list of available models and their "
                    "supported methods.",
                )
            if request.method == "GET" and not action:
                return JSONResponse(_model_object(model))
            if request.method != "POST" or action not in (
                "generateContent",
                "streamGenerateContent",
                "countTokens",
            ):
                raise GoogleError("NOT_FOUND", f"Method {action or request.method} not found on models/{model}")
            try:
                payload = json.loads(await request.body())
            except ValueError as exc:
                raise GoogleError("INVALID_ARGUMENT", "Invalid JSON payload received.") from exc
            if not isinstance(payload, dict):
                raise GoogleError("INVALID_ARGUMENT", "Invalid JSON payload received.")
            if action == "countTokens":
                request_body = payload.get("generateContentRequest") or payload
                counted = engine.count_input_tokens(gemini_to_messages_body(request_body))
                return JSONResponse({"totalTokens": counted})
            stream = action == "streamGenerateContent"
            try:
                reply = engine.reply_to(gemini_to_messages_body(payload), service=_SERVICE, model=model)
            except engine.InvalidRequestError as exc:
                raise GoogleError("INVALID_ARGUMENT", f"* GenerateContentRequest: {exc}") from exc
            fault = self._state.faults.take(_SERVICE, model=model, streaming=stream)
            if fault is not None and fault.error is not None and fault.after_events is None:
                raise _fault_error(fault)
        except GoogleError as exc:
            return with_transport_fault(fault, JSONResponse(exc.body(), status_code=exc.code))
        response_id = secrets.token_urlsafe(16)
        ttft, per_token = self._state.latency(_SERVICE, model)
        if stream:
            chunks = _stream_chunks(reply, model=model, response_id=response_id)
            sse = request.query_params.get("alt") == "sse"
            response: Response = StreamingResponse(
                _stream(chunks, fault, ttft, per_token, sse=sse),
                media_type="text/event-stream" if sse else "application/json",
            )
            return with_transport_fault(fault, response)
        await asyncio.sleep(ttft + per_token * reply.output_tokens)
        body = _response(_parts(reply.content), reply, model=model, response_id=response_id, final=True)
        return with_transport_fault(fault, JSONResponse(body))


async def _stream(
    chunks: list[dict[str, Any]], fault: Fault | None, ttft: float, per_token: float, *, sse: bool
) -> AsyncIterator[bytes]:
    """Send the chunks at the model's pace, as SSE or as one streamed JSON array."""

    def frame(payload: Mapping[str, Any], index: int) -> bytes:
        text = json.dumps(payload, separators=(",", ":"))
        if sse:
            return f"data: {text}\r\n\r\n".encode()
        return f"{'[' if index == 0 else ','}{text}\r\n".encode()

    await asyncio.sleep(ttft)
    for index, chunk in enumerate(chunks):
        if fault is not None and fault.after_events is not None and index >= fault.after_events:
            if await break_off_stream(fault):  # it hung until the client left
                return
            yield frame(_fault_error(fault).body(), index)
            if not sse:
                yield b"]"
            return
        text = "".join(str(part.get("text", "")) for part in chunk["candidates"][0]["content"]["parts"])
        if text and per_token:
            await asyncio.sleep(per_token * engine.count_text_tokens(text))
        yield frame(chunk, index)
    if not sse:
        yield b"]"
