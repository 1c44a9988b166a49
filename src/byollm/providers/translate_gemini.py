"""Anthropic Messages (canonical) -> Gemini ``generateContent``, and Gemini's answers back.

Provider direction only: a canonical request served by a Gemini model. Pure functions plus one stateful
stream translator per stream; no I/O.

Mapping decisions:

- roles ``user``/``assistant`` become ``user``/``model``; ``system`` becomes ``systemInstruction``;
- tools become one ``functionDeclarations`` tool, their JSON Schema sent as ``parametersJsonSchema``
  (Gemini's ``parameters`` takes only an OpenAPI subset and rejects common JSON Schema keywords);
- ``tool_use`` becomes a ``functionCall`` part and ``tool_result`` a ``functionResponse`` part; Gemini
  matches responses to calls by function *name*, so the name is looked up from the conversation's
  ``tool_use`` blocks, and both carry the Anthropic id as ``id``. The response object is
  ``{"result": text}`` (``{"error": text}`` when ``is_error``), since Gemini wants an object;
- Gemini's function calls have no ids: each gets a generated ``toolu_…`` id;
- ``finishReason`` ``STOP`` -> ``end_turn`` (``tool_use`` when the answer calls a function),
  ``MAX_TOKENS`` -> ``max_tokens``, safety-type reasons -> ``refusal``;
- usage: ``promptTokenCount`` less ``cachedContentTokenCount`` -> ``input_tokens``, the cached part ->
  ``cache_read_input_tokens``, ``candidatesTokenCount`` plus ``thoughtsTokenCount`` -> ``output_tokens``
  (Gemini bills thinking as output);
- ``thinking`` blocks are dropped (Gemini cannot take Claude's thinking back); ``thinking.budget_tokens``
  becomes ``thinkingConfig.thinkingBudget``; parts Gemini marks ``thought`` are not returned.
"""

from __future__ import annotations

import mimetypes
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from byollm.providers.canonical import content_blocks, invalid, unsupported

__all__ = [
    "GeminiStreamToCanonical",
    "canonical_to_gemini_count_request",
    "canonical_to_gemini_request",
    "gemini_response_to_canonical",
]

_FINISH_TO_STOP: Mapping[str, str] = {
    "STOP": "end_turn",
    "MAX_TOKENS": "max_tokens",
    "SAFETY": "refusal",
    "RECITATION": "refusal",
    "BLOCKLIST": "refusal",
    "PROHIBITED_CONTENT": "refusal",
    "SPII": "refusal",
    "IMAGE_SAFETY": "refusal",
}

IdFactory = Callable[[], str]


def _new_tool_id() -> str:
    return "toolu_" + secrets.token_hex(12)


def _media_part(block: Mapping[str, Any], field: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, Mapping):
        raise unsupported(field, "a source is required")
    if source.get("type") == "base64":
        return {"inlineData": {"mimeType": str(source.get("media_type", "")), "data": str(source.get("data", ""))}}
    if source.get("type") == "url":
        url = str(source.get("url", ""))
        mime = mimetypes.guess_type(url)[0] or ("application/pdf" if block.get("type") == "document" else "image/jpeg")
        return {"fileData": {"mimeType": mime, "fileUri": url}}
    if source.get("type") == "text":
        return {"text": str(source.get("data", ""))}
    raise unsupported(field, f"source type {source.get('type')!r} cannot be sent to a Gemini model")


def _result_parts(block: Mapping[str, Any], name: str, field: str) -> list[dict[str, Any]]:
    texts: list[str] = []
    media: list[dict[str, Any]] = []
    for index, inner in enumerate(content_blocks(block.get("content"))):
        if inner.get("type") == "text":
            texts.append(str(inner.get("text", "")))
        elif inner.get("type") in ("image", "document"):
            media.append(_media_part(inner, f"{field}.content.{index}"))
        else:
            raise unsupported(f"{field}.content.{index}", "a tool result may hold text, images and documents only")
    key = "error" if block.get("is_error") else "result"
    response: dict[str, Any] = {"name": name, "response": {key: "\n".join(texts)}}
    if block.get("tool_use_id"):
        response["id"] = str(block["tool_use_id"])
    return [{"functionResponse": response}, *media]


def _parts(blocks: list[Mapping[str, Any]], names: dict[str, str], field: str) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        kind = block.get("type")
        where = f"{field}.{index}"
        if kind == "text":
            if block.get("text"):
                parts.append({"text": str(block["text"])})
        elif kind == "tool_use":
            call_id = str(block.get("id", ""))
            names[call_id] = str(block.get("name", ""))
            call: dict[str, Any] = {"name": names[call_id], "args": block.get("input") or {}}
            if call_id:
                call["id"] = call_id
            parts.append({"functionCall": call})
        elif kind == "tool_result":
            tool_use_id = str(block.get("tool_use_id", ""))
            if tool_use_id not in names:
                raise invalid(where, "tool_result refers to a tool_use that is not in the conversation")
            parts.extend(_result_parts(block, names[tool_use_id], where))
        elif kind in ("image", "document"):
            parts.append(_media_part(block, where))
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise unsupported(where, f"content block type {kind!r} cannot be sent to a Gemini model")
    return parts


def _contents(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    names: dict[str, str] = {}
    contents: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = "model" if message.get("role") == "assistant" else "user"
        parts = _parts(content_blocks(message.get("content")), names, f"messages.{index}.content")
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return contents


def _system_instruction(system: Any) -> dict[str, Any] | None:
    if isinstance(system, str):
        return {"parts": [{"text": system}]} if system else None
    texts = [str(b.get("text", "")) for b in content_blocks(system) if b.get("type") == "text" and b.get("text")]
    return {"parts": [{"text": t} for t in texts]} if texts else None


def _tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    declarations = []
    for index, tool in enumerate(tools):
        if tool.get("type") not in (None, "custom"):
            raise unsupported(f"tools.{index}", f"server tool {tool.get('type')!r} cannot be used by a Gemini model")
        declaration: dict[str, Any] = {
            "name": str(tool.get("name", "")),
            "parametersJsonSchema": tool.get("input_schema") or {"type": "object", "properties": {}},
        }
        if tool.get("description"):
            declaration["description"] = str(tool["description"])
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}]


def _tool_config(choice: Mapping[str, Any]) -> dict[str, Any]:
    kind = choice.get("type")
    if kind == "any":
        return {"functionCallingConfig": {"mode": "ANY"}}
    if kind == "tool":
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [str(choice.get("name", ""))]}}
    if kind == "none":
        return {"functionCallingConfig": {"mode": "NONE"}}
    return {"functionCallingConfig": {"mode": "AUTO"}}


def canonical_to_gemini_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """A canonical (Anthropic Messages) body as a ``generateContent`` request (the model is in the URL)."""
    request: dict[str, Any] = {"contents": _contents(body.get("messages") or ())}
    if (system := _system_instruction(body.get("system"))) is not None:
        request["systemInstruction"] = system
    tools = body.get("tools")
    if tools:
        request["tools"] = _tools(tools)
        if isinstance(body.get("tool_choice"), Mapping):
            request["toolConfig"] = _tool_config(body["tool_choice"])
    config: dict[str, Any] = {}
    for source, target in (("max_tokens", "maxOutputTokens"), ("temperature", "temperature"),
                           ("top_p", "topP"), ("top_k", "topK")):
        if body.get(source) is not None:
            config[target] = body[source]
    if body.get("stop_sequences"):
        config["stopSequences"] = list(body["stop_sequences"])
    thinking = body.get("thinking")
    if isinstance(thinking, Mapping) and thinking.get("type") == "enabled" and thinking.get("budget_tokens"):
        config["thinkingConfig"] = {"thinkingBudget": int(thinking["budget_tokens"])}
    if config:
        request["generationConfig"] = config
    return request


def canonical_to_gemini_count_request(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    """A ``countTokens`` request for the same prompt (system and tools included)."""
    request = canonical_to_gemini_request(body)
    request.pop("generationConfig", None)
    return {"generateContentRequest": {"model": f"models/{model}", **request}}


def _canonical_usage(meta: Any) -> dict[str, int]:
    meta = meta if isinstance(meta, Mapping) else {}
    cached = int(meta.get("cachedContentTokenCount") or 0)
    output = int(meta.get("candidatesTokenCount") or 0) + int(meta.get("thoughtsTokenCount") or 0)
    return {
        "input_tokens": max(int(meta.get("promptTokenCount") or 0) - cached, 0),
        "output_tokens": output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def _candidate(resp: Mapping[str, Any]) -> Mapping[str, Any] | None:
    candidates = resp.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], Mapping):
        return candidates[0]
    return None


def _candidate_parts(candidate: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    content = candidate.get("content") if candidate else None
    parts = content.get("parts") if isinstance(content, Mapping) else None
    return [p for p in parts if isinstance(p, Mapping) and not p.get("thought")] if isinstance(parts, list) else []


def _stop_reason(finish: str | None, called: bool, blocked: bool) -> str:
    if blocked:
        return "refusal"
    reason = _FINISH_TO_STOP.get(finish or "STOP", "end_turn")
    return "tool_use" if reason == "end_turn" and called else reason


def gemini_response_to_canonical(
    resp: Mapping[str, Any], model: str, *, message_id: str | None = None, new_id: IdFactory = _new_tool_id
) -> dict[str, Any]:
    """A ``GenerateContentResponse`` as an Anthropic message (``model`` is the name to report)."""
    candidate = _candidate(resp)
    content: list[dict[str, Any]] = []
    for part in _candidate_parts(candidate):
        if isinstance(part.get("text"), str):
            if content and content[-1]["type"] == "text":
                content[-1]["text"] += part["text"]
            elif part["text"]:
                content.append({"type": "text", "text": part["text"]})
        elif isinstance(call := part.get("functionCall"), Mapping):
            content.append({"type": "tool_use", "id": str(call.get("id") or new_id()),
                            "name": str(call.get("name", "")), "input": dict(call.get("args") or {})})
    blocked = candidate is None and isinstance(resp.get("promptFeedback"), Mapping)
    if candidate is None and not blocked:
        raise ValueError("a Gemini answer without candidates")
    called = any(b["type"] == "tool_use" for b in content)
    finish = candidate.get("finishReason") if candidate else None
    response_id = resp.get("responseId")
    return {
        "id": message_id or (f"msg_{response_id}" if isinstance(response_id, str) else "msg_" + secrets.token_hex(12)),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _stop_reason(str(finish) if finish else None, called, blocked),
        "stop_sequence": None,
        "usage": _canonical_usage(resp.get("usageMetadata")),
    }


class GeminiStreamToCanonical:
    """Turns one ``streamGenerateContent?alt=sse`` stream into Anthropic streaming events.

    Text parts stream as ``text_delta`` into one text block; each ``functionCall`` part (Gemini sends it
    whole) becomes a complete ``tool_use`` block with its arguments in a single ``input_json_delta``.
    Usage is cumulative in every chunk; the last one wins. Call :meth:`finish` at the end of the stream.
    """

    def __init__(self, model: str, message_id: str | None = None, *, new_id: IdFactory = _new_tool_id) -> None:
        self._model = model
        self._message_id = message_id
        self._new_id = new_id
        self._started = False
        self._next_index = 0
        self._text_open: int | None = None
        self._called = False
        self._finish: str | None = None
        self._blocked = False
        self._usage: dict[str, int] | None = None

    @property
    def finished(self) -> bool:
        """True once a chunk carried a ``finishReason`` (or the prompt was blocked)."""
        return self._finish is not None or self._blocked

    @property
    def usage(self) -> dict[str, int] | None:
        return self._usage

    def _start(self, chunk: Mapping[str, Any], out: list[dict[str, Any]]) -> None:
        self._started = True
        response_id = chunk.get("responseId")
        message_id = self._message_id or (
            f"msg_{response_id}" if isinstance(response_id, str) else "msg_" + secrets.token_hex(12)
        )
        usage = _canonical_usage(chunk.get("usageMetadata"))
        usage["output_tokens"] = 0
        out.append({"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": self._model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": usage,
        }})

    def _close_text(self, out: list[dict[str, Any]]) -> None:
        if self._text_open is not None:
            out.append({"type": "content_block_stop", "index": self._text_open})
            self._text_open = None

    def feed(self, chunk: Mapping[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if not self._started:
            self._start(chunk, out)
        if isinstance(chunk.get("usageMetadata"), Mapping):
            self._usage = _canonical_usage(chunk["usageMetadata"])
        candidate = _candidate(chunk)
        if candidate is None and isinstance(chunk.get("promptFeedback"), Mapping) and chunk["promptFeedback"].get(
            "blockReason"
        ):
            self._blocked = True
        for part in _candidate_parts(candidate):
            if isinstance(part.get("text"), str):
                if not part["text"]:
                    continue
                if self._text_open is None:
                    self._text_open = self._next_index
                    self._next_index += 1
                    out.append({"type": "content_block_start", "index": self._text_open,
                                "content_block": {"type": "text", "text": ""}})
                out.append({"type": "content_block_delta", "index": self._text_open,
                            "delta": {"type": "text_delta", "text": part["text"]}})
            elif isinstance(call := part.get("functionCall"), Mapping):
                self._close_text(out)
                index = self._next_index
                self._next_index += 1
                self._called = True
                out.append({"type": "content_block_start", "index": index, "content_block": {
                    "type": "tool_use", "id": str(call.get("id") or self._new_id()),
                    "name": str(call.get("name", "")), "input": {},
                }})
                out.append({"type": "content_block_delta", "index": index, "delta": {
                    "type": "input_json_delta", "partial_json": orjson.dumps(call.get("args") or {}).decode(),
                }})
                out.append({"type": "content_block_stop", "index": index})
        if candidate is not None and candidate.get("finishReason"):
            self._finish = str(candidate["finishReason"])
        return out

    def finish(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if not self._started:
            self._start({}, out)
        self._close_text(out)
        out.append({"type": "message_delta",
                    "delta": {"stop_reason": _stop_reason(self._finish, self._called, self._blocked),
                              "stop_sequence": None},
                    "usage": self._usage or _canonical_usage(None)})
        out.append({"type": "message_stop"})
        return out
