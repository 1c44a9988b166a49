"""The simulated model: one deterministic "brain" behind every simulated inference endpoint.

Every simulated service (Bedrock InvokeModel/Converse, the direct Anthropic, OpenAI and Gemini APIs)
translates its request into an Anthropic Messages request body, asks :func:`reply_to` for a
:class:`ModelReply`, and renders that reply in its own wire shape. Keeping a single brain means that
the same prompt gets the same answer and the same token counts whichever door it came through, so a
test can tell which service served it only from the ``[service:model]`` tag the reply carries.

Behaviour, all derived from the request and nothing else (no clock, no randomness):

- a plain prompt gets ``"[service:model] You said: <last user text>"``;
- a prompt that names a tool the request offers (or a ``tool_choice`` that forces one) gets a
  ``tool_use`` block whose input is built from the tool's ``input_schema`` and stop reason
  ``tool_use``;
- a turn that carries ``tool_result`` blocks gets a text that quotes the results, so agent loops end;
- ``max_tokens`` truncates the reply (stop reason ``max_tokens``) and ``stop_sequences`` cut it
  (stop reason ``stop_sequence``).

Tokens are counted by :func:`count_text_tokens` (words and single punctuation marks), the same
function for ``count_tokens`` and for usage, so the numbers always agree.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CONTEXT_WINDOW_TOKENS",
    "InvalidRequestError",
    "ModelReply",
    "PromptTooLongError",
    "anthropic_message",
    "anthropic_stream_events",
    "count_input_tokens",
    "count_text_tokens",
    "reply_to",
    "truncate_to_tokens",
    "validate_messages_body",
]

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_STOPWORDS = frozenset({"for", "in", "on", "of", "with", "about", "to", "the", "a", "an", "please", "using"})
_TEXT_CHUNK_TOKENS = 3
_JSON_CHUNK_CHARS = 12


CONTEXT_WINDOW_TOKENS = 200_000  # every simulated model's context window, in the simulator's tokens


class InvalidRequestError(ValueError):
    """The request body is not a valid Messages request; the message reads like Anthropic's."""


class PromptTooLongError(InvalidRequestError):
    """The prompt does not fit the context window; each service words it its own way (Anthropic's here)."""

    def __init__(self, tokens: int) -> None:
        super().__init__(f"prompt is too long: {tokens} tokens > {CONTEXT_WINDOW_TOKENS} maximum")
        self.tokens = tokens


@dataclass(frozen=True)
class ModelReply:
    """What the simulated model answered, independent of any wire format.

    ``content`` holds Anthropic content blocks (``text`` and ``tool_use``); ``stop_sequence`` is set
    only when ``stop_reason`` is ``"stop_sequence"``.
    """

    content: list[dict[str, Any]]
    stop_reason: str
    input_tokens: int
    output_tokens: int
    stop_sequence: str | None = None


def count_text_tokens(text: str) -> int:
    """Count tokens the way the whole simulator does: each word and each punctuation mark is one."""
    return sum(1 for _ in _TOKEN.finditer(text))


def truncate_to_tokens(text: str, limit: int) -> str:
    """Return the longest prefix of ``text`` holding at most ``limit`` tokens (original spacing kept)."""
    if limit <= 0:
        return ""
    end = 0
    for index, match in enumerate(_TOKEN.finditer(text)):
        if index >= limit:
            return text[:end]
        end = match.end()
    return text


def validate_messages_body(body: Mapping[str, Any]) -> None:
    """Check the parts of a Messages body the simulator relies on; raise :class:`InvalidRequestError`.

    Only checks real Anthropic also makes (same wording where practical), so a body the real API would
    accept is never refused here.
    """
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise InvalidRequestError("max_tokens: Field required")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidRequestError("max_tokens: Input should be a valid integer greater than or equal to 1")
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequestError("messages: Field required")
    if not isinstance(messages, list):
        raise InvalidRequestError("messages: Input should be a valid list")
    if not messages:
        raise InvalidRequestError("messages: at least one message is required")
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InvalidRequestError(f"messages.{index}: Input should be a valid dictionary")
        if message.get("role") not in ("user", "assistant"):
            raise InvalidRequestError(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise InvalidRequestError(f"messages.{index}.content: Field required")
    if messages[0].get("role") != "user":
        raise InvalidRequestError('messages: first message must use the "user" role')
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise InvalidRequestError("tools: Input should be a valid list")
    for index, tool in enumerate(tools):
        if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
            raise InvalidRequestError(f"tools.{index}.name: Field required")
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and choice.get("type") == "tool":
        names = {tool["name"] for tool in tools}
        if choice.get("name") not in names:
            raise InvalidRequestError(f"tool_choice.name: tool {choice.get('name')!r} not found in tools")


def count_input_tokens(body: Mapping[str, Any]) -> int:
    """Count the prompt tokens of a Messages body: system, every message block, and the tool specs."""
    total = count_text_tokens(_system_text(body.get("system")))
    for message in body.get("messages") or []:
        for block in _blocks(message.get("content")):
            total += _block_tokens(block)
    for tool in body.get("tools") or []:
        total += count_text_tokens(str(tool.get("name", "")))
        total += count_text_tokens(str(tool.get("description", "")))
        total += count_text_tokens(json.dumps(tool.get("input_schema", {}), sort_keys=True))
    return max(total, 1)


def reply_to(body: Mapping[str, Any], *, service: str, model: str) -> ModelReply:
    """Answer a Messages request body deterministically; see the module docstring for the rules."""
    validate_messages_body(body)
    if (tokens := count_input_tokens(body)) > CONTEXT_WINDOW_TOKENS:
        raise PromptTooLongError(tokens)
    tag = f"[{service}:{model}]"
    messages: list[Mapping[str, Any]] = list(body["messages"])
    last_blocks = _blocks(messages[-1].get("content")) if messages[-1].get("role") == "user" else []
    prompt = " ".join(str(b.get("text", "")) for b in last_blocks if b.get("type") == "text").strip()
    results = [b for b in last_blocks if b.get("type") == "tool_result"]

    tool = _chosen_tool(body, prompt, after_results=bool(results))
    content: list[dict[str, Any]]
    if tool is not None:
        tool_input = _build_value(tool.get("input_schema") or {"type": "object"}, prompt, str(tool["name"]))
        content = [
            {"type": "text", "text": f"{tag} Calling tool {tool['name']}."},
            {
                "type": "tool_use",
                "id": _tool_use_id(body, str(tool["name"])),
                "name": tool["name"],
                "input": tool_input,
            },
        ]
        stop_reason = "tool_use"
    elif results:
        names = _tool_names_by_id(messages)
        quoted = "; ".join(
            f"{names.get(str(r.get('tool_use_id')), 'tool')} returned: {_result_text(r)}" for r in results
        )
        content = [{"type": "text", "text": f"{tag} Tool {quoted}"}]
        stop_reason = "end_turn"
    elif (schema := _output_schema(body)) is not None:  # structured output: JSON matching the schema
        content = [{"type": "text", "text": json.dumps(_build_value(schema, prompt, "output"))}]
        stop_reason = "end_turn"
    else:
        content = [{"type": "text", "text": f"{tag} You said: {prompt or '(nothing)'}"}]
        stop_reason = "end_turn"

    content, stop_reason, stop_sequence = _apply_limits(content, stop_reason, body)
    return ModelReply(
        content=content,
        stop_reason=stop_reason,
        input_tokens=count_input_tokens(body),
        output_tokens=sum(_block_tokens(block) for block in content),
        stop_sequence=stop_sequence,
    )


def anthropic_message(reply: ModelReply, *, model: str, message_id: str) -> dict[str, Any]:
    """Render a reply as the JSON body of a non-streaming Anthropic Messages API response."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [dict(block) for block in reply.content],
        "stop_reason": reply.stop_reason,
        "stop_sequence": reply.stop_sequence,
        "usage": _usage(reply.input_tokens, reply.output_tokens),
    }


def anthropic_stream_events(reply: ModelReply, *, model: str, message_id: str) -> list[dict[str, Any]]:
    """Render a reply as the ordered payloads of Anthropic's streaming events (no ``ping``).

    The order is the one the Messages API uses: ``message_start``, then per content block
    ``content_block_start``, its deltas and ``content_block_stop``, then ``message_delta`` with the
    stop reason and output usage, then ``message_stop``.
    """
    start_message = anthropic_message(reply, model=model, message_id=message_id)
    start_message.update(content=[], stop_reason=None, stop_sequence=None)
    start_message["usage"] = _usage(reply.input_tokens, 1)
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start_message}]
    for index, block in enumerate(reply.content):
        if block["type"] == "tool_use":
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            deltas = [
                {"type": "input_json_delta", "partial_json": part}
                for part in ["", *_json_chunks(json.dumps(block["input"]))]
            ]
        else:
            opening = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": part} for part in _text_chunks(str(block["text"]))]
        events.append({"type": "content_block_start", "index": index, "content_block": opening})
        events.extend({"type": "content_block_delta", "index": index, "delta": delta} for delta in deltas)
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence},
            "usage": {"output_tokens": reply.output_tokens},
        }
    )
    events.append({"type": "message_stop"})
    return events


# --- helpers -------------------------------------------------------------------------------------


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    }


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return " ".join(str(b.get("text", "")) for b in system if isinstance(b, Mapping))
    return ""


def _blocks(content: Any) -> list[Mapping[str, Any]]:
    """Normalise message content (a string or a list of blocks) to a list of blocks."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [b for b in content if isinstance(b, Mapping)]
    return []


def _result_text(block: Mapping[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, str):
        return content
    return " ".join(str(b.get("text", "")) for b in _blocks(content) if b.get("type") == "text")


def _block_tokens(block: Mapping[str, Any]) -> int:
    kind = block.get("type")
    if kind == "text":
        return count_text_tokens(str(block.get("text", "")))
    if kind == "tool_use":
        name_tokens = count_text_tokens(str(block.get("name", "")))
        return name_tokens + count_text_tokens(json.dumps(block.get("input", {}), sort_keys=True))
    if kind == "tool_result":
        return count_text_tokens(_result_text(block)) + 1
    if kind in ("image", "document"):
        return 85
    return 0


def _tool_names_by_id(messages: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    names: dict[str, str] = {}
    for message in messages:
        for block in _blocks(message.get("content")):
            if block.get("type") == "tool_use":
                names[str(block.get("id"))] = str(block.get("name"))
    return names


def _mentions(prompt: str, name: str) -> int:
    """Position where the prompt names the tool (``get_weather`` or ``get weather``), or -1."""
    lowered = prompt.lower()
    for form in (name.lower(), name.lower().replace("_", " ").replace("-", " ")):
        match = re.search(rf"(?<!\w){re.escape(form)}(?!\w)", lowered)
        if match:
            return match.start()
    return -1


def _chosen_tool(body: Mapping[str, Any], prompt: str, *, after_results: bool) -> Mapping[str, Any] | None:
    """Pick the tool to call, following ``tool_choice`` the way Claude does."""
    tools: list[Mapping[str, Any]] = [t for t in body.get("tools") or [] if t.get("type") in (None, "custom")]
    if not tools:
        return None
    choice = body.get("tool_choice") or {"type": "auto"}
    kind = choice.get("type", "auto") if isinstance(choice, Mapping) else "auto"
    if kind == "none":
        return None
    if kind == "tool":
        return next((t for t in tools if t["name"] == choice.get("name")), None)
    positions = [(_mentions(prompt, str(tool["name"])), index) for index, tool in enumerate(tools)]
    mentioned = sorted(entry for entry in positions if entry[0] >= 0)
    if mentioned and not after_results:
        return tools[mentioned[0][1]]
    if kind == "any":
        return tools[mentioned[0][1]] if mentioned else tools[0]
    return None


def _explicit_value(prompt: str, prop: str) -> str | None:
    """A value the prompt spells out as ``prop=value`` or ``prop: value`` (quoted or one word)."""
    match = re.search(rf"(?<!\w){re.escape(prop)}\s*[=:]\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s,;]+))", prompt)
    if not match:
        return None
    return next(group for group in match.groups() if group is not None)


def _free_text(prompt: str, tool_name: str) -> str:
    """A string argument from the prompt: the first quoted string, else the phrase after the tool's name.

    ``"Use get_weather for New York for 2 days"`` gives ``"New York"``.
    """
    quoted = re.findall(r"\"([^\"]+)\"", prompt)
    if quoted:
        return str(quoted[0])
    position = _mentions(prompt, tool_name)
    tail = prompt[position + len(tool_name) :] if position >= 0 else prompt
    tail = re.split(r"[.,;:=!?\n]", tail, maxsplit=1)[0]
    words = re.findall(r"[\w'-]+", tail)
    while words and words[0].lower() in _STOPWORDS | {"tool"}:
        words.pop(0)
    phrase: list[str] = []
    for word in words:  # the phrase ends where the next filler word or number begins
        if word.lower() in _STOPWORDS or word[0].isdigit():
            break
        phrase.append(word)
    return " ".join(phrase) or "example"


def _output_schema(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The JSON schema of a structured-output request (``output_config.format``, or the beta's
    ``output_format``), or None. A format other than ``json_schema`` is refused as Anthropic does."""
    config = body.get("output_config")
    output_format = config.get("format") if isinstance(config, Mapping) else body.get("output_format")
    if output_format is None:
        return None
    if not isinstance(output_format, Mapping) or output_format.get("type") != "json_schema":
        raise InvalidRequestError("output_config.format.type: Input should be 'json_schema'")
    schema = output_format.get("schema")
    if not isinstance(schema, Mapping):
        raise InvalidRequestError("output_config.format.schema: Field required")
    return schema


def _build_value(schema: Mapping[str, Any], prompt: str, name: str, prop: str | None = None) -> Any:
    """A plausible value for ``schema``: spelled-out values first, then the prompt, then defaults."""
    explicit = _explicit_value(prompt, prop) if prop else None
    if schema.get("enum"):
        options = list(schema["enum"])
        return next((o for o in options if str(o) == explicit), None) or next(
            (o for o in options if isinstance(o, str) and _mentions(prompt, o) >= 0), options[0]
        )
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        properties: Mapping[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or properties)
        return {
            key: _build_value(sub, prompt, name, key)
            for key, sub in properties.items()
            if key in required or _explicit_value(prompt, key) is not None
        }
    if kind == "array":
        return [_build_value(schema.get("items") or {"type": "string"}, prompt, name, prop)]
    if kind in ("integer", "number"):
        source = explicit or next(iter(re.findall(r"-?\d+(?:\.\d+)?", prompt)), None)
        value = float(source) if source else float(schema.get("minimum", 1))
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return explicit.lower() not in ("false", "no", "0") if explicit else True
    if kind == "null":
        return None
    return explicit if explicit is not None else _free_text(prompt, name)


def _tool_use_id(body: Mapping[str, Any], name: str) -> str:
    digest = hashlib.sha256(json.dumps([name, body.get("messages")], sort_keys=True, default=str).encode())
    return "toolu_01" + digest.hexdigest()[:22]


def _apply_limits(
    content: list[dict[str, Any]], stop_reason: str, body: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], str, str | None]:
    """Cut the reply at the first stop sequence, then at ``max_tokens``."""
    stops = [s for s in body.get("stop_sequences") or [] if isinstance(s, str) and s]
    budget = int(body["max_tokens"])
    kept: list[dict[str, Any]] = []
    for block in content:
        if block["type"] == "text":
            text = str(block["text"])
            hits = sorted((text.find(s), s) for s in stops if s in text)
            if hits:
                text = text[: hits[0][0]]
            tokens = count_text_tokens(text)
            if tokens > budget:
                return [*kept, {"type": "text", "text": truncate_to_tokens(text, budget)}], "max_tokens", None
            kept.append({"type": "text", "text": text})
            budget -= tokens
            if hits:
                return kept, "stop_sequence", hits[0][1]
        else:
            tokens = _block_tokens(block)
            if tokens > budget:
                return kept, "max_tokens", None
            kept.append(block)
            budget -= tokens
    return kept, stop_reason, None


def _text_chunks(text: str) -> Iterator[str]:
    """Split text into deltas of a few tokens each, keeping the exact characters."""
    start = 0
    matches = list(_TOKEN.finditer(text))
    for index in range(_TEXT_CHUNK_TOKENS, len(matches), _TEXT_CHUNK_TOKENS):
        end = matches[index].start()
        yield text[start:end]
        start = end
    if start < len(text) or not text:
        yield text[start:]


def _json_chunks(text: str) -> Iterator[str]:
    for start in range(0, len(text), _JSON_CHUNK_CHARS):
        yield text[start : start + _JSON_CHUNK_CHARS]
