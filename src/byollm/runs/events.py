"""What a run reports: event kinds, and the scrubber every event and transcript passes through.

Why a scrubber on top of "we never put credentials there": a run's content is whatever the model, its
tools and the user wrote, and a shell tool can print an environment variable. So every event and every
transcript is passed through ``byollm.redact.redact_json`` (credential-named fields and every
credential shape byollm knows redacted) before it is written, and tool subprocesses never inherit byollm's
environment in the first place (``runs.tools``).

Event kinds (``data`` fields):

- ``state``: ``state`` (queued, running, succeeded, failed, cancelled), ``attempt``, and for a failure
  ``code``, ``message`` and ``remediation``;
- ``prompt`` / ``steer``: ``text``, ``by`` (the principal uid) - the user's messages;
- ``model_call``: ``turn``, ``route``, ``model``, ``fallbacks``, ``input_tokens``, ``output_tokens``,
  ``stop_reason``;
- ``route_failure``: ``route``, ``code``, ``message``, ``remediation`` - a route that failed (web-identity
  exchange failures included) before another served, or before the run failed;
- ``message``: ``text`` - the assistant's text;
- ``tool_call``: ``id``, ``name``, ``input``; ``tool_result``: ``id``, ``name``, ``output``, ``is_error``;
- ``web_identity_failure``: ``code``, ``message``, ``remediation`` - a failed STS exchange, once per
  exchange (the broker backs off before trying again);
- ``cancel_requested``: ``by``;
- ``credits``: ``bucket``, ``credits``, ``key`` - a platform or compute charge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from byollm.redact import redact_json

__all__ = ["EVENT_KINDS", "clean", "clean_messages"]

EVENT_KINDS = frozenset({
    "state", "prompt", "steer", "model_call", "route_failure", "message", "tool_call", "tool_result",
    "cancel_requested", "credits", "web_identity_failure", "degraded",
})


def clean(data: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe, credential-free copy of ``data`` (values JSON cannot hold become their type name)."""
    try:
        scrubbed, _ = redact_json(data)
    except (TypeError, RecursionError):
        scrubbed, _ = redact_json({k: v if isinstance(v, (str, int, float, bool, type(None))) else
                                     f"<{type(v).__name__}>" for k, v in data.items()})
    return scrubbed


def clean_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A credential-free copy of a transcript (the model still saw the original in memory)."""
    return list(clean({"messages": list(messages)})["messages"])
