"""Server-sent events: the one parser for upstream streams and the one encoder for every stream byollm sends.

Why one module: the Anthropic, OpenAI and Gemini streams all arrive as SSE, and the gateway answers in SSE
on both of its APIs. Getting the framing right once (CRLF, LF or lone CR line ends, ``data:`` spread over
several lines, ``:`` comments, a byte-order mark, frames split anywhere across network chunks) means no
adapter carries its own half-parser.

Speed: the parser never looks at single bytes in Python. Each network chunk has its line ends normalised
with ``bytes.replace`` and is cut into frames with ``bytes.find``; only the few lines of a complete frame
are split. Data stays ``bytes`` so the Anthropic pass-through path can forward it without decoding.

Example::

    async for message in iter_sse(response.content.iter_any()):
        payload = orjson.loads(message.data)
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass

__all__ = ["SseMessage", "encode_sse", "iter_sse"]

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SseMessage:
    """One dispatched event: its ``event:`` name (None when the frame named none) and its data lines
    joined with ``\\n`` (the final line end removed, as the SSE specification says)."""

    event: str | None
    data: bytes


def _parse_frame(frame: bytes) -> SseMessage | None:
    """One frame (lines separated by ``\\n``, no blank line inside) to a message, or None when the frame
    carries no ``data`` field (comments, a lone ``event:``, ``id:``/``retry:`` only): the specification
    dispatches nothing for those."""
    if frame.startswith(b"data: ") and b"\n" not in frame:  # the common case: a single data line
        return SseMessage(None, frame[6:])
    event: str | None = None
    data: list[bytes] = []
    for line in frame.split(b"\n"):
        if not line or line[0] == 0x3A:  # empty or ":" comment
            continue
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace") or None
        # "id" and "retry" are legal and unused by model APIs; unknown fields are ignored, as specified.
    if not data:
        return None
    return SseMessage(event, data[0] if len(data) == 1 else b"\n".join(data))


def _split(buffer: bytes) -> tuple[list[SseMessage], bytes]:
    """Cut every complete frame off the front of ``buffer`` (line ends already ``\\n``)."""
    messages: list[SseMessage] = []
    start = 0
    while True:
        end = buffer.find(b"\n\n", start)
        if end < 0:
            break
        if end > start:
            message = _parse_frame(buffer[start:end])
            if message is not None:
                messages.append(message)
        start = end + 2
    rest = buffer[start:] if start else buffer
    # Blank lines between frames leave a leading "\n" behind; it ends nothing, so drop it now lest
    # "\n" + "\n..." look like a frame end later.
    if rest[:1] == b"\n":
        rest = rest.lstrip(b"\n")
    return messages, rest


async def iter_sse(chunks: AsyncIterable[bytes]) -> AsyncGenerator[SseMessage, None]:
    """Parse an SSE byte stream, chunked any way, into messages in order.

    A frame still incomplete when the stream ends is dropped (the specification's rule: an unterminated
    event was not delivered); the adapters notice the missing end-of-stream event and fail the attempt.
    """
    buffer = b""
    held_cr = False  # a chunk ended in "\r": it may be half of a "\r\n" split across chunks
    first = True
    async for chunk in chunks:
        if not chunk:
            continue
        if held_cr:
            chunk = b"\r" + chunk
            held_cr = False
        if chunk[-1] == 0x0D:
            chunk = chunk[:-1]
            held_cr = True
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = buffer + chunk if buffer else chunk
        if first:
            if len(buffer) < len(_BOM) and _BOM.startswith(buffer):
                continue
            first = False
            if buffer.startswith(_BOM):
                buffer = buffer[len(_BOM) :]
        if b"\n\n" not in buffer:
            if buffer[:1] == b"\n":
                buffer = buffer.lstrip(b"\n")
            continue
        messages, buffer = _split(buffer)
        for message in messages:
            yield message
    if held_cr:  # a lone "\r" was the stream's last byte: it was a line end after all
        messages, buffer = _split(buffer + b"\n")
        for message in messages:
            yield message
    # Whatever is left is an unterminated frame: dropped.


def encode_sse(event: str | None, data: bytes) -> bytes:
    """One SSE frame: ``event: <name>`` (when given) and ``data:`` line(s), ending in a blank line.

    Multi-line ``data`` is split into one ``data:`` line per line so the receiver rebuilds it exactly.
    An event name with a line break would forge frames, so it is refused.
    """
    if b"\n" in data or b"\r" in data:
        lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        body = b"".join(b"data: " + line + b"\n" for line in lines)
    else:
        body = b"data: " + data + b"\n"
    if event is None:
        return body + b"\n"
    if "\n" in event or "\r" in event:
        raise ValueError("an SSE event name cannot contain a line break")
    return b"event: " + event.encode() + b"\n" + body + b"\n"
