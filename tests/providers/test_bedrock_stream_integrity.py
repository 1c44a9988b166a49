"""A Bedrock stream that stops early is a failed attempt, never a silently short answer.

Why: the executor can still fail over or send an in-stream error only if the adapter says the stream broke.
A connection that closes cleanly after a frame, or in the middle of one, looks like the end of the body to the
HTTP client; only the missing ``message_stop`` event (or the partial frame) shows the answer is incomplete.
The upstream here is a real HTTP server on loopback that sends valid event-stream frames, then stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from byollm.errors import ByollmError, ErrorClass
from byollm.netguard import EgressGuard
from byollm.policy.types import BillingBucket, CredentialSource, Host, RouteCandidate
from byollm.providers.base import AwsAuth, CanonicalRequest, UpstreamCall
from byollm.providers.bedrock import BedrockProvider
from byollm.providers.http import HttpPool
from byollm.sim.eventstream import chunk_frame

EVENTS: list[dict[str, Any]] = [
    {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [],
                                          "model": "m", "stop_reason": None, "usage": {"input_tokens": 1,
                                                                                       "output_tokens": 0}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hello"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
    {"type": "message_stop"},
]
FRAMES = [chunk_frame(event) for event in EVENTS]


async def _upstream(body: bytes) -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"content-type": "application/vnd.amazon.eventstream"})
        await response.prepare(request)
        await response.write(body)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/model/{model}/invoke-with-response-stream", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _events(body: bytes) -> list[str]:
    pool = HttpPool(guard=EgressGuard(["127.0.0.0/8"]))
    try:
        async for base_url in _upstream(body):
            call = UpstreamCall(
                candidate=RouteCandidate(model="claude-haiku-4-5", host=Host.BEDROCK,
                                         upstream_model_id="anthropic.claude-haiku-4-5", region="us-east-1",
                                         credential=CredentialSource.DELEGATED_SESSION,
                                         billing=BillingBucket.CUSTOMER_CLOUD),
                request=CanonicalRequest(body={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
                                         stream=True, request_id="req-integrity"),
                auth=AwsAuth("ASIAEXAMPLEEXAMPLE01", "secret-not-real", "token-not-real"),
                base_url=base_url, timeout_s=5, read_timeout_s=5,
            )
            return [event.type async for event in BedrockProvider(pool).stream(call)]
    finally:
        await pool.close()
    raise AssertionError("unreachable")


async def test_a_complete_stream_is_read_to_message_stop() -> None:
    assert await _events(b"".join(FRAMES)) == [event["type"] for event in EVENTS]


@pytest.mark.parametrize("cut", ["between frames", "mid-frame"])
async def test_a_stream_that_stops_early_fails_as_upstream_unavailable(cut: str) -> None:
    body = b"".join(FRAMES[:3]) + (FRAMES[3][:7] if cut == "mid-frame" else b"")
    with pytest.raises(ByollmError) as raised:
        await _events(body)
    assert raised.value.error_class is ErrorClass.UPSTREAM_UNAVAILABLE
    assert "stream" in raised.value.detail


async def test_a_damaged_frame_fails_as_upstream_unavailable() -> None:
    damaged = bytearray(FRAMES[2])
    damaged[-6] ^= 0x20  # inside the payload: only the message checksum can tell
    with pytest.raises(ByollmError) as raised:
        await _events(b"".join(FRAMES[:2]) + bytes(damaged) + b"".join(FRAMES[3:]))
    assert raised.value.error_class is ErrorClass.UPSTREAM_UNAVAILABLE
