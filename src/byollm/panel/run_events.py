"""A run's events as an admin reads them: a title, one plain sentence, a severity and a few labelled
details, instead of each event's raw JSON.

Why here and once: the run page renders the events it has at load time (no JS needed) and its script
appends the live ones from the events stream; both use this one description (the stream carries it next to
the event), so a failure looks the same, highlighted, whichever way it arrived.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from byollm.panel.charts import credits_text

__all__ = ["EventView", "describe"]

FAILED_STATES = frozenset({"failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class EventView:
    title: str
    text: str
    severity: str = "info"  # info, ok, warn (a fallback, a degraded outcome) or fail
    details: list[tuple[str, str]] = field(default_factory=list)
    remediation: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: Any, limit: int = 2000) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def _credits(value: Any) -> str:
    try:
        return credits_text(str(value))
    except ArithmeticError:  # not a number: shown as it came
        return _text(value)


def _who(data: Mapping[str, Any], names: Mapping[str, str]) -> str:
    by = str(data.get("by") or "")
    return names.get(by, by or "someone")


def describe(kind: str, data: Mapping[str, Any], names: Mapping[str, str] | None = None) -> EventView:
    """One event, readable; unknown kinds fall back to their fields, never to nothing."""
    names = names or {}
    if kind == "state":
        state = str(data.get("state", "?"))
        degraded = bool(data.get("degraded"))
        severity = "fail" if state == "failed" else "warn" if degraded or state == "cancelled" else \
            "ok" if state == "succeeded" else "info"
        text = {"queued": "Queued, waiting for a worker.", "running": "A worker started the run.",
                "succeeded": "The run finished.", "failed": "The run failed.",
                "cancelled": "The run was cancelled."}.get(state, f"Now {state}.")
        if degraded:
            text = "The run finished, but only on a paid fallback after a BYOLLM failure (degraded)."
        if data.get("reason"):
            text += f" Why: {data['reason']}."
        details = [("attempt", str(data["attempt"]))] if data.get("attempt") else []
        if data.get("code"):
            details.append(("error class", str(data["code"])))
        if data.get("message"):
            details.append(("detail", _text(data["message"])))
        for key in ("failure_class", "fallback_reason"):
            if data.get(key):
                details.append((key.replace("_", " "), _text(data[key])))
        return EventView(f"State: {state}" + (" (degraded)" if degraded else ""), text, severity, details,
                         str(data.get("remediation") or ""))
    if kind == "prompt":
        return EventView("Prompt", _text(data.get("text", "")), details=[("by", _who(data, names))])
    if kind == "steer":
        return EventView("Steering message", _text(data.get("text", "")), details=[("by", _who(data, names))])
    if kind == "cancel_requested":
        return EventView("Cancellation requested", f"{_who(data, names)} asked to cancel the run.", "warn")
    if kind == "model_call":
        fallbacks = int(data.get("fallbacks") or 0)
        route = str(data.get("route", ""))
        text = (f"Turn {data.get('turn', '?')}: {data.get('model', '?')} answered through {route.split(':')[0]}"
                f" ({data.get('input_tokens', 0)} tokens in, {data.get('output_tokens', 0)} out")
        text += f", after {fallbacks} fallback{'s' if fallbacks != 1 else ''})." if fallbacks else ")."
        details = [("route", route), ("stop reason", str(data.get("stop_reason") or ""))]
        for key in ("assumed_role_arn", "billing", "credits"):
            if data.get(key):
                details.append((key.replace("_", " "), _credits(data[key]) if key == "credits" else _text(data[key])))
        reasons = data.get("fallback_reasons") or []
        for reason in reasons if isinstance(reasons, list) else []:
            if isinstance(reason, dict):
                details.append(("fallback because", f"{reason.get('route', '?')}: {reason.get('code', '?')}"))
        return EventView("Model call", text, "warn" if fallbacks or reasons else "info", details)
    if kind == "route_failure":
        return EventView("Route failed", f"{data.get('route', '?')} failed: {_text(data.get('message', ''))}",
                         "fail", [("error class", str(data.get("code", "")))], str(data.get("remediation") or ""))
    if kind == "degraded":
        details = [(label, _text(data[key])) for key, label in
                   (("code", "error class"), ("route", "failed route"), ("served_route", "served by"))
                   if data.get(key)]
        if data.get("credits"):
            details.append(("AI credits", _credits(data["credits"])))
        return EventView("Degraded: paid fallback after a BYOLLM failure",
                         _text(data.get("message") or f"{data.get('route', '?')} failed; a paid route served"), "warn",
                         details, str(data.get("remediation") or ""))
    if kind == "web_identity_failure":
        return EventView("AWS role assumption failed", _text(data.get("message", "")), "fail",
                         [("error class", str(data.get("code", "")))], str(data.get("remediation") or ""))
    if kind == "message":
        return EventView("Assistant", _text(data.get("text", "")))
    if kind == "tool_call":
        return EventView(f"Tool call: {data.get('name', '?')}", _text(data.get("input", {})))
    if kind == "tool_result":
        failed = bool(data.get("is_error"))
        return EventView(f"Tool result: {data.get('name', '?')}" + (" (error)" if failed else ""),
                         _text(data.get("output", "")), "fail" if failed else "info")
    if kind == "credits":
        bucket = {"platform": "platform", "compute": "compute", "ai_credits": "AI"}.get(str(data.get("bucket")),
                                                                                        str(data.get("bucket")))
        amount = str(data.get("credits", "?"))
        return EventView("Credits charged", f"{amount} {bucket} credit{'' if amount == '1' else 's'}.")
    return EventView(kind.replace("_", " ").capitalize(), _text(dict(data)),
                     "fail" if data.get("code") else "info", [], str(data.get("remediation") or ""))
