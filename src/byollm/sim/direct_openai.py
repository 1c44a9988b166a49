"""The simulated OpenAI Chat Completions API (``/v1/chat/completions`` and ``/v1/models``), and the route of
the Responses API (``/v1/responses``, read and rendered by ``direct_openai_responses``).

Mounted under ``/openai`` so the official SDK works with ``base_url=<sim>/openai/v1``. A request is
translated into the canonical Anthropic Messages body, answered by :mod:`byollm.sim.engine` (tagged
``[openai:<model>]``), and the reply translated back: ``chat.completion`` objects, or
``chat.completion.chunk`` SSE ``data:`` lines ending with ``data: [DONE]`` (plus a usage chunk when
``stream_options.include_usage`` is set). Bearer keys are checked against the world; errors use
OpenAI's ``{"error": {"message", "type", "param", "code"}}``; a mid-stream fault sends the
``data: {"error": ...}`` line the SDK raises ``APIError`` for.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from byollm.sim import direct_openai_responses as responses_api
from byollm.sim import engine
from byollm.sim.faults import Fault, break_off_stream, with_transport_fault

if TYPE_CHECKING:
    from byollm.sim.state import SimState

__all__ = ["OPENAI_MODELS", "OpenAIError", "chat_to_messages_body", "openai_routes"]

OPENAI_MODELS: tuple[str, ...] = ("gpt-5", "gpt-5-mini")

_SERVICE = "openai"
_MODEL_CREATED = 1754425777
_DEFAULT_MAX_TOKENS = 4096
_FINISH_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}
# error code (what fault rules name) -> (status, type, default message)
_ERRORS: Mapping[str, tuple[int, str, str]] = {
    "invalid_request_error": (400, "invalid_request_error", "Invalid request."),
    "invalid_api_key": (401, "invalid_request_error", "Incorrect API key provided."),
    "model_not_found": (404, "invalid_request_error", "The model does not exist."),
    "rate_limit_exceeded": (429, "requests", "Rate limit reached for requests. Please try again later."),
    "insufficient_quota": (
        429,
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    "server_error": (
        500,
        "server_error",
        "The server had an error while processing your request. Sorry about that!",
    ),
    "service_unavailable": (503, "server_error", "The server is overloaded or not ready yet."),
}
_CODE_BY_STATUS: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "invalid_api_key",
    404: "model_not_found",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "service_unavailable",
}


class OpenAIError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(
        self,
        code: str | None,
        message: str,
        *,
        status: int = 400,
        kind: str = "invalid_request_error",
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.kind, self.param = code, message, status, kind, param

    @classmethod
    def named(cls, code: str, message: str | None = None, *, status: int | None = None) -> OpenAIError:
        known_status, kind, default = _ERRORS.get(code, (status or 500, "server_error", code))
        public_code = None if code in ("invalid_request_error", "server_error") else code
        return cls(public_code, message or default, status=status or known_status, kind=kind)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def openai_routes(state: SimState) -> list[BaseRoute]:
    """Routes to mount under ``/openai``; they share ``state`` and nothing else."""
    api = _OpenAIApi(state)
    return [
        Route("/v1/chat/completions", api.chat_completions, methods=["POST"]),
        Route("/v1/responses", api.responses, methods=["POST"]),
        Route("/v1/models", api.list_models, methods=["GET"]),
        Route("/v1/models/{model}", api.get_model, methods=["GET"]),
    ]


# ------------------------------------------------------------------------------------ translation


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p)
    return ""


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Add blocks to the conversation, merging consecutive turns of one role as Anthropic requires."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice in (None, "auto"):
        return None
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        return {"type": "tool", "name": choice["function"].get("name")}
    raise OpenAIError(None, "Invalid value for 'tool_choice'.", param="tool_choice")


def chat_to_messages_body(request: Mapping[str, Any]) -> dict[str, Any]:
    """Translate a Chat Completions request into the canonical Anthropic Messages body."""
    raw_messages = request.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise OpenAIError(None, "'messages' must be a non-empty array.", param="messages")
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for index, message in enumerate(raw_messages):
        if not isinstance(message, Mapping):
            raise OpenAIError(None, f"Invalid type for 'messages[{index}]'.", param=f"messages[{index}]")
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text_of(message.get("content")))
        elif role == "user":
            _append(messages, "user", [{"type": "text", "text": _text_of(message.get("content"))}])
        elif role == "assistant":
            blocks: list[dict[str, Any]] = []
            if text := _text_of(message.get("content")):
                blocks.append({"type": "text", "text": text})
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except ValueError as exc:
                    raise OpenAIError(None, "Tool call arguments must be JSON.", param="messages") from exc
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "input": arguments,
                    }
                )
            _append(messages, "assistant", blocks)
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id"),
                "content": _text_of(message.get("content")),
            }
            _append(messages, "user", [result])
        else:
            raise OpenAIError(None, f"Invalid value for 'messages[{index}].role'.", param=f"messages[{index}]")
    body: dict[str, Any] = {
        "messages": messages,
        "max_tokens": request.get("max_completion_tokens") or request.get("max_tokens") or _DEFAULT_MAX_TOKENS,
    }
    if system:
        body["system"] = "\n".join(system)
    tools = [
        {
            "name": tool["function"].get("name"),
            "description": tool["function"].get("description", ""),
            "input_schema": tool["function"].get("parameters") or {"type": "object", "properties": {}},
        }
        for tool in request.get("tools") or []
        if isinstance(tool, Mapping) and isinstance(tool.get("function"), Mapping)
    ]
    if tools:
        body["tools"] = tools
    if (choice := _tool_choice(request.get("tool_choice"))) is not None:
        body["tool_choice"] = choice
    stop = request.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = request.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") in ("json_object", "json_schema"):
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        body["output_config"] = {"format": {"type": "json_schema",
                                            "schema": schema if isinstance(schema, Mapping) else {"type": "object"}}}
    return body


def _number_in(payload: Mapping[str, Any], name: str, low: float, high: float) -> None:
    value = payload.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OpenAIError(None, f"Invalid type for '{name}': expected a decimal, but got {type(value).__name__}.",
                          param=name)
    if not low <= value <= high:
        raise OpenAIError(None, f"Invalid '{name}': decimal above maximum value. Expected a value <= {high},"
                          f" but got {value} instead." if value > high else
                          f"Invalid '{name}': decimal below minimum value. Expected a value >= {low},"
                          f" but got {value} instead.", param=name)


def _sampling_options(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Check the options OpenAI documents for choices, log probabilities, penalties and the response
    format (as strictly as OpenAI does), and return what the answer must echo."""
    for name in ("presence_penalty", "frequency_penalty"):
        _number_in(payload, name, -2.0, 2.0)
    n = payload.get("n", 1)
    if n is None:
        n = 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 128:
        raise OpenAIError(None, "Invalid 'n': expected an integer between 1 and 128.", param="n")
    logprobs = payload.get("logprobs") is True
    top = payload.get("top_logprobs")
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 20:
            raise OpenAIError(None, "Invalid 'top_logprobs': expected an integer between 0 and 20.",
                              param="top_logprobs")
        if not logprobs:
            raise OpenAIError(None, "Invalid value for 'top_logprobs': 'logprobs' must be set to true when"
                              " 'top_logprobs' is used.", param="top_logprobs")
    response_format = payload.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, Mapping) else None
        if kind not in ("text", "json_object", "json_schema"):
            raise OpenAIError(None, "Invalid value for 'response_format.type'.", param="response_format.type")
        if kind == "json_schema":
            spec = response_format.get("json_schema")
            if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
                raise OpenAIError(None, "Missing required parameter: 'response_format.json_schema.name'.",
                                  param="response_format.json_schema.name")
        if kind == "json_object" and "json" not in json.dumps(payload.get("messages")).lower():
            raise OpenAIError(None, "'messages' must contain the word 'json' in some form, to use 'response_format'"
                              " of type 'json_object'.", param="messages")
    return {"n": n, "logprobs": logprobs, "top_logprobs": top or 0}


def _logprobs(text: str, top: int) -> dict[str, Any]:
    tokens = [match.group(0) for match in re.finditer(r"\s*\S+", text)]
    return {"content": [{"token": token, "logprob": -0.01, "bytes": list(token.encode()),
                         "top_logprobs": [{"token": token, "logprob": -0.01, "bytes": list(token.encode())}][:top]}
                        for token in tokens], "refusal": None}


def _apply_options(completion: dict[str, Any], reply: engine.ModelReply, options: Mapping[str, Any]) -> None:
    """``n`` identical choices (the simulated model is deterministic) and, when asked, their log
    probabilities; usage counts every choice's tokens, as OpenAI bills them."""
    first = completion["choices"][0]
    if options["logprobs"]:
        first["logprobs"] = _logprobs(str(first["message"].get("content") or ""), options["top_logprobs"])
    n = options["n"]
    if n > 1:
        completion["choices"] = [{**first, "index": index} for index in range(n)]
        usage = completion["usage"]
        usage["completion_tokens"] *= n
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]


def _call_id(tool_use_id: str) -> str:
    return "call_" + tool_use_id.removeprefix("toolu_01")


def _completion(reply: engine.ModelReply, *, model: str, completion_id: str, created: int) -> dict[str, Any]:
    text = "".join(str(b["text"]) for b in reply.content if b["type"] == "text")
    calls = [
        {
            "id": _call_id(str(b["id"])),
            "type": "function",
            "function": {"name": b["name"], "arguments": json.dumps(b["input"])},
        }
        for b in reply.content
        if b["type"] == "tool_use"
    ]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text or None,
        "refusal": None,
        "annotations": [],
    }
    if calls:
        message["tool_calls"] = calls
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _FINISH_REASONS.get(reply.stop_reason, "stop"),
            }
        ],
        "usage": _usage(reply),
        "service_tier": "default",
        "system_fingerprint": None,
    }


def _usage(reply: engine.ModelReply) -> dict[str, Any]:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


class _ChunkTranslator:
    """Turns the canonical streaming events of one reply into ``chat.completion.chunk`` objects."""

    def __init__(self, reply: engine.ModelReply, *, model: str, completion_id: str, created: int, usage: bool) -> None:
        self._reply, self._model, self._id, self._created, self._usage = (
            reply,
            model,
            completion_id,
            created,
            usage,
        )
        self._tool_index: dict[int, int] = {}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "service_tier": "default",
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self._usage:
            chunk["usage"] = None
        return chunk

    def translate(self, event: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        kind = event["type"]
        if kind == "message_start":
            yield self._chunk({"role": "assistant", "content": "", "refusal": None})
        elif kind == "content_block_start" and event["content_block"]["type"] == "tool_use":
            block = event["content_block"]
            index = self._tool_index.setdefault(event["index"], len(self._tool_index))
            call = {"index": index, "id": _call_id(str(block["id"])), "type": "function"}
            yield self._chunk({"tool_calls": [{**call, "function": {"name": block["name"], "arguments": ""}}]})
        elif kind == "content_block_delta":
            delta = event["delta"]
            if delta["type"] == "text_delta" and delta["text"]:
                yield self._chunk({"content": delta["text"]})
            elif delta["type"] == "input_json_delta" and delta["partial_json"]:
                index = self._tool_index[event["index"]]
                yield self._chunk({"tool_calls": [{"index": index, "function": {"arguments": delta["partial_json"]}}]})
        elif kind == "message_delta":
            yield self._chunk({}, _FINISH_REASONS.get(str(event["delta"]["stop_reason"]), "stop"))
        elif kind == "message_stop" and self._usage:
            final = self._chunk({})
            final.update(choices=[], usage=_usage(self._reply))
            yield final


# --------------------------------------------------------------------------------------- handlers


def _data(payload: Mapping[str, Any] | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


class _OpenAIApi:
    """Request handlers; one instance per mounted app so state is never global."""

    def __init__(self, state: SimState) -> None:
        self._state = state

    def _error(self, error: OpenAIError, request_id: str) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status, headers={"x-request-id": request_id})

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise OpenAIError(
                None,
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                status=401,
            )
        if key.strip() not in self._state.provider_keys(_SERVICE):
            raise OpenAIError.named("invalid_api_key", "Incorrect API key provided.")

    def _model(self, model: object) -> str:
        if not isinstance(model, str) or not model:
            raise OpenAIError(None, "you must provide a model parameter", param="model")
        if model not in OPENAI_MODELS:
            raise OpenAIError.named(
                "model_not_found", f"The model `{model}` does not exist or you do not have access to it."
            )
        return model

    async def list_models(self, request: Request) -> Response:
        request_id = "req_" + secrets.token_hex(16)
        try:
            self._authenticate(request)
        except OpenAIError as exc:
            return self._error(exc, request_id)
        data = [_model_object(model) for model in OPENAI_MODELS]
        return JSONResponse({"object": "list", "data": data}, headers={"x-request-id": request_id})

    async def get_model(self, request: Request) -> Response:
        request_id = "req_" + secrets.token_hex(16)
        try:
            self._authenticate(request)
            model = self._model(request.path_params["model"])
        except OpenAIError as exc:
            return self._error(exc, request_id)
        return JSONResponse(_model_object(model), headers={"x-request-id": request_id})

    async def chat_completions(self, request: Request) -> Response:
        request_id = "req_" + secrets.token_hex(16)
        fault: Fault | None = None
        try:
            self._authenticate(request)
            try:
                payload = json.loads(await request.body())
            except ValueError as exc:
                raise OpenAIError(None, "We could not parse the JSON body of your request.") from exc
            if not isinstance(payload, dict):
                raise OpenAIError(None, "The request body must be a JSON object.")
            model = self._model(payload.get("model"))
            stream = payload.get("stream") is True
            options = _sampling_options(payload)
            try:
                reply = engine.reply_to(chat_to_messages_body(payload), service=_SERVICE, model=model)
            except engine.PromptTooLongError as exc:
                raise OpenAIError(
                    "context_length_exceeded",
                    f"This model's maximum context length is {engine.CONTEXT_WINDOW_TOKENS} tokens. However, your"
                    f" messages resulted in {exc.tokens} tokens. Please reduce the length of the messages.",
                    param="messages") from exc
            except engine.InvalidRequestError as exc:
                raise OpenAIError(None, str(exc)) from exc
            fault = self._state.faults.take(_SERVICE, model=model, streaming=stream)
            if fault is not None and fault.error is not None and fault.after_events is None:
                raise OpenAIError.named(fault.error, fault.message, status=fault.status)
        except OpenAIError as exc:
            return with_transport_fault(fault, self._error(exc, request_id))
        completion_id = "chatcmpl-" + secrets.token_urlsafe(21).replace("-", "x").replace("_", "y")
        created = int(time.time())
        ttft, per_token = self._state.latency(_SERVICE, model)
        headers = {"x-request-id": request_id}
        if stream:
            include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
            translator = _ChunkTranslator(
                reply, model=model, completion_id=completion_id, created=created, usage=include_usage
            )
            events = engine.anthropic_stream_events(reply, model=model, message_id=completion_id)
            response: Response = StreamingResponse(
                _stream(translator, events, fault, ttft, per_token),
                media_type="text/event-stream; charset=utf-8",
                headers=headers,
            )
            return with_transport_fault(fault, response)
        await asyncio.sleep(ttft + per_token * reply.output_tokens)
        body = _completion(reply, model=model, completion_id=completion_id, created=created)
        _apply_options(body, reply, options)
        return with_transport_fault(fault, JSONResponse(body, headers=headers))


    async def responses(self, request: Request) -> Response:
        """The Responses API (``direct_openai_responses`` reads and renders it)."""
        request_id = "req_" + secrets.token_hex(16)
        fault: Fault | None = None
        try:
            self._authenticate(request)
            try:
                payload = json.loads(await request.body())
            except ValueError as exc:
                raise OpenAIError(None, "We could not parse the JSON body of your request.") from exc
            if not isinstance(payload, dict):
                raise OpenAIError(None, "The request body must be a JSON object.")
            model = self._model(payload.get("model"))
            stream = payload.get("stream") is True
            try:
                body, custom = responses_api.responses_to_messages_body(payload)
                reply = engine.reply_to(body, service=_SERVICE, model=model)
            except responses_api.ResponsesInputError as exc:
                raise OpenAIError(None, str(exc), param=exc.param) from exc
            except engine.InvalidRequestError as exc:
                raise OpenAIError(None, str(exc)) from exc
            fault = self._state.faults.take(_SERVICE, model=model, streaming=stream)
            if fault is not None and fault.error is not None and fault.after_events is None:
                raise OpenAIError.named(fault.error, fault.message, status=fault.status)
        except OpenAIError as exc:
            return with_transport_fault(fault, self._error(exc, request_id))
        response_id, created = responses_api.new_response_id(), responses_api.now()
        ttft, per_token = self._state.latency(_SERVICE, model)
        headers = {"x-request-id": request_id}
        if stream:
            events = responses_api.response_events(payload, reply, custom, model=model, response_id=response_id,
                                                   created=created)
            response: Response = StreamingResponse(
                _response_stream(responses_api.paced(events, ttft, per_token), fault),
                media_type="text/event-stream; charset=utf-8", headers=headers,
            )
            return with_transport_fault(fault, response)
        await asyncio.sleep(ttft + per_token * reply.output_tokens)
        body = responses_api.render_response(payload, reply, model=model, response_id=response_id, created=created,
                                             custom=custom)
        return with_transport_fault(fault, JSONResponse(body, headers=headers))


async def _response_stream(events: AsyncIterator[dict[str, Any]], fault: Fault | None) -> AsyncIterator[bytes]:
    """Typed SSE events (``event: <type>``); a mid-stream fault ends with OpenAI's ``error`` event."""
    sent = 0
    async for event in events:
        if fault is not None and fault.after_events is not None and sent >= fault.after_events:
            if not await break_off_stream(fault):
                code = fault.error or _CODE_BY_STATUS.get(fault.status or 500, "server_error")
                error = OpenAIError.named(code, fault.message, status=fault.status)
                payload = {"type": "error", "code": error.code or code, "message": error.message, "param": None,
                           "sequence_number": event["sequence_number"]}
                yield f"event: error\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()
            return
        yield f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()
        sent += 1


def _model_object(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": _MODEL_CREATED, "owned_by": "system"}


async def _stream(
    translator: _ChunkTranslator,
    events: list[dict[str, Any]],
    fault: Fault | None,
    ttft: float,
    per_token: float,
) -> AsyncIterator[bytes]:
    """Send the chunks at the model's pace; break off after K chunks when a fault says so."""
    await asyncio.sleep(ttft)
    sent = 0
    for event in events:
        for chunk in translator.translate(event):
            if fault is not None and fault.after_events is not None and sent >= fault.after_events:
                if not await break_off_stream(fault):  # then end with an error line
                    code = fault.error or _CODE_BY_STATUS.get(fault.status or 500, "server_error")
                    yield _data(OpenAIError.named(code, fault.message, status=fault.status).body())
                return
            delta = chunk["choices"][0]["delta"] if chunk["choices"] else {}
            text = str(delta.get("content") or "")
            if text and per_token:
                await asyncio.sleep(per_token * engine.count_text_tokens(text))
            yield _data(chunk)
            sent += 1
    yield _data("[DONE]")
