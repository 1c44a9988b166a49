"""Helpers for the provider tests (imported as ``providers.provider_support``): rebuild a message from its
stream events the way the official SDK accumulates them, and a common tool."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

import httpx
import pytest

from byollm.errors import ByollmError
from byollm.providers.base import Provider, UpstreamCall

__all__ = ["WEATHER_TOOL", "CallFactory", "accumulate", "add_fault", "collect_failure", "journal"]

CallFactory = Callable[..., UpstreamCall]

WEATHER_TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def accumulate(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The message a stream of Anthropic events describes (tool inputs parsed from their JSON deltas).

    Checks the event grammar on the way: one message_start first, blocks opened before their deltas and
    closed once, message_stop last.
    """
    message: dict[str, Any] | None = None
    partial: dict[int, str] = {}
    open_blocks: set[int] = set()
    stopped = False
    for event in events:
        assert not stopped, "event after message_stop"
        kind = event["type"]
        if kind == "message_start":
            assert message is None, "second message_start"
            message = json.loads(json.dumps(event["message"]))
            continue
        assert message is not None, f"{kind} before message_start"
        if kind == "content_block_start":
            index = event["index"]
            assert index == len(message["content"]), "blocks must open in order"
            message["content"].append(dict(event["content_block"]))
            open_blocks.add(index)
            if event["content_block"]["type"] == "tool_use":
                partial[index] = ""
        elif kind == "content_block_delta":
            index = event["index"]
            assert index in open_blocks, "delta for a block that is not open"
            delta = event["delta"]
            if delta["type"] == "text_delta":
                message["content"][index]["text"] += delta["text"]
            elif delta["type"] == "input_json_delta":
                partial[index] += delta["partial_json"]
        elif kind == "content_block_stop":
            open_blocks.remove(event["index"])
        elif kind == "message_delta":
            message["stop_reason"] = event["delta"].get("stop_reason")
            message["stop_sequence"] = event["delta"].get("stop_sequence")
            for key, value in (event.get("usage") or {}).items():
                if value is not None:
                    message["usage"][key] = value
        elif kind == "message_stop":
            stopped = True
    assert message is not None and stopped, "stream did not end with message_stop"
    assert not open_blocks, "blocks left open"
    for index, text in partial.items():
        message["content"][index]["input"] = json.loads(text) if text else {}
    return message


async def add_fault(admin: httpx.AsyncClient, **rule: Any) -> None:
    """Add a fault rule through the simulator's admin API (``POST /_sim/faults``)."""
    (await admin.post("/faults", json=rule)).raise_for_status()


async def journal(admin: httpx.AsyncClient, service: str) -> list[dict[str, Any]]:
    """What the simulator received for ``service`` (``GET /_sim/requests``), oldest first."""
    response = await admin.get("/requests", params={"service": service})
    response.raise_for_status()
    requests: list[dict[str, Any]] = response.json()["requests"]
    return requests


async def collect_failure(provider: Provider, call: UpstreamCall, *, stream: bool) -> tuple[ByollmError, list[str]]:
    """Run one attempt that must fail; returns the error and the types of the events seen before it."""
    seen: list[str] = []

    async def run() -> None:
        if stream:
            events: AsyncIterator[Any] = provider.stream(call)
            async for event in events:
                seen.append(event.type)
        else:
            await provider.complete(call)

    attempt: Awaitable[None] = run()
    with pytest.raises(ByollmError) as caught:
        await attempt
    return caught.value, seen
