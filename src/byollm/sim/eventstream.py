"""AWS event-stream ENCODER (``application/vnd.amazon.eventstream``). Decoding is botocore's job.

Frame: total length (u32 BE), headers length (u32 BE), CRC32 of those 8 bytes, headers, payload, CRC32 of
everything before it. A header is name length (u8), name, value type (u8), value; only the string type (7,
u16 length) is needed by Bedrock's streams. Header blocks for the frequent frames are precomputed.
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Iterable

import orjson

__all__ = ["chunk_frame", "encode_headers", "encode_message", "event_frame", "exception_frame"]

_STRING = 7


def encode_headers(headers: Iterable[tuple[str, str]]) -> bytes:
    """Encode string-valued headers in order."""
    out = bytearray()
    for name, value in headers:
        n = name.encode()
        v = value.encode()
        out += struct.pack(">B", len(n)) + n + struct.pack(">BH", _STRING, len(v)) + v
    return bytes(out)


def encode_message(header_block: bytes, payload: bytes) -> bytes:
    """One event-stream message from an already encoded header block and a payload."""
    total = 12 + len(header_block) + len(payload) + 4
    prelude = struct.pack(">II", total, len(header_block))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + header_block + payload
    return message + struct.pack(">I", zlib.crc32(message))


_CHUNK_HEADERS = encode_headers(
    [(":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")]
)


def chunk_frame(event: dict[str, object]) -> bytes:
    """An InvokeModelWithResponseStream ``chunk`` frame carrying one model streaming event."""
    payload = orjson.dumps({"bytes": base64.b64encode(orjson.dumps(event)).decode()})
    return encode_message(_CHUNK_HEADERS, payload)


def event_frame(event_type: str, payload: dict[str, object]) -> bytes:
    """A generic event frame, e.g. ConverseStream's ``contentBlockDelta``."""
    headers = encode_headers(
        [(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")]
    )
    return encode_message(headers, orjson.dumps(payload))


def exception_frame(exception_type: str, message: str) -> bytes:
    """A modelled mid-stream error, e.g. ``throttlingException``; botocore raises the matching class."""
    headers = encode_headers(
        [
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ]
    )
    return encode_message(headers, orjson.dumps({"message": message}))
