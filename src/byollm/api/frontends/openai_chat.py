"""The OpenAI Chat Completions API front end (``/v1/chat/completions``).

A request is checked field by field, then read into the canonical form (``providers.translate_openai``)
for routing, for the request log and for any non-OpenAI route; the body as sent is kept, so an OpenAI route
forwards it unchanged but for the model id (``CanonicalRequest.raw_body``) and its answer comes back as
OpenAI sent it (``CompletedMessage.wire``, ``StreamEvent.wire``). Fields that only OpenAI can honour
(``n``, ``logprobs``, penalties, ...) are listed in ``CanonicalRequest.lost``: other routes are skipped
naming them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from byollm.api.errors import ApiShape, error_body
from byollm.api.frontends.anthropic_messages import canonical_request, route_request
from byollm.api.frontends.base import ParsedRequest, RequestMeta, credits_trailer
from byollm.api.frontends.fields import (
    Check,
    array_of,
    boolean,
    check_fields,
    integer,
    invalid,
    number,
    obj,
    one_of,
    string,
)
from byollm.errors import ByollmError
from byollm.gateway.executor import Served, ServedStream, StreamFailure
from byollm.providers.sse import encode_sse
from byollm.providers.translate_openai import (
    CanonicalStreamToOpenAI,
    canonical_to_openai_response,
    openai_only_fields,
    openai_request_to_canonical,
)

__all__ = ["OPENAI_CHAT", "OpenAIChat"]

_DONE = encode_sse(None, b"[DONE]")
_CONTENT = one_of({str: None, list: array_of(obj({"type": string}, required=("type",)))},
                  expected="a string or an array of content parts")
_MESSAGE = obj({
    "role": string,
    "content": _CONTENT,
    "name": string,
    "tool_call_id": string,
    "refusal": string,
    "tool_calls": array_of(obj({
        "id": string, "type": string,
        "function": obj({"name": string, "arguments": string}, required=("name",)),
    }, required=("function",))),
}, required=("role",))

FIELDS: Mapping[str, Check] = {
    "model": string,
    "messages": array_of(_MESSAGE),
    "max_tokens": integer(minimum=1),
    "max_completion_tokens": integer(minimum=1),
    "temperature": number(0, 2),
    "top_p": number(0, 1),
    "n": integer(minimum=1, maximum=128),
    "stream": boolean,
    "stream_options": obj({"include_usage": boolean, "include_obfuscation": boolean}),
    "stop": one_of({str: None, list: array_of(string)}, expected="a string or an array of strings"),
    "tools": array_of(obj({"type": string, "function": obj({
        "name": string, "description": string, "parameters": obj(), "strict": boolean}, required=("name",))})),
    "tool_choice": one_of({str: None, dict: obj({"type": string, "function": obj({"name": string})})},
                          expected="a string or an object"),
    "parallel_tool_calls": boolean,
    "response_format": obj({"type": string, "json_schema": obj({
        "name": string, "description": string, "schema": obj(), "strict": boolean}, required=("name",))},
        required=("type",)),
    "presence_penalty": number(-2, 2),
    "frequency_penalty": number(-2, 2),
    "logprobs": boolean,
    "top_logprobs": integer(minimum=0, maximum=20),
    "logit_bias": obj(),
    "seed": integer(),
    "user": string,
    "metadata": obj(),
    "store": boolean,
    "reasoning_effort": string,
    "modalities": array_of(string),
    "service_tier": string,
    "prediction": obj(),
    "audio": obj(),
    "functions": array_of(obj()),
    "function_call": one_of({str: None, dict: None}, expected="a string or an object"),
    "web_search_options": obj(),
    "safety_identifier": string,
    "prompt_cache_key": string,
    "verbosity": string,
}


def check_chat_body(body: Mapping[str, Any]) -> None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise invalid("model", "a model name (or \"auto\") is required")
    if body.get("messages") is None:
        raise invalid("messages", "a list of messages is required")
    check_fields(body, FIELDS)


class OpenAIChat:
    """``ClientApi`` for OpenAI Chat Completions."""

    api = "openai"
    error_shape = ApiShape.OPENAI

    def parse(self, body: Mapping[str, Any], size: int, meta: RequestMeta) -> ParsedRequest:
        check_chat_body(body)
        canonical = openai_request_to_canonical(body)
        stream = bool(body.get("stream"))
        options = body.get("stream_options")
        include_usage = isinstance(options, Mapping) and bool(options.get("include_usage"))
        return ParsedRequest(
            canonical=canonical_request(canonical, meta, stream=stream, origin_api=self.api, raw_body=body,
                                        lost=openai_only_fields(body)),
            route=route_request(canonical, size, stream), model=str(body["model"]),
            options={"include_usage": include_usage},
        )

    def render(self, served: Served, parsed: ParsedRequest, request_id: str) -> bytes:
        message = served.value
        if message.wire is not None:
            return bytes(message.wire)
        return orjson.dumps(canonical_to_openai_response(message.message, parsed.model, request_id))

    async def render_stream(self, opened: ServedStream, parsed: ParsedRequest, request_id: str
                            ) -> AsyncIterator[bytes]:
        translator = CanonicalStreamToOpenAI(parsed.model, request_id,
                                             include_usage=bool(parsed.options.get("include_usage")))
        async for event in opened.events:
            if isinstance(event, StreamFailure):
                yield self.stream_error(event.error, request_id)
                continue
            if event.wire is not None:  # an OpenAI route: its chunks as it sent them
                if event.wire:
                    yield event.wire
                continue
            for chunk in translator.feed(event.data):
                yield encode_sse(None, orjson.dumps(chunk))
        yield credits_trailer(opened)
        yield _DONE

    def stream_error(self, error: ByollmError, request_id: str) -> bytes:
        return encode_sse(None, orjson.dumps(error_body(error, ApiShape.OPENAI, request_id)))

    def render_error(self, error: ByollmError, request_id: str) -> bytes:
        return orjson.dumps(error_body(error, ApiShape.OPENAI, request_id))


OPENAI_CHAT = OpenAIChat()
