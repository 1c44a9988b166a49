"""Run events as the run page describes them: sentences, names, and failures or degraded outcomes marked."""

from __future__ import annotations

from byollm.panel.run_events import describe


def test_failures_are_marked_and_carry_their_fix() -> None:
    failed = describe("route_failure", {"route": "bedrock:m", "code": "role_assumption_failed",
                                        "message": "AccessDenied", "remediation": "Fix the trust policy."})
    assert (failed.severity, failed.remediation) == ("fail", "Fix the trust policy.")
    assert ("error class", "role_assumption_failed") in failed.details
    assert describe("state", {"state": "failed", "code": "no_fallback_available"}).severity == "fail"
    assert describe("tool_result", {"name": "shell", "output": "boom", "is_error": True}).severity == "fail"
    assert describe("state", {"state": "succeeded"}).severity == "ok"


def test_a_degraded_outcome_is_a_warning_with_its_class_and_fix() -> None:
    event = describe("degraded", {"route": "bedrock:m", "code": "permission_denied", "served_route": "anthropic:m",
                                  "message": "served by anthropic:m, paid from AI credits, because bedrock:m failed",
                                  "remediation": "Grant bedrock:InvokeModel.", "credits": "0.5"})
    assert event.severity == "warn" and event.remediation == "Grant bedrock:InvokeModel."
    assert ("error class", "permission_denied") in event.details and ("served by", "anthropic:m") in event.details
    state = describe("state", {"state": "succeeded", "degraded": True})
    assert state.severity == "warn" and "degraded" in state.title


def test_people_are_named_and_nothing_is_raw_json_when_a_sentence_exists() -> None:
    prompt = describe("prompt", {"text": "hello", "by": "U" * 22}, {"U" * 22: "Ada Admin"})
    assert prompt.text == "hello" and ("by", "Ada Admin") in prompt.details
    call = describe("model_call", {"turn": 1, "route": "bedrock:x", "model": "haiku", "fallbacks": 1,
                                   "input_tokens": 5, "output_tokens": 2})
    assert call.severity == "warn" and "after 1 fallback)" in call.text and "{" not in call.text
    assert describe("credits", {"bucket": "platform", "credits": "1"}).text == "1 platform credit."


def test_a_model_call_after_a_fallback_names_each_reason() -> None:
    call = describe("model_call", {"turn": 1, "route": "anthropic:x", "model": "opus", "fallbacks": 1,
                                   "billing": "ai_credits", "credits": "0.2",
                                   "fallback_reasons": [{"route": "bedrock:x", "code": "role_assumption_failed"}]})
    assert call.severity == "warn"
    assert ("fallback because", "bedrock:x: role_assumption_failed") in call.details
    assert ("billing", "ai_credits") in call.details
