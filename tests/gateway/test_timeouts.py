"""A hanging upstream must not hold a request: the attempt times out and the next route serves it; the
whole request is bounded by its deadline. Also: a direct provider rejecting its key fails over."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.stack import Stack, running_stack

PROMPT = {"role": "user", "content": "hello"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(Path(tmp_path_factory.mktemp("timeouts")), attempt_timeout_s=1.0,
                       request_deadline_s=2.5) as s:
        yield s


@pytest.fixture(autouse=True)
def _clean(stack: Stack) -> Iterator[None]:
    stack.clear_faults()
    yield
    stack.clear_faults()


@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
def test_hanging_bedrock_fails_over_after_the_attempt_timeout(stack: Stack, streaming: bool) -> None:
    team = stack.new_team()
    stack.fault(service="bedrock", timeout=True, count=1)
    started = time.monotonic()
    r = stack.gateway(team.token, stack.delegated_headers()).post(
        "/v1/messages", json={"model": "claude-opus-4-7", "max_tokens": 20, "messages": [PROMPT],
                              "stream": streaming})
    elapsed = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert r.headers["x-byollm-route"] == "anthropic:claude-opus-4-7"
    assert 0.9 < elapsed < 2.5


def test_the_request_deadline_bounds_every_attempt_together(stack: Stack) -> None:
    team = stack.new_team({"claude-opus-4-7": {"bedrock": True, "direct": True}, "gpt-5": {"direct": True}},
                          fallback=["gpt-5"])
    for service in ("bedrock", "anthropic", "openai"):
        stack.fault(service=service, timeout=True, count=1)
    started = time.monotonic()
    r = stack.gateway(team.token, stack.delegated_headers()).post(
        "/v1/messages", json={"model": "claude-opus-4-7", "max_tokens": 20, "messages": [PROMPT]})
    elapsed = time.monotonic() - started
    assert r.status_code == 424, r.text
    assert elapsed < 3.5
    codes = [a["code"] for a in r.json()["error"]["byollm"]["context"]["attempts"]]
    assert codes[0] == "upstream_unavailable" and len(codes) >= 2


def test_direct_provider_rejecting_its_key_fails_over(stack: Stack) -> None:
    team = stack.new_team({"claude-opus-4-7": {"direct": True}, "gpt-5": {"direct": True}}, fallback=["gpt-5"])
    stack.fault(service="anthropic", error="authentication_error", status=401, count=1)
    r = stack.gateway(team.token).post(
        "/v1/messages", json={"model": "claude-opus-4-7", "max_tokens": 20, "messages": [PROMPT]})
    assert r.status_code == 200, r.text
    assert r.headers["x-byollm-route"] == "openai:gpt-5" and r.headers["x-byollm-fallbacks"] == "1"
    assert "[openai:" in r.json()["content"][0]["text"]
