"""OpenAI Responses API (client) -> OpenAI Responses API (upstream): the pass-through.

When a ``/v1/responses`` request is served by an OpenAI route, the caller's own body goes upstream with
only ``model`` rewritten to the route's model id, and the answer comes back as OpenAI sent it, so every
feature OpenAI supports works (structured output, reasoning, hosted tools, ...). byollm still needs the
answer's meaning for its own books, so this module reads it into the canonical form without changing a
byte of what the caller gets:

- :func:`response_to_canonical`: a Response object as an Anthropic message (text, tool calls, stop
  reason, usage) for the request log and the credits;
- :class:`ResponsesFrames`: each streamed event's canonical meaning (``message_start`` for
  ``response.created``, ``content_block_delta`` for text and argument deltas, ``message_delta`` with the
  usage for ``response.completed``/``response.incomplete``), so the gateway commits to the stream at its
  first content and counts usage; ``error`` and ``response.failed`` are upstream failures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["ResponsesFrames", "passthrough_body", "response_to_canonical", "responses_url", "usage_to_canonical"]

_INCOMPLETE_TO_STOP: Mapping[str, str] = {"max_output_tokens": "max_tokens", "content_filter": "refusal"}
_FINAL = frozenset({"response.completed", "response.incomplete"})
FAILED = frozenset({"error", "response.failed"})


def responses_url(base_url: str) -> str:
    """``base_url`` may be the API root or, as OpenAI's SDK has it, ``…/v1``."""
    base = base_url.rstrip("/")
    return base + ("/responses" if base.endswith("/v1") else "/v1/responses")


def passthrough_body(raw_body: Mapping[str, Any], model: str, *, stream: bool) -> bytes:
    """The caller's request with the route's model id (and the stream flag the gateway is serving).

    ``store`` defaults to false when the caller did not set it (OpenAI's default is true): byollm refuses
    ``previous_response_id``, so a response kept at OpenAI under the operator's key could never be used and
    would only be a copy of the team's data held elsewhere. A caller that sets ``store`` gets its choice.
    """
    body = dict(raw_body)
    body["model"] = model
    body.setdefault("store", False)
    if stream:
        body["stream"] = True
    else:
        body.pop("stream", None)
    return orjson.dumps(body)


def usage_to_canonical(usage: Any) -> dict[str, int]:
    """A Responses ``usage`` in Anthropic's terms (Anthropic's ``input_tokens`` excludes cache reads)."""
    usage = usage if isinstance(usage, Mapping) else {}
    details = usage.get("input_tokens_details")
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, Mapping) else 0
    return {"input_tokens": max(int(usage.get("input_tokens") or 0) - cached, 0),
            "output_tokens": int(usage.get("output_tokens") or 0),
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached}


def _stop_reason(response: Mapping[str, Any], content: list[dict[str, Any]]) -> str:
    details = response.get("incomplete_details")
    if isinstance(details, Mapping) and details.get("reason"):
        return _INCOMPLETE_TO_STOP.get(str(details["reason"]), "max_tokens")
    return "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"


def response_to_canonical(response: Mapping[str, Any]) -> dict[str, Any]:
    """A Response object as an Anthropic message (what byollm logs and charges; the caller gets the original)."""
    output = response.get("output")
    if not isinstance(output, list):
        raise ValueError("a response without output")
    content: list[dict[str, Any]] = []
    for item in output:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if isinstance(part, Mapping) and part.get("type") in ("output_text", "refusal"):
                    content.append({"type": "text", "text": str(part.get("text") or part.get("refusal") or "")})
        elif kind in ("function_call", "custom_tool_call"):
            content.append({"type": "tool_use", "id": str(item.get("call_id", "")), "name": str(item.get("name", "")),
                            "input": {"arguments": item.get("arguments", item.get("input", ""))}})
    return {"id": str(response.get("id", "")), "type": "message", "role": "assistant",
            "model": str(response.get("model", "")), "content": content,
            "stop_reason": _stop_reason(response, content), "stop_sequence": None,
            "usage": usage_to_canonical(response.get("usage"))}


class ResponsesFrames:
    """The canonical meaning of one upstream Responses stream's events, for accounting (see the module
    docstring). ``finished`` turns true at the final event; a stream that ends before it was cut short."""

    def __init__(self) -> None:
        self.finished = False

    def meaning(self, event: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        kind = str(event.get("type", ""))
        if kind == "response.output_text.delta":
            return "content_block_delta", {"type": "content_block_delta", "index": 0,
                                           "delta": {"type": "text_delta", "text": str(event.get("delta", ""))}}
        if kind in ("response.function_call_arguments.delta", "response.custom_tool_call_input.delta"):
            return "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
                "type": "input_json_delta", "partial_json": str(event.get("delta", ""))}}
        if kind == "response.created":
            return "message_start", {"type": "message_start", "message": {"usage": {}}}
        if kind in _FINAL:
            self.finished = True
            response = event.get("response") if isinstance(event.get("response"), Mapping) else {}
            assert isinstance(response, Mapping)
            message = response_to_canonical({"output": [], **response})
            return "message_delta", {"type": "message_delta", "usage": message["usage"],
                                     "delta": {"stop_reason": message["stop_reason"]}}
        return kind, {"type": kind}
