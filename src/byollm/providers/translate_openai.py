"""Anthropic Messages (canonical) <-> OpenAI Chat Completions, both directions, tools included.

Two pairs live here because they are the same mapping read both ways:

- provider direction: a canonical request served by an OpenAI model (:func:`canonical_to_openai_request`,
  :func:`openai_response_to_canonical`, :class:`OpenAIStreamToCanonical`);
- client direction: byollm's own ``/v1/chat/completions`` receives an OpenAI request and serves it through
  any route (:func:`openai_request_to_canonical`, :func:`canonical_to_openai_response`,
  :class:`CanonicalStreamToOpenAI`).

Everything is a pure function of its input (no I/O); a stream translator is created per stream and holds
only that stream's state. What cannot be said in the other API is refused with an ``invalid_request``
error naming the field rather than silently dropped, except where dropping changes nothing the caller can
observe (documented per field).

Mapping decisions worth knowing:

- ``tool_result`` blocks become ``role: "tool"`` messages placed before the rest of that user turn (OpenAI
  wants them right after the assistant's ``tool_calls``); ``is_error`` results are prefixed ``"Error: "``.
- Anthropic ``thinking`` blocks are dropped when sent to OpenAI (it cannot take them back); ``top_k`` and
  ``metadata`` are not sent.
- Cached prompt tokens: OpenAI's ``prompt_tokens`` includes ``cached_tokens``; Anthropic's
  ``input_tokens`` excludes cache reads. Both directions convert, so credits are priced the same way.
- Client direction: ``max_tokens`` defaults to 4096 when the client sends neither ``max_tokens`` nor
  ``max_completion_tokens`` (Anthropic requires it, OpenAI does not); ``temperature`` above 1 is clamped
  to 1 (OpenAI's range is 0-2, Anthropic's 0-1); ``response_format`` ``json_schema`` becomes Anthropic's
  structured output (``output_config.format``) with the same schema, and ``json_object`` the same with an
  object schema. ``n > 1``, ``logprobs``, ``logit_bias``, non-zero penalties, other response formats,
  audio and legacy ``functions`` have no Anthropic equivalent: :func:`openai_only_fields` names them, and
  only an OpenAI route (which gets the body as sent) serves them.
- Provider direction: ``output_config.format`` (and the beta's ``output_format``) becomes
  ``response_format`` ``json_schema``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from byollm.providers.canonical import content_blocks, invalid, number_field, unsupported

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "CanonicalStreamToOpenAI",
    "OpenAIStreamToCanonical",
    "canonical_to_openai_request",
    "canonical_to_openai_response",
    "openai_only_fields",
    "openai_request_to_canonical",
    "openai_response_to_canonical",
]

DEFAULT_MAX_TOKENS = 4096

_STOP_TO_FINISH: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_FINISH_TO_STOP: Mapping[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    return "\n\n".join(str(b.get("text", "")) for b in content_blocks(system) if b.get("type") == "text")


def _dumps(value: Any) -> str:
    """Compact JSON; the stdlib takes over for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ============================================================================ provider direction


def _image_part(block: Mapping[str, Any], field: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, Mapping):
        raise unsupported(field, "an image needs a source")
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = str(source.get("url", ""))
    else:
        raise unsupported(field, f"image source type {source.get('type')!r} cannot be sent to an OpenAI model")
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(block: Mapping[str, Any], field: str) -> dict[str, Any]:
    source = block.get("source")
    if isinstance(source, Mapping) and source.get("type") == "text":
        return {"type": "text", "text": str(source.get("data", ""))}
    if isinstance(source, Mapping) and source.get("type") == "base64":
        data = f"data:{source.get('media_type', 'application/pdf')};base64,{source.get('data', '')}"
        return {"type": "file", "file": {"file_data": data, "filename": str(block.get("title") or "document.pdf")}}
    raise unsupported(field, "this document source cannot be sent to an OpenAI model")


def _user_part(block: Mapping[str, Any], field: str) -> dict[str, Any] | None:
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": str(block.get("text", ""))}
    if kind == "image":
        return _image_part(block, field)
    if kind == "document":
        return _document_part(block, field)
    if kind in ("thinking", "redacted_thinking"):
        return None
    raise unsupported(field, f"content block type {kind!r} cannot be sent to an OpenAI model")


def _tool_message(block: Mapping[str, Any], field: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A ``tool_result`` block as a tool message, plus image parts OpenAI only takes in a user message."""
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    for index, inner in enumerate(content_blocks(block.get("content"))):
        if inner.get("type") == "text":
            texts.append(str(inner.get("text", "")))
        elif inner.get("type") == "image":
            images.append(_image_part(inner, f"{field}.content.{index}"))
        else:
            raise unsupported(f"{field}.content.{index}", "a tool result may hold text and images only")
    text = "\n".join(texts)
    if block.get("is_error"):
        text = f"Error: {text}"
    message = {"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")), "content": text}
    return message, images


def _assistant_message(blocks: list[Mapping[str, Any]], field: str) -> dict[str, Any] | None:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            calls.append({
                "id": str(block.get("id", "")),
                "type": "function",
                "function": {"name": str(block.get("name", "")), "arguments": _dumps(block.get("input") or {})},
            })
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise unsupported(f"{field}.{index}", f"content block type {kind!r} cannot be sent to an OpenAI model")
    if not texts and not calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _openai_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = _system_text(body.get("system"))
    if system:
        out.append({"role": "system", "content": system})
    for m_index, message in enumerate(body.get("messages") or ()):
        field = f"messages.{m_index}.content"
        role = message.get("role")
        content = message.get("content")
        if role == "assistant":
            translated = _assistant_message(content_blocks(content), field)
            if translated is not None:
                out.append(translated)
            continue
        if isinstance(content, str):
            out.append({"role": "user", "content": content})
            continue
        parts: list[dict[str, Any]] = []
        for b_index, block in enumerate(content_blocks(content)):
            if block.get("type") == "tool_result":
                tool, images = _tool_message(block, f"{field}.{b_index}")
                out.append(tool)
                parts.extend(images)
            elif (part := _user_part(block, f"{field}.{b_index}")) is not None:
                parts.append(part)
        if parts:
            if all(p["type"] == "text" for p in parts):
                out.append({"role": "user", "content": "\n".join(p["text"] for p in parts)})
            else:
                out.append({"role": "user", "content": parts})
    return out


def _openai_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for index, tool in enumerate(tools):
        if tool.get("type") not in (None, "custom"):
            raise unsupported(f"tools.{index}", f"server tool {tool.get('type')!r} cannot be used by an OpenAI model")
        function: dict[str, Any] = {
            "name": str(tool.get("name", "")),
            "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
        }
        if tool.get("description"):
            function["description"] = str(tool["description"])
        out.append({"type": "function", "function": function})
    return out


def _openai_tool_choice(choice: Mapping[str, Any]) -> Any:
    kind = choice.get("type")
    if kind == "any":
        return "required"
    if kind == "tool":
        return {"type": "function", "function": {"name": str(choice.get("name", ""))}}
    if kind == "none":
        return "none"
    return "auto"


def canonical_to_openai_request(body: Mapping[str, Any], model: str, *, stream: bool = False) -> dict[str, Any]:
    """A canonical (Anthropic Messages) body as a Chat Completions request for ``model``.

    With ``stream`` the request asks for ``stream_options.include_usage`` so the last chunk carries usage.
    """
    request: dict[str, Any] = {"model": model, "messages": _openai_messages(body)}
    if body.get("max_tokens") is not None:
        request["max_completion_tokens"] = body["max_tokens"]
    for source, target in (("temperature", "temperature"), ("top_p", "top_p")):
        if body.get(source) is not None:
            request[target] = body[source]
    stops = body.get("stop_sequences")
    if stops:
        request["stop"] = list(stops)
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if tools:
        request["tools"] = _openai_tools(tools)
        if isinstance(choice, Mapping):
            request["tool_choice"] = _openai_tool_choice(choice)
            if choice.get("disable_parallel_tool_use") and choice.get("type") != "none":
                request["parallel_tool_calls"] = False
    output = body.get("output_config")
    output_format = output.get("format") if isinstance(output, Mapping) else body.get("output_format")
    if isinstance(output_format, Mapping) and output_format.get("type") == "json_schema":
        request["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "output", "schema": output_format.get("schema") or {"type": "object"}}}
    if stream:
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}
    return request


def _canonical_usage(usage: Any) -> dict[str, int]:
    usage = usage if isinstance(usage, Mapping) else {}
    details = usage.get("prompt_tokens_details")
    cached = int((details or {}).get("cached_tokens") or 0) if isinstance(details, Mapping) else 0
    prompt = int(usage.get("prompt_tokens") or 0)
    return {
        "input_tokens": max(prompt - cached, 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def _parse_arguments(arguments: Any) -> dict[str, Any]:
    """Tool arguments as an object. A model that produced invalid JSON keeps its text under
    ``_unparsed_arguments`` rather than losing it (Anthropic's ``input`` must be an object)."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    text = str(arguments or "")
    if not text.strip():
        return {}
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"_unparsed_arguments": text}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def _message_id(upstream_id: Any) -> str:
    return f"msg_{upstream_id}" if isinstance(upstream_id, str) and upstream_id else "msg_" + secrets.token_hex(12)


def openai_response_to_canonical(resp: Mapping[str, Any], model: str) -> dict[str, Any]:
    """A ``chat.completion`` object as an Anthropic message (``model`` is the name to report)."""
    choices = resp.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise ValueError("a chat completion without choices")
    choice = choices[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, list):  # some compatible servers answer with parts
        text = "".join(str(p.get("text", "")) for p in text if isinstance(p, Mapping))
    if text:
        content.append({"type": "text", "text": str(text)})
    if message.get("refusal"):
        content.append({"type": "text", "text": str(message["refusal"])})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append({
            "type": "tool_use",
            "id": str(call.get("id") or "toolu_" + secrets.token_hex(12)),
            "name": str(function.get("name", "")),
            "input": _parse_arguments(function.get("arguments")),
        })
    finish = str(choice.get("finish_reason") or "stop")
    stop_reason = "refusal" if message.get("refusal") else _FINISH_TO_STOP.get(finish, "end_turn")
    if stop_reason == "end_turn" and any(b["type"] == "tool_use" for b in content):
        stop_reason = "tool_use"
    return {
        "id": _message_id(resp.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": _canonical_usage(resp.get("usage")),
    }


class OpenAIStreamToCanonical:
    """Turns one stream of ``chat.completion.chunk`` objects into Anthropic streaming events.

    Feed each chunk to :meth:`feed`; call :meth:`finish` once the upstream sent ``[DONE]`` (or ended after
    a ``finish_reason``). Text becomes a text block; each ``tool_calls[i]`` becomes a ``tool_use`` block
    whose arguments stream as ``input_json_delta``. The closing ``message_delta`` waits for the usage
    chunk that ``stream_options.include_usage`` adds after the finish reason.
    """

    def __init__(self, model: str, message_id: str | None = None) -> None:
        self._model = model
        self._message_id = message_id
        self._started = False
        self._next_index = 0
        self._open: int | None = None  # the content block currently open
        self._open_is_text = False
        self._tools: dict[int, int] = {}  # OpenAI tool_calls index -> content block index
        self._finish: str | None = None
        self._refused = False
        self._usage: dict[str, int] | None = None

    @property
    def finished(self) -> bool:
        """True once a ``finish_reason`` arrived: the answer is complete even if ``[DONE]`` is missing."""
        return self._finish is not None

    def _start(self, chunk: Mapping[str, Any], out: list[dict[str, Any]]) -> None:
        self._started = True
        message_id = self._message_id or _message_id(chunk.get("id"))
        out.append({
            "type": "message_start",
            "message": {
                "id": message_id, "type": "message", "role": "assistant", "model": self._model, "content": [],
                "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0},
            },
        })

    def _close(self, out: list[dict[str, Any]]) -> None:
        if self._open is not None:
            out.append({"type": "content_block_stop", "index": self._open})
            self._open = None

    def _text(self, text: str, out: list[dict[str, Any]]) -> None:
        if self._open is None or not self._open_is_text:
            self._close(out)
            self._open, self._open_is_text = self._next_index, True
            self._next_index += 1
            out.append({"type": "content_block_start", "index": self._open,
                        "content_block": {"type": "text", "text": ""}})
        out.append({"type": "content_block_delta", "index": self._open, "delta": {"type": "text_delta", "text": text}})

    def _tool_delta(self, call: Mapping[str, Any], out: list[dict[str, Any]]) -> None:
        position = int(call.get("index") or 0)
        function = call.get("function") or {}
        block = self._tools.get(position)
        if block is None:
            self._close(out)
            block = self._tools[position] = self._next_index
            self._next_index += 1
            self._open, self._open_is_text = block, False
            out.append({
                "type": "content_block_start", "index": block,
                "content_block": {"type": "tool_use", "id": str(call.get("id") or "toolu_" + secrets.token_hex(12)),
                                  "name": str(function.get("name") or ""), "input": {}},
            })
        arguments = function.get("arguments")
        if arguments:
            out.append({"type": "content_block_delta", "index": block,
                        "delta": {"type": "input_json_delta", "partial_json": str(arguments)}})

    def feed(self, chunk: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The Anthropic events this chunk produces (often none or one)."""
        out: list[dict[str, Any]] = []
        if not self._started:
            self._start(chunk, out)
        if isinstance(chunk.get("usage"), Mapping):
            self._usage = _canonical_usage(chunk["usage"])
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self._text(str(delta["content"]), out)
            if delta.get("refusal"):
                self._refused = True
                self._text(str(delta["refusal"]), out)
            for call in delta.get("tool_calls") or ():
                if isinstance(call, Mapping):
                    self._tool_delta(call, out)
            if choice.get("finish_reason"):
                self._finish = str(choice["finish_reason"])
        return out

    def finish(self) -> list[dict[str, Any]]:
        """Close the open block and end the message (``message_delta`` with usage, ``message_stop``)."""
        out: list[dict[str, Any]] = []
        if not self._started:
            self._start({}, out)
        self._close(out)
        stop_reason = "refusal" if self._refused else _FINISH_TO_STOP.get(self._finish or "stop", "end_turn")
        if stop_reason == "end_turn" and self._tools:
            stop_reason = "tool_use"
        usage = self._usage or _canonical_usage(None)
        out.append({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": usage})
        out.append({"type": "message_stop"})
        return out

    @property
    def usage(self) -> dict[str, int] | None:
        return self._usage


# ============================================================================ client direction

_OPENAI_ONLY_TRUTHY = ("logprobs", "top_logprobs", "logit_bias", "audio", "prediction", "functions",
                       "function_call", "web_search_options")
_TRANSLATED_FORMATS = (None, "text", "json_object", "json_schema")


def openai_only_fields(req: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The fields set in a Chat Completions request that no canonical (Anthropic) request can express, each
    with why (``CanonicalRequest.lost``): only an OpenAI route, which gets the body as sent, serves them."""
    found = [field for field in _OPENAI_ONLY_TRUTHY if req.get(field)]
    if req.get("n") not in (None, 1):
        found.append("n")
    found.extend(field for field in ("presence_penalty", "frequency_penalty") if req.get(field))
    response_format = req.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") not in _TRANSLATED_FORMATS:
        found.append("response_format")
    modalities = req.get("modalities")
    if isinstance(modalities, list) and modalities and set(modalities) != {"text"}:
        found.append("modalities")
    return tuple((field, "has no equivalent outside OpenAI; only an OpenAI route can serve it") for field in found)


def _output_format(response_format: Any) -> dict[str, Any] | None:
    """``response_format`` as Anthropic's ``output_config.format`` (None: plain text)."""
    if not isinstance(response_format, Mapping):
        return None
    if response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise invalid("response_format.json_schema.schema", "a JSON schema object is required")
        return {"type": "json_schema", "schema": dict(schema)}
    if response_format.get("type") == "json_object":
        return {"type": "json_schema", "schema": {"type": "object"}}
    return None


def _content_parts(content: Any, field: str) -> list[dict[str, Any]]:
    """OpenAI message content (a string or parts) as Anthropic blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise invalid(field, "expected a string or an array of content parts")
    blocks: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind in ("text", "refusal"):
            text = str(part.get(kind) or "")
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            blocks.append(_image_block(part.get("image_url"), f"{field}[{index}]"))
        elif kind == "file":
            blocks.append(_file_block(part.get("file"), f"{field}[{index}]"))
        else:
            raise invalid(f"{field}[{index}]", f"content part type {kind!r} is not supported")
    return blocks


def _image_block(image: Any, field: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, Mapping) else image
    if not isinstance(url, str) or not url:
        raise invalid(field, "image_url.url is required")
    if url.startswith("data:"):
        header, _, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if encoding != "base64" or not data:
            raise invalid(field, "data URLs must be base64")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _file_block(file: Any, field: str) -> dict[str, Any]:
    data = file.get("file_data") if isinstance(file, Mapping) else None
    if not isinstance(data, str) or not data.startswith("data:"):
        raise invalid(field, "only inline file_data (a base64 data URL) is supported")
    header, _, payload = data[5:].partition(",")
    media_type = header.partition(";")[0] or "application/pdf"
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": payload}}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Anthropic wants user and assistant turns to alternate: merge consecutive turns of one role."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _canonical_tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for index, tool in enumerate(tools or ()):
        if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
            raise invalid(f"tools[{index}]", "only function tools are supported")
        function = tool.get("function")
        if not isinstance(function, Mapping) or not function.get("name"):
            raise invalid(f"tools[{index}].function.name", "required")
        entry: dict[str, Any] = {
            "name": str(function["name"]),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            entry["description"] = str(function["description"])
        out.append(entry)
    return out


def _canonical_tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        return {"type": "tool", "name": str(choice["function"].get("name", ""))}
    raise invalid("tool_choice", "expected auto, none, required or a function")


def openai_request_to_canonical(req: Mapping[str, Any]) -> dict[str, Any]:
    """A Chat Completions request as a canonical Anthropic Messages body.

    Raises ``ByollmError(INVALID_REQUEST)`` naming the field for what cannot be read. Fields with no
    canonical equivalent are left out (see :func:`native_only_fields`); an empty ``messages`` list is left
    for the upstream to refuse in its own words.
    """
    raw_messages = req.get("messages")
    if not isinstance(raw_messages, list):
        raise invalid("messages", "an array is required")
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for index, message in enumerate(raw_messages):
        field = f"messages[{index}]"
        if not isinstance(message, Mapping):
            raise invalid(field, "expected an object")
        role = message.get("role")
        if role in ("system", "developer"):
            if text := _text_of(message.get("content")):
                system.append(text)
        elif role == "user":
            _append(messages, "user", _content_parts(message.get("content"), f"{field}.content"))
        elif role == "assistant":
            blocks = _content_parts(message.get("content"), f"{field}.content")
            for c_index, call in enumerate(message.get("tool_calls") or ()):
                function = call.get("function") if isinstance(call, Mapping) else None
                if not isinstance(function, Mapping):
                    raise invalid(f"{field}.tool_calls[{c_index}]", "a function call is required")
                try:
                    arguments = orjson.loads(function.get("arguments") or "{}")
                except orjson.JSONDecodeError:
                    raise invalid(f"{field}.tool_calls[{c_index}].function.arguments", "must be JSON") from None
                blocks.append({"type": "tool_use", "id": str(call.get("id", "")), "name": str(function.get("name", "")),
                               "input": arguments if isinstance(arguments, dict) else {"value": arguments}})
            _append(messages, "assistant", blocks)
        elif role == "tool":
            result = {"type": "tool_result", "tool_use_id": str(message.get("tool_call_id", "")),
                      "content": _text_of(message.get("content"))}
            _append(messages, "user", [result])
        else:
            raise invalid(f"{field}.role", f"role {role!r} is not supported")
    max_field = "max_completion_tokens" if req.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = number_field(req, max_field, integer=True)
    body: dict[str, Any] = {
        "model": req.get("model"),
        "max_tokens": DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
        "messages": messages,
    }
    if system:
        body["system"] = "\n\n".join(system)
    if (temperature := number_field(req, "temperature")) is not None:
        body["temperature"] = min(temperature, 1.0)
    if (top_p := number_field(req, "top_p")) is not None:
        body["top_p"] = top_p
    stop = req.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else [str(s) for s in stop]
    tools = _canonical_tools(req.get("tools"))
    if tools:
        body["tools"] = tools
        choice = _canonical_tool_choice(req.get("tool_choice"))
        if req.get("parallel_tool_calls") is False and (choice is None or choice["type"] != "none"):
            choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
        if choice is not None:
            body["tool_choice"] = choice
    if (output_format := _output_format(req.get("response_format"))) is not None:
        body["output_config"] = {"format": output_format}
    if req.get("stream"):
        body["stream"] = True
    return body


def _openai_usage(usage: Any) -> dict[str, Any]:
    usage = usage if isinstance(usage, Mapping) else {}
    cached = int(usage.get("cache_read_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cached + int(usage.get("cache_creation_input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def _openai_call(block: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": str(block.get("id", "")), "type": "function",
            "function": {"name": str(block.get("name", "")), "arguments": _dumps(block.get("input") or {})}}


def canonical_to_openai_response(
    message: Mapping[str, Any], model: str, request_id: str, *, created: int | None = None
) -> dict[str, Any]:
    """An Anthropic message as a ``chat.completion`` object with id ``chatcmpl-<request_id>``."""
    blocks = content_blocks(message.get("content"))
    text = "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
    calls = [_openai_call(b) for b in blocks if b.get("type") == "tool_use"]
    out_message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
    if calls:
        out_message["tool_calls"] = calls
    stop_reason = str(message.get("stop_reason") or "end_turn")
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [{"index": 0, "message": out_message, "logprobs": None,
                     "finish_reason": _STOP_TO_FINISH.get(stop_reason, "stop")}],
        "usage": _openai_usage(message.get("usage")),
    }


class CanonicalStreamToOpenAI:
    """Turns one stream of Anthropic events into ``chat.completion.chunk`` objects for a client.

    :meth:`feed` returns the chunks an event produces; the finish chunk comes with ``message_delta`` and,
    when the client asked for ``stream_options.include_usage``, a last chunk with empty ``choices`` and
    the usage comes with ``message_stop`` (every earlier chunk then carries ``"usage": null``, as OpenAI
    does). The endpoint writes ``data: [DONE]`` after the last chunk.
    """

    def __init__(self, model: str, request_id: str, *, include_usage: bool = False, created: int | None = None
                 ) -> None:
        self._model = model
        self._id = f"chatcmpl-{request_id}"
        self._created = int(time.time()) if created is None else created
        self._include_usage = include_usage
        self._tool_index: dict[int, int] = {}  # content block index -> OpenAI tool_calls index
        self._usage: dict[str, int] = {}
        self._stop_reason: str | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self._include_usage:
            chunk["usage"] = None
        return chunk

    def _merge_usage(self, usage: Any) -> None:
        if isinstance(usage, Mapping):
            for key, value in usage.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    self._usage[key] = value

    def feed(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": str(delta.get("text", ""))})] if delta.get("text") else []
            if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                position = self._tool_index.get(int(event.get("index") or 0))
                if position is not None:
                    call = {"index": position, "function": {"arguments": str(delta["partial_json"])}}
                    return [self._chunk({"tool_calls": [call]})]
            return []
        if kind == "message_start":
            message = event.get("message") or {}
            self._merge_usage(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") != "tool_use":
                return []
            position = self._tool_index[int(event.get("index") or 0)] = len(self._tool_index)
            call = {"index": position, "id": str(block.get("id", "")), "type": "function",
                    "function": {"name": str(block.get("name", "")), "arguments": ""}}
            return [self._chunk({"tool_calls": [call]})]
        if kind == "message_delta":
            self._merge_usage(event.get("usage"))
            self._stop_reason = str((event.get("delta") or {}).get("stop_reason") or "end_turn")
            return [self._chunk({}, _STOP_TO_FINISH.get(self._stop_reason, "stop"))]
        if kind == "message_stop" and self._include_usage:
            final = self._chunk({})
            final["choices"] = []
            final["usage"] = _openai_usage(self._usage)
            return [final]
        return []
