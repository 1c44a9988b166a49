"""Fault rules: matching, counting, deterministic rates, validation."""

from __future__ import annotations

import pytest

from byollm.sim.faults import FaultBook, parse_rule


def test_count_is_consumed() -> None:
    book = FaultBook([{"service": "bedrock", "error": "ThrottlingException", "count": 2}])
    assert book.take("bedrock") is not None
    assert book.take("anthropic") is None
    assert book.take("bedrock") is not None
    assert book.take("bedrock") is None
    assert book.rules() == []


def test_model_and_principal_globs() -> None:
    book = FaultBook(
        [{"service": "*", "error": "overloaded_error", "status": 529, "model": "claude-opus*", "principal": "*team*"}]
    )
    assert book.take("anthropic", model="claude-haiku-4-5") is None
    assert book.take("anthropic", model="claude-opus-4-7") is None  # no principal
    fault = book.take("anthropic", model="claude-opus-4-7", principal="arn:aws:sts::1:assumed-role/byollm-team/x")
    assert fault is not None
    assert (fault.error, fault.status) == ("overloaded_error", 529)


def test_mid_stream_rules_skip_plain_calls() -> None:
    book = FaultBook([{"service": "bedrock", "error": "ThrottlingException", "after_events": 2}])
    assert book.take("bedrock", streaming=False) is None
    fault = book.take("bedrock", streaming=True)
    assert fault is not None
    assert fault.after_events == 2


def test_rate_is_deterministic_under_a_seed() -> None:
    def run(seed: int) -> list[bool]:
        book = FaultBook([{"service": "openai", "error": "rate_limit_exceeded", "rate": 0.3}], seed=seed)
        return [book.take("openai") is not None for _ in range(200)]

    first = run(42)
    assert first == run(42)
    assert 30 < sum(first) < 90
    assert first != run(43)


def test_transport_only_faults() -> None:
    fault = FaultBook([{"service": "google", "timeout": True}]).take("google")
    assert fault is not None
    assert fault.is_transport_only
    assert fault.timeout


@pytest.mark.parametrize(
    "data",
    [
        {"service": "mars", "error": "x"},
        {"service": "bedrock"},
        {"service": "bedrock", "error": "x", "rate": 2},
        {"service": "bedrock", "error": "x", "count": -1},
        {"service": "bedrock", "error": "x", "colour": "red"},
    ],
)
def test_invalid_rules(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="fault"):
        parse_rule(data, "f1")
