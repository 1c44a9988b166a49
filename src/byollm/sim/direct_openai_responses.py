"""The simulated OpenAI Responses API (``POST /v1/responses``), beside Chat Completions in ``direct_openai``.

A request (``input`` as a string or items: messages, ``function_call``, ``function_call_output``,
``custom_tool_call(_output)``; ``instructions``; function and custom tools; ``tool_choice``;
``max_output_tokens``) is read into the canonical Messages body, answered by :mod:`byollm.sim.engine`, and
rendered as a Response object, or as the typed SSE events OpenAI streams (``event: <type>`` with the same
``type`` in the JSON, a growing ``sequence_number``, no ``[DONE]``): ``response.created``,
``response.in_progress``, per output item ``response.output_item.added``, ``response.content_part.added``,
``response.output_text.delta``/``.done`` or ``response.function_call_arguments.delta``/``.done``,
``response.content_part.done``, ``response.output_item.done``, then ``response.completed`` (or
``response.incomplete`` when ``max_output_tokens`` cut the answer). A mid-stream fault sends OpenAI's
``error`` event. Stored responses are not simulated: a ``previous_response_id`` is answered as an unknown
one, as OpenAI answers an id it does not hold.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from byollm.sim import engine

__all__ = [
    "ResponsesInputError",
    "new_response_id",
    "now",
    "paced",
    "render_response",
    "response_events",
    "responses_to_messages_body",
]

_DEFAULT_MAX_TOKENS = 4096
_HOSTED = frozenset({"web_search", "web_search_preview", "file_search", "code_interpreter", "image_generation",
                     "computer_use_preview", "mcp", "local_shell", "namespace", "tool_search"})


class ResponsesInputError(ValueError):
    """A request OpenAI would refuse with 400 ``invalid_request_error``; ``param`` names the field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _text(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ResponsesInputError(f"Invalid type for '{param}': expected a string or an array.", param)
    texts = []
    for part in content:
        if not isinstance(part, Mapping) or part.get("type") not in ("input_text", "output_text", "refusal",
                                                                     "input_image", "input_file"):
            raise ResponsesInputError(f"Invalid content part in '{param}'.", param)
        texts.append(str(part.get("text") or part.get("refusal") or ""))
    return "".join(texts)


def _append(messages: list[dict[str, Any]], role: str, block: dict[str, Any]) -> None:
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].append(block)
    else:
        messages.append({"role": role, "content": [block]})


def responses_to_messages_body(request: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """The canonical Messages body of a Responses request, and the names of its custom tools."""
    if request.get("previous_response_id"):
        raise ResponsesInputError(f"Previous response with id '{request['previous_response_id']}' not found.",
                                  "previous_response_id")
    if "input" not in request:
        raise ResponsesInputError("Missing required parameter: 'input'.", "input")
    raw = request["input"]
    items: list[Any] = [{"type": "message", "role": "user", "content": raw}] if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise ResponsesInputError("Invalid type for 'input': expected a string or an array.", "input")
    system = [str(request["instructions"])] if request.get("instructions") else []
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        param = f"input[{index}]"
        kind = item.get("type", "message") if isinstance(item, Mapping) else None
        if kind == "message":
            assert isinstance(item, Mapping)
            text = _text(item.get("content"), f"{param}.content")
            if item.get("role") in ("system", "developer"):
                system.append(text)
            elif item.get("role") in ("user", "assistant"):
                _append(messages, str(item["role"]), {"type": "text", "text": text})
            else:
                raise ResponsesInputError(f"Invalid value for '{param}.role'.", f"{param}.role")
        elif kind in ("function_call", "custom_tool_call"):
            assert isinstance(item, Mapping)
            try:
                arguments = (json.loads(item.get("arguments") or "{}") if kind == "function_call"
                             else {"input": item.get("input", "")})
            except ValueError as exc:
                raise ResponsesInputError(f"Invalid JSON in '{param}.arguments'.", f"{param}.arguments") from exc
            _append(messages, "assistant", {"type": "tool_use", "id": str(item.get("call_id")),
                                            "name": item.get("name"), "input": arguments})
        elif kind in ("function_call_output", "custom_tool_call_output"):
            assert isinstance(item, Mapping)
            _append(messages, "user", {"type": "tool_result", "tool_use_id": str(item.get("call_id")),
                                       "content": _text(item.get("output"), f"{param}.output")})
        elif kind == "reasoning":
            continue
        else:
            raise ResponsesInputError(f"Invalid value for '{param}.type'.", f"{param}.type")
    body: dict[str, Any] = {"messages": messages,
                            "max_tokens": request.get("max_output_tokens") or _DEFAULT_MAX_TOKENS}
    if system:
        body["system"] = "\n".join(system)
    tools: list[dict[str, Any]] = []
    custom: set[str] = set()
    for index, tool in enumerate(request.get("tools") or []):
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        if kind == "function":
            assert isinstance(tool, Mapping)
            tools.append({"name": tool.get("name"), "description": tool.get("description", ""),
                          "input_schema": tool.get("parameters") or {"type": "object", "properties": {}}})
        elif kind == "custom":
            assert isinstance(tool, Mapping)
            custom.add(str(tool.get("name")))
            tools.append({"name": tool.get("name"), "description": tool.get("description", ""),
                          "input_schema": {"type": "object", "properties": {"input": {"type": "string"}}}})
        elif kind not in _HOSTED:
            raise ResponsesInputError(f"Invalid value for 'tools[{index}].type'.", f"tools[{index}].type")
    if tools:
        body["tools"] = tools
    choice = request.get("tool_choice")
    if choice == "required":
        body["tool_choice"] = {"type": "any"}
    elif choice == "none":
        body["tool_choice"] = {"type": "none"}
    elif isinstance(choice, Mapping) and choice.get("name"):
        body["tool_choice"] = {"type": "tool", "name": choice["name"]}
    return body, custom


def _usage(reply: engine.ModelReply) -> dict[str, Any]:
    return {"input_tokens": reply.input_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": reply.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": reply.input_tokens + reply.output_tokens}


def _item(block: Mapping[str, Any], custom: set[str], *, done: bool = True) -> dict[str, Any]:
    status = "completed" if done else "in_progress"
    if block["type"] == "tool_use":
        call_id = "call_" + str(block["id"]).removeprefix("toolu_01")
        if block["name"] in custom:
            return {"id": "ctc_" + secrets.token_hex(24), "type": "custom_tool_call", "status": status,
                    "call_id": call_id, "name": block["name"],
                    "input": str(block["input"].get("input", "")) if done else ""}
        return {"id": "fc_" + secrets.token_hex(24), "type": "function_call", "status": status, "call_id": call_id,
                "name": block["name"], "arguments": json.dumps(block["input"]) if done else ""}
    text = str(block["text"]) if done else ""
    return {"id": "msg_" + secrets.token_hex(24), "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if done else []}


def render_response(request: Mapping[str, Any], reply: engine.ModelReply | None, *, model: str, response_id: str,
                    created: int, output: list[dict[str, Any]] | None = None, status: str | None = None,
                    custom: set[str] | None = None) -> dict[str, Any]:
    """A Response object (``output`` and ``status`` given while streaming; derived from ``reply`` otherwise)."""
    if output is None:
        assert reply is not None
        output = [_item(block, custom or set()) for block in reply.content]
    incomplete = reply is not None and reply.stop_reason == "max_tokens"
    if status is None:
        status = "incomplete" if incomplete else "completed"
    return {
        "id": response_id, "object": "response", "created_at": created, "status": status, "background": False,
        "error": None, "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": request.get("instructions"), "max_output_tokens": request.get("max_output_tokens"),
        "model": model, "output": output, "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
        "store": request.get("store", True), "temperature": request.get("temperature", 1.0),
        "text": request.get("text") or {"format": {"type": "text"}}, "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [], "top_p": request.get("top_p", 1.0), "truncation": "disabled",
        "usage": _usage(reply) if reply is not None and status != "in_progress" else None,
        "metadata": request.get("metadata") or {},
    }


def response_events(request: Mapping[str, Any], reply: engine.ModelReply, custom: set[str], *, model: str,
                    response_id: str, created: int) -> list[dict[str, Any]]:
    """The typed events of one streamed response, in OpenAI's order (``sequence_number`` added by the sender)."""
    events: list[dict[str, Any]] = []
    pending = render_response(request, None, model=model, response_id=response_id, created=created, output=[],
                              status="in_progress")
    events += [{"type": "response.created", "response": pending},
               {"type": "response.in_progress", "response": pending}]
    output: list[dict[str, Any]] = []
    for position, block in enumerate(reply.content):
        started = _item(block, custom, done=False)
        finished = {**_item(block, custom), "id": started["id"]}
        events.append({"type": "response.output_item.added", "output_index": position, "item": started})
        where = {"item_id": started["id"], "output_index": position}
        if finished["type"] == "message":
            text = finished["content"][0]["text"]
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            events.append({"type": "response.content_part.added", **where, "content_index": 0, "part": empty})
            events += [{"type": "response.output_text.delta", **where, "content_index": 0, "delta": piece,
                        "logprobs": []} for piece in _pieces(text)]
            events += [{"type": "response.output_text.done", **where, "content_index": 0, "text": text, "logprobs": []},
                       {"type": "response.content_part.done", **where, "content_index": 0,
                        "part": finished["content"][0]}]
        elif finished["type"] == "function_call":
            events += [{"type": "response.function_call_arguments.delta", **where, "delta": piece}
                       for piece in _pieces(finished["arguments"], 12)]
            events.append({"type": "response.function_call_arguments.done", **where, "name": finished["name"],
                           "arguments": finished["arguments"]})
        else:
            events += [{"type": "response.custom_tool_call_input.delta", **where, "delta": finished["input"]},
                       {"type": "response.custom_tool_call_input.done", **where, "input": finished["input"]}]
        events.append({"type": "response.output_item.done", "output_index": position, "item": finished})
        output.append(finished)
    final = render_response(request, reply, model=model, response_id=response_id, created=created, output=output)
    events.append({"type": "response.completed" if final["status"] == "completed" else "response.incomplete",
                   "response": final})
    return events


def _pieces(text: str, size: int = 0) -> list[str]:
    """Text in word-sized pieces (or fixed-size pieces of ``size`` characters), as a model streams it."""
    if size:
        return [text[i:i + size] for i in range(0, len(text), size)] or [""]
    words = text.split(" ")
    return [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)]


async def paced(events: list[dict[str, Any]], ttft: float, per_token: float) -> AsyncIterator[dict[str, Any]]:
    """The events with their ``sequence_number``, at the model's pace."""
    await asyncio.sleep(ttft)
    for number, event in enumerate(events):
        delta = event.get("delta") if event["type"] == "response.output_text.delta" else None
        if delta and per_token:
            await asyncio.sleep(per_token * engine.count_text_tokens(str(delta)))
        yield {**event, "sequence_number": number}


def new_response_id() -> str:
    return "resp_" + secrets.token_hex(24)


def now() -> int:
    return int(time.time())
