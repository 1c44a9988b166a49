"""The event-stream encoder, checked by botocore's own decoder."""

from __future__ import annotations

import base64
import json

from botocore.eventstream import EventStreamBuffer

from byollm.sim.eventstream import chunk_frame, event_frame, exception_frame


def _decode(data: bytes) -> list[tuple[dict[str, object], bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return [(m.headers, m.payload) for m in buffer]


def test_chunk_frame_round_trips() -> None:
    event = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "héllo"}}
    [(headers, payload)] = _decode(chunk_frame(event))
    assert headers == {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    assert json.loads(base64.b64decode(json.loads(payload)["bytes"])) == event


def test_several_frames_in_one_buffer() -> None:
    data = event_frame("messageStart", {"role": "assistant"}) + exception_frame("throttlingException", "slow down")
    (h1, p1), (h2, p2) = _decode(data)
    assert h1[":event-type"] == "messageStart"
    assert json.loads(p1) == {"role": "assistant"}
    assert h2 == {
        ":exception-type": "throttlingException",
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    assert json.loads(p2) == {"message": "slow down"}
