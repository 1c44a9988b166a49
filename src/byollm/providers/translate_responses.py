"""OpenAI Responses API (client) <-> Anthropic Messages (canonical), both ways, tools included.

byollm's ``POST /v1/responses`` receives a Responses request; a Claude route (Bedrock, direct Anthropic) or
any other route serving the canonical form gets it through :func:`responses_request_to_canonical`, and its
answer goes back through :func:`canonical_to_response` or, streamed, one :class:`CanonicalStreamToResponses`
per stream. (An OpenAI route passes the caller's request through instead: ``providers/openai_responses.py``.)

Everything here is a pure function of its input; a stream translator holds only its own stream's state.

Mapping decisions worth knowing:

- ``instructions`` and ``system``/``developer`` messages become the system prompt, in order (Anthropic
  has one system prompt; a developer message in mid-conversation moves there too).
- ``function_call`` / ``function_call_output`` items become ``tool_use`` / ``tool_result`` blocks keyed
  by ``call_id``; ``custom`` (free-form) tools become tools taking one string ``input`` and their calls
  come back as ``custom_tool_call`` items. ``reasoning`` items are dropped: they are OpenAI's own opaque
  state and no other model can read them.
- The function tools of a ``namespace`` group become tools named ``<namespace>__<name>``, and their calls
  come back as ``function_call`` items with ``namespace`` and the tool's own name again.
- Hosted tools (``web_search``, ``file_search``, ...) are offers the model may ignore: they are left out
  of the canonical request rather than failing it, unless ``tool_choice`` forces one. ``reasoning``,
  ``include``, ``store``, ``prompt_cache_key``, ``metadata`` and ``client_metadata`` do not change the
  answer's content and are not forwarded.
- What the canonical form cannot say but an OpenAI upstream can (``text.format`` other than text,
  ``logprobs``, ``top_logprobs``, a forced hosted tool) is recorded in ``lost``: routes serving the
  canonical form are then skipped as ``unsupported_by_route`` naming the field, and an OpenAI route
  serves the request whole.
- ``previous_response_id``, ``conversation`` and ``background`` are refused (``invalid_request`` naming
  the field) on every route: byollm keeps no responses, and a failover route could not see OpenAI's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from byollm.providers.canonical import content_blocks, invalid, number_field

__all__ = [
    "CanonicalStreamToResponses",
    "TranslatedRequest",
    "canonical_to_response",
    "namespaced_names",
    "responses_request_to_canonical",
]

DEFAULT_MAX_OUTPUT_TOKENS = 4096

_REFUSED = {
    "previous_response_id": "byollm keeps no responses; send the whole conversation in input (with store false)",
    "conversation": "byollm keeps no conversations; send the whole conversation in input",
    "background": "background responses are not supported; use stream instead",
}
_HOSTED_TOOLS = frozenset({
    "web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11", "file_search",
    "code_interpreter", "image_generation", "computer_use_preview", "computer_use", "mcp", "local_shell", "shell",
    "tool_search", "apply_patch",
})
_NAMESPACE_SEPARATOR = "__"
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what Anthropic accepts as a tool name
_CUSTOM_INPUT_SCHEMA: Mapping[str, Any] = {
    "type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"],
}
_STOP_TO_INCOMPLETE: Mapping[str, str] = {
    "max_tokens": "max_output_tokens",
    "model_context_window_exceeded": "max_output_tokens",
    "refusal": "content_filter",
}


@dataclass(frozen=True, slots=True)
class TranslatedRequest:
    """The canonical body, what it could not carry (field, why), and the custom tools' names (whose calls
    are rendered back as ``custom_tool_call`` items)."""

    body: dict[str, Any]
    lost: tuple[tuple[str, str], ...] = ()
    custom_tools: frozenset[str] = field(default_factory=frozenset)


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_PASSTHROUGH_SUBCLASS).decode()


# ============================================================================ request


def _part_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """A message's content (a string or input parts) as Anthropic blocks."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise invalid(f"{where}.content", "expected a string or an array of content parts")
    blocks: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        here = f"{where}.content[{index}]"
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind in ("input_text", "output_text", "text"):
            if text := str(part.get("text") or ""):
                blocks.append({"type": "text", "text": text})
        elif kind == "refusal":
            if text := str(part.get("refusal") or ""):
                blocks.append({"type": "text", "text": text})
        elif kind == "input_image":
            blocks.append(_image_block(part, here))
        elif kind == "input_file":
            blocks.append(_file_block(part, here))
        else:
            raise invalid(here, f"content part type {kind!r} is not supported")
    return blocks


def _image_block(part: Mapping[str, Any], where: str) -> dict[str, Any]:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        raise invalid(f"{where}.image_url", "an image URL or base64 data URL is required (file_id is not supported)")
    if url.startswith("data:"):
        header, _, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if encoding != "base64" or not data:
            raise invalid(f"{where}.image_url", "data URLs must be base64")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _file_block(part: Mapping[str, Any], where: str) -> dict[str, Any]:
    data = part.get("file_data")
    if not isinstance(data, str) or not data:
        raise invalid(f"{where}.file_data", "only inline file_data is supported (file_id and file_url are not)")
    if data.startswith("data:"):
        header, _, data = data[5:].partition(",")
        media_type = header.partition(";")[0] or "application/pdf"
    else:
        media_type = "application/pdf"
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _text_of(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Anthropic wants user and assistant turns to alternate: merge consecutive turns of one role."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _arguments(text: Any, where: str) -> dict[str, Any]:
    if isinstance(text, Mapping):
        return dict(text)
    if not isinstance(text, str) or not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise invalid(where, "must be a JSON object") from None
    return value if isinstance(value, dict) else {"value": value}


def _tool_output(output: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return _part_blocks(output, where) or ""
    raise invalid(f"{where}.output", "expected a string or an array of content parts")


def _input_messages(items: Any, system: list[str]) -> list[dict[str, Any]]:
    if isinstance(items, str):
        return [{"role": "user", "content": [{"type": "text", "text": items}]}]
    if not isinstance(items, list):
        raise invalid("input", "expected a string or an array of input items")
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        where = f"input[{index}]"
        if not isinstance(item, Mapping):
            raise invalid(where, "expected an object")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            blocks = _part_blocks(item.get("content"), where)
            if role in ("system", "developer"):
                if text := _text_of(blocks):
                    system.append(text)
            elif role in ("user", "assistant"):
                _append(messages, str(role), blocks)
            else:
                raise invalid(f"{where}.role", f"role {role!r} is not supported")
        elif kind in ("function_call", "custom_tool_call"):
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id or not isinstance(item.get("name"), str):
                raise invalid(where, "a call needs call_id and name")
            tool_input = (_arguments(item.get("arguments"), f"{where}.arguments") if kind == "function_call"
                          else {"input": str(item.get("input") or "")})
            name = item["name"]
            if isinstance(item.get("namespace"), str) and item["namespace"]:
                name = f"{item['namespace']}{_NAMESPACE_SEPARATOR}{name}"
            _append(messages, "assistant", [{"type": "tool_use", "id": call_id, "name": name, "input": tool_input}])
        elif kind in ("function_call_output", "custom_tool_call_output"):
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise invalid(f"{where}.call_id", "required")
            _append(messages, "user", [{"type": "tool_result", "tool_use_id": call_id,
                                        "content": _tool_output(item.get("output"), where)}])
        elif kind == "reasoning":
            continue  # OpenAI's opaque reasoning state: no other model can read it
        elif kind == "item_reference":
            raise invalid(f"{where}.type", "item references need stored responses, which byollm does not keep")
        else:
            raise invalid(f"{where}.type", f"input item type {kind!r} is not supported")
    if not messages:
        raise invalid("input", "at least one user message is required")
    return messages


def _tools(tools: Any) -> tuple[list[dict[str, Any]], frozenset[str], set[str]]:
    """Canonical tools, the custom tools' names, and the hosted tool types that were left out."""
    if tools is None:
        return [], frozenset(), set()
    if not isinstance(tools, list):
        raise invalid("tools", "expected an array")
    out: list[dict[str, Any]] = []
    custom: set[str] = set()
    hosted: set[str] = set()
    for index, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        if kind in ("function", "custom"):
            assert isinstance(tool, Mapping)
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                raise invalid(f"tools[{index}].name", "required")
            entry: dict[str, Any] = {"name": name}
            if tool.get("description"):
                entry["description"] = str(tool["description"])
            if kind == "function":
                entry["input_schema"] = tool.get("parameters") or {"type": "object", "properties": {}}
            else:
                entry["input_schema"] = dict(_CUSTOM_INPUT_SCHEMA)
                custom.add(name)
            out.append(entry)
        elif kind == "namespace":
            assert isinstance(tool, Mapping)
            out.extend(_namespace_tools(tool))
        elif isinstance(kind, str) and kind in _HOSTED_TOOLS:
            hosted.add(kind)
        else:
            raise invalid(f"tools[{index}].type", f"tool type {kind!r} is not supported")
    return out, frozenset(custom), hosted


def _namespace_tools(group: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A namespace group's function tools as canonical tools named ``<namespace>__<name>`` (those whose
    flattened name Anthropic would refuse are left out, like hosted tools)."""
    return [{"name": flat, "description": str(tool.get("description") or ""),
             "input_schema": tool.get("parameters") or {"type": "object", "properties": {}}}
            for flat, tool in _namespaced_functions(group).items()]


def _namespaced_functions(group: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    namespace = group.get("name")
    tools = group.get("tools")
    if not isinstance(namespace, str) or not isinstance(tools, list):
        return {}
    found: dict[str, Mapping[str, Any]] = {}
    for tool in tools:
        if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
            continue
        if isinstance(tool.get("name"), str):
            flat = f"{namespace}{_NAMESPACE_SEPARATOR}{tool['name']}"
            if _TOOL_NAME.match(flat):
                found[flat] = tool
    return found


def namespaced_names(tools: Any) -> dict[str, tuple[str, str]]:
    """Flattened tool name -> (namespace, name) for the namespace groups of a request's ``tools``."""
    names: dict[str, tuple[str, str]] = {}
    for group in tools if isinstance(tools, list) else ():
        if isinstance(group, Mapping) and group.get("type") == "namespace":
            for flat, tool in _namespaced_functions(group).items():
                names[flat] = (str(group["name"]), str(tool["name"]))
    return names


def _tool_choice(choice: Any, hosted: set[str], lost: list[tuple[str, str]]) -> dict[str, Any] | None:
    if choice is None or choice == "auto":
        return None
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, Mapping):
        kind = choice.get("type")
        if kind in ("function", "custom") and isinstance(choice.get("name"), str):
            return {"type": "tool", "name": choice["name"]}
        if kind in hosted or kind in _HOSTED_TOOLS:
            lost.append(("tool_choice", f"forcing the hosted tool {kind!r} needs an OpenAI route"))
            return None
        if kind == "allowed_tools":
            lost.append(("tool_choice", "allowed_tools needs an OpenAI route"))
            return None
    raise invalid("tool_choice", "expected auto, none, required or a function")


def responses_request_to_canonical(req: Mapping[str, Any]) -> TranslatedRequest:
    """A Responses request as a canonical Anthropic Messages body (see the module docstring).

    Raises ``ByollmError(INVALID_REQUEST)`` naming the field for what no route can serve.
    """
    for name, why in _REFUSED.items():
        if req.get(name):
            raise invalid(name, why)
    model = req.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "a model name (or \"auto\") is required")
    lost: list[tuple[str, str]] = []
    system: list[str] = []
    instructions = req.get("instructions")
    if isinstance(instructions, str):
        if instructions:
            system.append(instructions)
    elif instructions is not None:
        raise invalid("instructions", "expected a string")
    if "input" not in req:
        raise invalid("input", "required")
    messages = _input_messages(req.get("input"), system)
    max_tokens = number_field(req, "max_output_tokens", integer=True)
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": DEFAULT_MAX_OUTPUT_TOKENS if max_tokens is None else max_tokens,
        "messages": messages,
    }
    if system:
        body["system"] = "\n\n".join(system)
    if (temperature := number_field(req, "temperature")) is not None:
        body["temperature"] = min(temperature, 1.0)  # OpenAI's range is 0-2, Anthropic's 0-1
    if (top_p := number_field(req, "top_p")) is not None:
        body["top_p"] = top_p
    tools, custom, hosted = _tools(req.get("tools"))
    choice = _tool_choice(req.get("tool_choice"), hosted, lost)
    if tools:
        body["tools"] = tools
        if req.get("parallel_tool_calls") is False and (choice is None or choice["type"] != "none"):
            choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
        if choice is not None:
            body["tool_choice"] = choice
    elif choice is not None and choice["type"] in ("any", "tool"):
        raise invalid("tool_choice", "names a tool but no function tools were given")
    text = req.get("text")
    fmt = text.get("format") if isinstance(text, Mapping) else None
    if isinstance(fmt, Mapping) and fmt.get("type") not in (None, "text"):
        lost.append(("text.format", f"the {fmt.get('type')} output format needs an OpenAI route"))
    for name in ("top_logprobs", "logprobs"):
        if req.get(name):
            lost.append((name, "log probabilities need an OpenAI route"))
    if req.get("stream"):
        body["stream"] = True
    return TranslatedRequest(body=body, lost=tuple(lost), custom_tools=custom)


# ============================================================================ answer


def _usage(usage: Any) -> dict[str, Any]:
    usage = usage if isinstance(usage, Mapping) else {}
    cached = int(usage.get("cache_read_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cached + int(usage.get("cache_creation_input_tokens") or 0)
    output = int(usage.get("output_tokens") or 0)
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + output}


def _text_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def _call_item(item_id: str, block: Mapping[str, Any], custom: frozenset[str], arguments: str | None = None,
               status: str = "completed", namespaced: Mapping[str, tuple[str, str]] | None = None
               ) -> dict[str, Any]:
    name = str(block.get("name", ""))
    call_id = str(block.get("id", ""))
    tool_input = block.get("input") if isinstance(block.get("input"), Mapping) else {}
    assert isinstance(tool_input, Mapping)
    if name in custom:
        return {"id": item_id, "type": "custom_tool_call", "status": status, "call_id": call_id, "name": name,
                "input": str(tool_input.get("input", "")) if arguments is None else _custom_input(arguments)}
    item = {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": _dumps(tool_input) if arguments is None else (arguments or "{}")}
    if namespaced and name in namespaced:
        item["namespace"], item["name"] = namespaced[name]
    return item


def _custom_input(arguments: str) -> str:
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return arguments
    return str(value.get("input", "")) if isinstance(value, dict) else str(value)


def _status(stop_reason: str | None) -> tuple[str, dict[str, str] | None]:
    reason = _STOP_TO_INCOMPLETE.get(stop_reason or "")
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


@dataclass(frozen=True, slots=True)
class _Echo:
    """The request fields a Response object repeats."""

    model: str
    request: Mapping[str, Any]

    def response(self, response_id: str, created: int, output: list[dict[str, Any]], status: str,
                 incomplete: dict[str, str] | None, usage: dict[str, Any] | None) -> dict[str, Any]:
        req = self.request
        text = req.get("text") if isinstance(req.get("text"), Mapping) else None
        return {
            "id": response_id, "object": "response", "created_at": created, "status": status,
            "background": False, "error": None, "incomplete_details": incomplete,
            "instructions": req.get("instructions"), "max_output_tokens": req.get("max_output_tokens"),
            "model": self.model, "output": output,
            "parallel_tool_calls": req.get("parallel_tool_calls") is not False,
            "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
            "store": False, "temperature": req.get("temperature", 1.0),
            "text": text or {"format": {"type": "text"}}, "tool_choice": req.get("tool_choice", "auto"),
            "tools": list(req.get("tools") or []), "top_p": req.get("top_p", 1.0), "truncation": "disabled",
            "usage": usage, "metadata": dict(req.get("metadata") or {}),
        }


def canonical_to_response(message: Mapping[str, Any], request: Mapping[str, Any], request_id: str,
                          custom_tools: frozenset[str] = frozenset(), *, created: int | None = None
                          ) -> dict[str, Any]:
    """An Anthropic message as a Response object (id ``resp_<request_id>``; the model named as requested)."""
    output: list[dict[str, Any]] = []
    for index, block in enumerate(content_blocks(message.get("content"))):
        if block.get("type") == "text" and block.get("text"):
            output.append(_text_item(f"msg_{request_id}_{index}", str(block["text"])))
        elif block.get("type") == "tool_use":
            output.append(_call_item(f"fc_{request_id}_{index}", block, custom_tools,
                                     namespaced=namespaced_names(request.get("tools"))))
    status, incomplete = _status(str(message.get("stop_reason") or ""))
    echo = _Echo(str(request.get("model")), request)
    return echo.response(f"resp_{request_id}", int(time.time()) if created is None else created, output, status,
                         incomplete, _usage(message.get("usage")))


class CanonicalStreamToResponses:
    """Turns one stream of Anthropic events into Responses streaming events for a client.

    ``message_start`` opens the response (``response.created``, ``response.in_progress``); each text block
    is one ``message`` output item with one ``output_text`` part (``output_item.added``,
    ``content_part.added``, ``output_text.delta``..., ``output_text.done``, ``content_part.done``,
    ``output_item.done``); each ``tool_use`` block is one ``function_call`` item whose arguments stream as
    ``function_call_arguments.delta`` (a custom tool's call is one ``custom_tool_call`` item, its input
    sent whole when the block ends, since it arrives as JSON around the string). ``message_stop`` closes
    with ``response.completed`` (or ``response.incomplete``) carrying the whole response and its usage;
    :meth:`fail` closes a stream that broke after it started.
    Thinking blocks are not shown. Every event carries the next ``sequence_number``.
    """

    def __init__(self, request: Mapping[str, Any], request_id: str, custom_tools: frozenset[str] = frozenset(),
                 *, created: int | None = None) -> None:
        self._echo = _Echo(str(request.get("model")), request)
        self._rid = request_id
        self._id = f"resp_{request_id}"
        self._created = int(time.time()) if created is None else created
        self._custom = custom_tools
        self._namespaced = namespaced_names(request.get("tools"))
        self._sequence = 0
        self._output: list[dict[str, Any]] = []
        self._open: dict[int, tuple[int, dict[str, Any], list[str]]] = {}  # block -> (output index, block, text)
        self._usage: dict[str, int] = {}
        self._stop_reason: str | None = None

    @property
    def sequencenumber_field(self) -> int:
        """The number the next event will carry."""
        return self._sequence

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _response(self, status: str, incomplete: dict[str, str] | None = None,
                  usage: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._echo.response(self._id, self._created, list(self._output), status, incomplete, usage)

    def _merge_usage(self, usage: Any) -> None:
        if isinstance(usage, Mapping):
            for key, value in usage.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    self._usage[key] = value

    def feed(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "content_block_delta":
            return self._delta(event)
        if kind == "content_block_start":
            return self._start(event)
        if kind == "content_block_stop":
            return self._stop(int(event.get("index") or 0))
        if kind == "message_start":
            self._merge_usage((event.get("message") or {}).get("usage"))
            return [self._event("response.created", response=self._response("in_progress")),
                    self._event("response.in_progress", response=self._response("in_progress"))]
        if kind == "message_delta":
            self._merge_usage(event.get("usage"))
            self._stop_reason = str((event.get("delta") or {}).get("stop_reason") or "end_turn")
            return []
        if kind == "message_stop":
            status, incomplete = _status(self._stop_reason)
            final = self._response(status, incomplete, _usage(self._usage))
            return [self._event("response.completed" if status == "completed" else "response.incomplete",
                                response=final)]
        return []

    def relayed(self) -> None:
        """One upstream event went to the client unchanged (a pass-through): the next own event, a failure's,
        must follow its ``sequence_number``."""
        self._sequence += 1

    def fail(self, code: str, message: str) -> list[dict[str, Any]]:
        """The events that end a stream which failed after it started: OpenAI's ``error`` event (what the
        SDKs surface) and ``response.failed`` with the response so far and ``error`` set (what agents such as
        Codex read to show the reason, instead of a stream that just stopped)."""
        error = self._event("error", code=code, message=message, param=None)
        failed = self._response("failed")
        failed["error"] = {"code": code, "message": message}
        return [error, self._event("response.failed", response=failed)]

    def _start(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        block = event.get("content_block") or {}
        index = int(event.get("index") or 0)
        position = len(self._output)
        if block.get("type") == "text":
            item = _text_item(f"msg_{self._rid}_{index}", "", "in_progress")
            item["content"] = []
            self._output.append(item)
            self._open[index] = (position, dict(block), [str(block.get("text") or "")])
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            return [self._event("response.output_item.added", output_index=position, item=dict(item)),
                    self._event("response.content_part.added", item_id=item["id"], output_index=position,
                                content_index=0, part=part)]
        if block.get("type") == "tool_use":
            item = _call_item(f"fc_{self._rid}_{index}", block, self._custom, "", "in_progress", self._namespaced)
            self._output.append(item)
            self._open[index] = (position, dict(block), [])
            return [self._event("response.output_item.added", output_index=position, item=dict(item))]
        return []

    def _delta(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        opened = self._open.get(int(event.get("index") or 0))
        if opened is None:
            return []
        position, block, pieces = opened
        delta = event.get("delta") or {}
        item_id = self._output[position]["id"]
        if delta.get("type") == "text_delta" and delta.get("text"):
            pieces.append(str(delta["text"]))
            return [self._event("response.output_text.delta", item_id=item_id, output_index=position,
                                content_index=0, delta=str(delta["text"]), logprobs=[])]
        if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
            pieces.append(str(delta["partial_json"]))
            if str(block.get("name")) in self._custom:
                return []
            return [self._event("response.function_call_arguments.delta", item_id=item_id, output_index=position,
                                delta=str(delta["partial_json"]))]
        return []

    def _stop(self, index: int) -> list[dict[str, Any]]:
        opened = self._open.pop(index, None)
        if opened is None:
            return []
        position, block, pieces = opened
        text = "".join(pieces)
        item_id = self._output[position]["id"]
        if block.get("type") == "text":
            item = _text_item(item_id, text)
            self._output[position] = item
            part = item["content"][0]
            return [self._event("response.output_text.done", item_id=item_id, output_index=position,
                                content_index=0, text=text, logprobs=[]),
                    self._event("response.content_part.done", item_id=item_id, output_index=position,
                                content_index=0, part=part),
                    self._event("response.output_item.done", output_index=position, item=item)]
        item = _call_item(item_id, block, self._custom, text, namespaced=self._namespaced)
        self._output[position] = item
        if item["type"] == "custom_tool_call":
            events = [self._event("response.custom_tool_call_input.delta", item_id=item_id, output_index=position,
                                  delta=item["input"]),
                      self._event("response.custom_tool_call_input.done", item_id=item_id, output_index=position,
                                  input=item["input"])]
        else:
            events = [self._event("response.function_call_arguments.done", item_id=item_id, output_index=position,
                                  name=item["name"], arguments=item["arguments"])]
        return [*events, self._event("response.output_item.done", output_index=position, item=item)]
