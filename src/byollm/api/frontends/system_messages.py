"""System messages inside ``messages``, folded into the conversation as Claude Code itself does for models that
do not take them.

Why: Anthropic's Messages API now accepts ``{"role": "system"}`` turns anywhere in ``messages`` (an instruction
that applies from that point on), and Claude Code 2.1 sends them when it believes the model is new enough
(its default, ``claude-opus-4-8``). The model that actually serves the request may be older (the family
mapping, an alias, a fallback) or reached through Bedrock, and both refuse such a turn. For those models
Claude Code writes the same text into the user turn as a ``<system-reminder>`` block; byollm does the same,
so the request means what the client meant on every route:

- system turns before the first user or assistant turn join the top-level ``system`` field;
- a later one is appended to the user turn before it, or else put at the start of the user turn after it
  (after any ``tool_result`` blocks, which must lead a turn), or else becomes a user turn of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["fold_system_messages", "has_system_messages"]


def has_system_messages(body: Mapping[str, Any]) -> bool:
    messages = body.get("messages")
    return isinstance(messages, list) and any(isinstance(m, dict) and m.get("role") == "system" for m in messages)


def _text_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [dict(b) for b in content if isinstance(b, dict) and b.get("type") == "text"]
    return []


def _reminder(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**b, "text": f"<system-reminder>\n{b.get('text', '')}\n</system-reminder>"} for b in blocks]


def _as_blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content) if isinstance(content, list) else []


def _lead_results(blocks: list[Any]) -> int:
    count = 0
    while count < len(blocks) and isinstance(blocks[count], dict) and blocks[count].get("type") == "tool_result":
        count += 1
    return count


def fold_system_messages(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with every ``system`` turn folded as the module docstring says (a new dict; ``body`` untouched)."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    leading: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []  # reminders waiting for the next user turn
    for message in messages:
        if message.get("role") == "system":
            blocks = _text_blocks(message.get("content"))
            if not out:
                leading.extend(blocks)
            elif out[-1].get("role") == "user":
                out[-1] = {**out[-1], "content": _as_blocks(out[-1].get("content")) + _reminder(blocks)}
            else:
                pending.extend(_reminder(blocks))
            continue
        if pending and message.get("role") == "user":
            content = _as_blocks(message.get("content"))
            at = _lead_results(content)
            message = {**message, "content": [*content[:at], *pending, *content[at:]]}
            pending = []
        elif pending:
            out.append({"role": "user", "content": pending})
            pending = []
        out.append(message)
    if pending:
        out.append({"role": "user", "content": pending})
    folded = {**body, "messages": out}
    if leading:
        system = body.get("system")
        folded["system"] = [*_text_blocks(system), *leading] if system else leading
    return folded
