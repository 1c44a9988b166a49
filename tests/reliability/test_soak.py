"""A bounded soak in CI: ``bench/soak.py``'s own functions against a real ``byollm serve`` and ``byollm sim``.

Why drive the script rather than re-implement it: the checks that decide whether a 50,000-request soak
passes (what an unexpected answer is, whether a request-log row is missing or disagrees) are tested here on
every run, so the benchmark cannot silently rot. Bounded: 2,000 requests at concurrency 32 with 5% injected
Bedrock faults (and 2% on the direct-Anthropic fallback), then 20 concurrent streams of about 3 s.
Memory is reported by the script but not asserted here (timing and memory targets live in the bench script).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load_soak() -> ModuleType:
    if "soak" in sys.modules:
        return sys.modules["soak"]
    spec = importlib.util.spec_from_file_location("soak", BENCH / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


soak = _load_soak()


class _Headers(dict[str, str]):
    """Case-insensitive enough for ``classify`` (it asks for lower-case names)."""


def _headers(**values: str) -> _Headers:
    return _Headers({k.replace("_", "-"): v for k, v in values.items()})


def _error_body(code: str, attempts: list[tuple[str, str]]) -> bytes:
    context = {"attempts": [{"route": route, "code": c} for route, c in attempts]}
    return json.dumps({"type": "error", "error": {"type": "api_error", "message": "m",
                                                   "byollm": {"code": code, "context": context}}}).encode()


def test_classify_tells_expected_answers_from_unexpected_ones() -> None:
    """The judge itself: only a transient failure of every route is an expected error answer."""
    both = [("bedrock:us.anthropic.claude-haiku-4-5", "quota_exceeded"),
            ("anthropic:claude-haiku-4-5", "upstream_unavailable")]
    no_route = _headers(x_request_id="req_1", x_byollm_error_code="no_fallback_available")
    assert soak.classify("anthropic", 424, no_route, _error_body("no_fallback_available", both), True)[0] \
        == soak.NO_ROUTE
    # the same answer is unexpected when the fallback was never faulted, or when one route failed for good
    assert soak.classify("anthropic", 424, no_route, _error_body("no_fallback_available", both), False)[0] \
        .startswith("unexpected")
    one_route = [both[0]]
    assert soak.classify("anthropic", 424, no_route, _error_body("no_fallback_available", one_route), True)[0] \
        .startswith("unexpected")
    internal = _headers(x_request_id="req_2", x_byollm_error_code="internal_error")
    assert soak.classify("openai", 500, internal, _error_body("internal_error", []), True)[0] \
        == "unexpected: HTTP 500 internal_error"
    assert soak.classify("openai", 503, _headers(x_request_id="req_3"), b"<html>", True)[0].startswith("unexpected")
    # a 200 must say where it was served, and a stream must end properly
    served = _headers(x_request_id="req_4", x_byollm_route="bedrock:x", x_byollm_fallbacks="0")
    assert soak.classify("anthropic", 200, served, b'{"content": [{"type": "text"}]}', True)[0] == soak.OK
    assert soak.classify("anthropic", 200, _headers(x_request_id="req_5", x_byollm_route="anthropic:x",
                                                    x_byollm_fallbacks="0"), b'{"content": [1]}', True)[0] \
        .startswith("unexpected")
    cut = b"event: message_start\ndata: {}\n\nevent: content_block_delta\ndata: {}\n\n"
    assert soak.classify("anthropic-stream", 200, served, cut, True)[0].startswith("unexpected: stream not intact")
    error = (b'event: content_block_delta\ndata: {}\n\nevent: error\ndata: {"type": "error", "error": {"byollm":'
             b' {"code": "upstream_unavailable"}}}\n\n')
    assert soak.classify("anthropic-stream", 200, served, error, True) == (soak.STREAM_ERROR, "upstream_unavailable")
    done = b'data: {"choices": [{"finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'
    assert soak.classify("openai-stream", 200, served, done, True)[0] == soak.OK
    assert soak.classify("openai-stream", 200, served, done.replace(b"[DONE]", b"{}"), True)[0] \
        .startswith("unexpected")


def test_compare_rows_finds_missing_and_disagreeing_rows() -> None:
    answers = [soak.Answer("anthropic", 200, "req_a", "bedrock:x", 0, soak.OK),
               soak.Answer("anthropic", 200, "req_b", "anthropic:x", 1, soak.FAILOVER),
               soak.Answer("anthropic-stream", 200, "req_c", "bedrock:x", 0, soak.STREAM_ERROR,
                           "upstream_unavailable")]
    rows: dict[str, dict[str, Any]] = {
        "req_a": {"status": 200, "error_code": None, "attempts": 1},
        "req_b": {"status": 200, "error_code": None, "attempts": 1},  # one attempt where two were made
    }
    missing, disagree, examples = soak.compare_rows(answers, rows)
    assert (missing, disagree) == (1, 1), examples
    rows["req_b"]["attempts"] = 2
    rows["req_c"] = {"status": 503, "error_code": "upstream_unavailable", "attempts": 1}
    assert soak.compare_rows(answers, rows)[:2] == (0, 0)


def test_fault_rules_hit_about_the_requested_share() -> None:
    rules = soak.fault_rules(0.05, 0.02)
    plain = 1.0
    stream = 1.0
    for rule in rules:
        if rule["service"] != "bedrock":
            continue
        stream *= 1 - rule["rate"]
        if "after_events" not in rule:
            plain *= 1 - rule["rate"]
    share = ((1 - plain) + (1 - stream)) / 2  # half the requests stream
    assert share == pytest.approx(0.05, rel=0.05)
    assert {r["service"] for r in rules} == {"bedrock", "anthropic"}
    assert soak.fault_rules(0, 0) == []


def test_bounded_soak_loses_no_row_and_answers_only_as_expected(tmp_path: Path) -> None:
    cfg = soak.Config(requests=2000, concurrency=32, fault_rate=0.05, fallback_fault_rate=0.02, streams=20,
                      stream_seconds=3.0, enforce_rss=False)
    report = soak.run(cfg, log_dir=tmp_path)
    summary = json.dumps(report.to_json(), indent=1)
    assert report.error is None, summary
    load, streams = report.load, report.streams
    # every request answered, nothing unexpected (no 5xx at all: every fault had a fallback or was expected)
    assert load["answered"] == 2000, summary
    assert load["unexpected"] == 0, summary
    assert load["unexpected_5xx"] == 0, summary
    # the faults really happened and were survived: failovers and late in-stream errors both occurred
    assert load["outcomes"].get(soak.FAILOVER, 0) > 20, summary
    assert load["outcomes"].get(soak.STREAM_ERROR, 0) > 0, summary
    # no request-log row lost, none disagrees with what the client saw
    assert load["rows_api"] == 2000, summary
    assert load["rows_missing"] == 0 and load["rows_disagreeing"] == 0, summary
    # concurrent long streams: all open at once, all intact, all logged
    assert streams["all_open_at_once"], summary
    assert streams["intact"] == 20, summary
    assert streams["duration_min_s"] >= 2.0, summary  # the simulator really slowed them
    assert streams["rows_api"] == 20 and streams["rows_missing"] == 0 and streams["rows_disagreeing"] == 0, summary
    # every other check of the script passes too, "every stream served by Bedrock" included (three streams of
    # 200 once failed over with no fault injected: the simulator closed idle pooled connections after uvicorn's
    # 5 s as the gateway reused them; both servers now keep idle connections 75 s)
    failed = [c for c in report.checks if c.ok is False]
    assert not failed, summary
    assert "0 error lines" in " ".join(report.notes), summary
