"""A request sent without Content-Length (chunked) is read by the body-size guard and replayed intact: the
gateway still streams the full answer (the replay must not look like a client disconnect)."""

from __future__ import annotations

from collections.abc import Iterator

from support.stack import Stack


def test_chunked_request_gets_a_complete_streamed_answer(stack: Stack) -> None:
    team = stack.new_team()

    def body() -> Iterator[bytes]:
        yield b'{"model": "claude-opus-4-7", "max_tokens": 100, "stream": true, '
        yield b'"messages": [{"role": "user", "content": "stream me something long enough"}]}'

    with stack.gateway(team.token, stack.delegated_headers()) as client, \
            client.stream("POST", "/v1/messages", content=body(), headers={"content-type": "application/json"}) as r:
        text = r.read().decode()
    assert r.status_code == 200, text
    assert "event: message_start" in text and "event: message_stop" in text
    assert r.headers["x-byollm-route"].startswith("bedrock:")
