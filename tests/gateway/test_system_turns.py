"""System turns inside ``messages`` (Claude Code 2.1 sends them for its newest models) reach upstreams that do not
take them as ``<system-reminder>`` text, as Claude Code writes them for such models; on both routes."""

from __future__ import annotations

import json

import pytest

from byollm.api.frontends.system_messages import fold_system_messages
from support.stack import Stack


@pytest.mark.parametrize("delegated", [True, False], ids=["bedrock", "direct"])
def test_a_system_turn_is_folded_into_the_user_turn(stack: Stack, delegated: bool) -> None:
    team = stack.new_team(credentialless_direct_allowed=not delegated)  # direct: served without an AWS session
    stack.clear_journal()
    r = stack.gateway(team.token, stack.delegated_headers() if delegated else None).post(
        "/v1/messages", json={"model": "claude-opus-4-8", "max_tokens": 50, "messages": [
            {"role": "user", "content": "hello"},
            {"role": "system", "content": "Tools available: Bash."}]})
    assert r.status_code == 200, r.text
    sent = [json.loads(e["body"]) for e in stack.journal() if e["method"] == "POST"]
    assert len(sent) == 1
    assert sent[0]["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "hello"},
        {"type": "text", "text": "<system-reminder>\nTools available: Bash.\n</system-reminder>"}]}]


def test_folding_keeps_tool_results_first_and_leading_turns_in_the_system_field() -> None:
    body = {"system": "base", "messages": [
        {"role": "system", "content": "first"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
        {"role": "system", "content": [{"type": "text", "text": "mid"}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
                                     {"type": "text", "text": "go on"}]},
        {"role": "assistant", "content": "done"},
        {"role": "system", "content": "last"}]}
    folded = fold_system_messages(body)
    assert folded["system"] == [{"type": "text", "text": "base"}, {"type": "text", "text": "first"}]
    roles = [m["role"] for m in folded["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    after_tool = folded["messages"][2]["content"]
    assert [b["type"] for b in after_tool] == ["tool_result", "text", "text"]
    assert after_tool[1]["text"] == "<system-reminder>\nmid\n</system-reminder>"
    assert folded["messages"][4]["content"][0]["text"] == "<system-reminder>\nlast\n</system-reminder>"
    assert body["messages"][0]["role"] == "system"  # the caller's body is left as it was
