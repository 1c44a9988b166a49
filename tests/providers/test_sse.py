"""The SSE parser and encoder: framing rules, and any chunking of a stream parsing to the same messages."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byollm.providers.sse import SseMessage, encode_sse, iter_sse


async def _chunks(parts: Sequence[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def parse(parts: Sequence[bytes]) -> list[SseMessage]:
    async def run() -> list[SseMessage]:
        return [m async for m in iter_sse(_chunks(parts))]

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"data: hello\n\n", [SseMessage(None, b"hello")]),
        (b"event: ping\ndata: {}\n\n", [SseMessage("ping", b"{}")]),
        (b"event: a\r\ndata: 1\r\n\r\n", [SseMessage("a", b"1")]),
        (b"event: a\rdata: 1\r\r", [SseMessage("a", b"1")]),
        (b"data: line one\ndata: line two\n\n", [SseMessage(None, b"line one\nline two")]),
        (b": comment\ndata: x\n\n", [SseMessage(None, b"x")]),
        (b": keep-alive\n\n", []),
        (b"event: only-a-name\n\n", []),
        (b"data:no-space\n\n", [SseMessage(None, b"no-space")]),
        (b"data:  two spaces\n\n", [SseMessage(None, b" two spaces")]),
        (b"data\n\n", [SseMessage(None, b"")]),
        (b"data:\n\n", [SseMessage(None, b"")]),
        (b"id: 7\nretry: 100\ndata: x\nunknown: y\n\n", [SseMessage(None, b"x")]),
        (b"\xef\xbb\xbfdata: bom\n\n", [SseMessage(None, b"bom")]),
        (b"\n\n\ndata: a\n\n\n\ndata: b\n\n", [SseMessage(None, b"a"), SseMessage(None, b"b")]),
        (b"data: complete\n\ndata: cut off", [SseMessage(None, b"complete")]),
        (b"data: ends with cr\n\r", [SseMessage(None, b"ends with cr")]),
        (b"data: {\"a\": \"x:y\"}\n\n", [SseMessage(None, b'{"a": "x:y"}')]),
    ],
)
def test_framing(stream: bytes, expected: list[SseMessage]) -> None:
    assert parse([stream]) == expected
    assert parse([bytes([b]) for b in stream]) == expected  # one byte at a time


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    assert parse([b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"]) == [SseMessage(None, b"a"), SseMessage(None, b"b")]


def test_empty_chunks_are_ignored() -> None:
    assert parse([b"", b"data: a\n", b"", b"\n"]) == [SseMessage(None, b"a")]


def test_encode_single_and_multi_line() -> None:
    assert encode_sse("message_stop", b'{"type":"message_stop"}') == (
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    assert encode_sse(None, b"[DONE]") == b"data: [DONE]\n\n"
    assert encode_sse(None, b"a\nb\r\nc") == b"data: a\ndata: b\ndata: c\n\n"
    with pytest.raises(ValueError, match="line break"):
        encode_sse("bad\nevent: forged", b"x")


_names = st.none() | st.text(st.characters(whitelist_categories=("L", "N"), whitelist_characters="_-"), min_size=1,
                                  max_size=12)
_data = st.binary(max_size=40).filter(lambda b: b"\r" not in b)
_messages = st.lists(st.tuples(_names, _data), max_size=8)


@st.composite
def _chunking(draw: st.DrawFn, stream: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=300, deadline=None)
@given(messages=_messages, line_end=st.sampled_from([b"\n", b"\r\n", b"\r"]), data=st.data())
def test_any_chunking_parses_to_the_encoded_messages(
    messages: list[tuple[str | None, bytes]], line_end: bytes, data: st.DataObject
) -> None:
    stream = b"".join(encode_sse(name, payload) for name, payload in messages).replace(b"\n", line_end)
    expected = [SseMessage(name, payload) for name, payload in messages]
    assert parse([stream]) == expected
    assert parse(data.draw(_chunking(stream))) == expected
