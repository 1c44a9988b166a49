"""The Anthropic Messages API front end (``/v1/messages``, ``/v1/messages/count_tokens``).

The canonical format is this API, so the request body goes through as the client sent it (after the type
checks) and an answer received from an Anthropic-speaking upstream is relayed byte for byte
(``CompletedMessage.raw``, ``StreamEvent.raw``); only answers from other upstreams are encoded here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from byollm.api.errors import ApiShape, error_body
from byollm.api.frontends.base import ParsedRequest, RequestMeta, credits_trailer
from byollm.api.frontends.fields import (
    Check,
    FieldError,
    array_of,
    boolean,
    check_fields,
    fields_of,
    integer,
    invalid,
    number,
    obj,
    one_of,
    string,
)
from byollm.api.frontends.system_messages import fold_system_messages, has_system_messages
from byollm.errors import ByollmError
from byollm.gateway.executor import Served, ServedStream, StreamFailure
from byollm.policy.types import RouteRequest
from byollm.providers.base import CanonicalRequest, StreamEvent
from byollm.providers.sse import encode_sse

__all__ = ["ANTHROPIC_MESSAGES", "AnthropicMessages", "route_request"]

_TEXT_BLOCKS = array_of(obj({"type": string, "text": string}, required=("type",)))
_BLOCK_FIELDS: Mapping[str, Mapping[str, Check]] = {
    "text": {"text": string},
    "tool_use": {"id": string, "name": string, "input": obj()},
    "tool_result": {"tool_use_id": string, "is_error": boolean,
                    "content": one_of({str: None, list: array_of(obj(required=("type",)))},
                                      expected="a string or an array of content blocks")},
    "image": {"source": obj({"type": string})},
    "document": {"source": obj({"type": string})},
    "thinking": {"thinking": string, "signature": string},
}


def _block(value: Any) -> None:
    """A content block: an object with a string ``type``, and the known fields of its type checked."""
    if not isinstance(value, dict):
        raise FieldError("expected an object")
    kind = value.get("type")
    if kind == "text":  # most blocks: checked inline, the same check ``_BLOCK_FIELDS`` describes
        text = value.get("text")
        if text is not None and not isinstance(text, str):
            raise FieldError("expected a string", "text")
        return
    if not isinstance(kind, str):
        raise FieldError("expected a string" if kind is not None else "required", "type")
    fields = _BLOCK_FIELDS.get(kind)
    if fields:
        fields_of(value, fields)


_CONTENT = one_of({str: None, list: array_of(_block)}, expected="a string or an array of content blocks")


def _message(value: Any) -> None:
    if not isinstance(value, dict):
        raise FieldError("expected an object")
    if value.get("role") not in ("user", "assistant", "system"):  # system turns: frontends/system_messages.py
        raise FieldError("expected \"user\", \"assistant\" or \"system\"", "role")
    content = value.get("content")
    if content is None:
        raise FieldError("required", "content")
    try:
        _CONTENT(content)
    except FieldError as error:
        error.path.append("content")
        raise


# no field is required here: a custom tool needs a name, but server and connector tools (``mcp_toolset``)
# are told apart by ``type`` and some have no name; the upstream says which it misses
_tool = obj({"name": string, "description": string, "input_schema": obj(), "type": string})


FIELDS: Mapping[str, Check] = {
    "model": string,
    "messages": array_of(_message),
    "max_tokens": integer(minimum=1),
    "system": one_of({str: None, list: _TEXT_BLOCKS}, expected="a string or an array of text blocks"),
    "stop_sequences": array_of(string),
    "stream": boolean,
    "temperature": number(0, 1),
    "top_p": number(0, 1),
    "top_k": integer(minimum=0),
    "tools": array_of(_tool),
    "tool_choice": obj({"type": string, "name": string, "disable_parallel_tool_use": boolean}, required=("type",)),
    "metadata": obj({"user_id": string}),
    "thinking": obj({"type": string, "budget_tokens": integer(minimum=0)}, required=("type",)),
    "service_tier": string,
    "output_format": obj({"type": string, "schema": obj()}, required=("type",)),  # the beta's spelling
    "output_config": obj({"format": obj({"type": string, "schema": obj()}, required=("type",)), "effort": string}),
    "mcp_servers": array_of(obj()),
    "context_management": obj(),
}


def check_messages_body(body: Mapping[str, Any], *, need_max_tokens: bool = True) -> None:
    """Every known field's type, and the fields this API requires."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise invalid("model", "a model name (or \"auto\") is required")
    if body.get("messages") is None:
        raise invalid("messages", "a list of messages is required")
    if need_max_tokens and body.get("max_tokens") is None:
        raise invalid("max_tokens", "a positive integer is required")
    check_fields(body, FIELDS)


def route_request(body: Mapping[str, Any], size: int, stream: bool) -> RouteRequest:
    """What the planner needs of a canonical body (``size``: the client's body length, for the estimate)."""
    max_tokens = body.get("max_tokens")
    return RouteRequest(
        model=str(body["model"]), stream=stream, estimated_input_tokens=size // 4,
        max_output_tokens=max_tokens if isinstance(max_tokens, int) else 0, uses_tools=bool(body.get("tools")),
    )


def canonical_request(body: Mapping[str, Any], meta: RequestMeta, *, stream: bool, origin_api: str = "anthropic",
                      raw_body: Mapping[str, Any] | None = None, lost: tuple[tuple[str, str], ...] = ()
                      ) -> CanonicalRequest:
    betas = tuple(b.strip() for b in meta.headers.get("anthropic-beta", "").split(",") if b.strip())
    if has_system_messages(body):
        body = fold_system_messages(body)
    return CanonicalRequest(
        body=body, stream=stream, anthropic_version=meta.headers.get("anthropic-version", "2023-06-01"),
        anthropic_beta=betas, request_id=meta.request_id, team_uid=meta.team_uid, origin_api=origin_api,
        raw_body=raw_body, lost=lost,
    )


def _event_bytes(event: StreamEvent) -> bytes:
    return event.raw if event.raw is not None else orjson.dumps(event.data)


class AnthropicMessages:
    """``ClientApi`` for Anthropic Messages."""

    api = "anthropic"
    error_shape = ApiShape.ANTHROPIC

    def parse(self, body: Mapping[str, Any], size: int, meta: RequestMeta) -> ParsedRequest:
        check_messages_body(body)
        stream = bool(body.get("stream"))
        return ParsedRequest(canonical=canonical_request(body, meta, stream=stream),
                             route=route_request(body, size, stream), model=str(body["model"]))

    def parse_count_tokens(self, body: Mapping[str, Any], size: int, meta: RequestMeta) -> ParsedRequest:
        """A token-counting body: ``max_tokens`` is optional (and never sent upstream as the caller's)."""
        check_messages_body(body, need_max_tokens=False)
        body = {**body, "max_tokens": body.get("max_tokens") or 1}
        return ParsedRequest(canonical=canonical_request(body, meta, stream=False),
                             route=route_request(body, size, False), model=str(body["model"]))

    def render(self, served: Served, parsed: ParsedRequest, request_id: str) -> bytes:
        message = served.value
        return message.raw if message.raw is not None else orjson.dumps(message.message)

    async def render_stream(self, opened: ServedStream, parsed: ParsedRequest, request_id: str
                            ) -> AsyncIterator[bytes]:
        preamble: list[bytes] = []
        async for event in opened.events:
            if isinstance(event, StreamFailure):
                encoded = self.stream_error(event.error, request_id)
            else:
                encoded = encode_sse(event.type, _event_bytes(event))
            if len(preamble) < opened.preamble:  # the events read before committing go out in one write
                preamble.append(encoded)
                if len(preamble) == opened.preamble:
                    yield b"".join(preamble)
                continue
            yield encoded
        if 0 < len(preamble) < opened.preamble:
            yield b"".join(preamble)
        yield credits_trailer(opened)

    def stream_error(self, error: ByollmError, request_id: str) -> bytes:
        return encode_sse("error", orjson.dumps(error_body(error, ApiShape.ANTHROPIC, request_id)))

    def render_error(self, error: ByollmError, request_id: str) -> bytes:
        return orjson.dumps(error_body(error, ApiShape.ANTHROPIC, request_id))


ANTHROPIC_MESSAGES = AnthropicMessages()
