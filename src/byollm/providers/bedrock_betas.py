"""Which ``anthropic-beta`` values and tool fields may reach Bedrock's InvokeModel for Claude.

Bedrock accepts only the ``anthropic_beta`` values its user guide lists for the Claude Messages API
("Anthropic Claude Messages API > Request and Response", parameter ``anthropic_beta``) and answers
HTTP 400 ValidationException "invalid beta flag" for any other value, failing the whole request. Clients
built for the Anthropic API (Claude Code above all) send many betas Bedrock does not know, most of them
hints about the client itself, so forwarding the header verbatim breaks them on every Bedrock route.

The choice made here, per value the caller sent:

- listed by AWS: forwarded in the body's ``anthropic_beta``. That includes values Bedrock offers only on some
  models (``context-1m-2025-08-07``); byollm does not guess per model, so a model that lacks the feature
  answers Bedrock's own 400 "invalid beta flag" (``classify_bedrock_error`` adds which betas were sent) and
  the caller learns the feature is unavailable instead of silently getting a smaller context window.
- a pure client hint (``CLIENT_HINT_PREFIXES``: it names the client or its transport and changes nothing the
  model computes): dropped silently, as AWS-compatible clients such as LiteLLM do.
- anything else (a feature Bedrock does not offer, e.g. ``mcp-servers-...``, ``structured-outputs-...``):
  dropped, and named in a warning on the ``byollm.providers.bedrock`` log with the request id, so an operator
  can see that a caller asked for a feature this route cannot serve. Refusing instead would break every
  Claude Code release that adds a beta; where the feature also needs a body field (``mcp_servers``,
  ``output_format``), Bedrock still refuses that field, which names the real problem.

Tool fields: Bedrock refuses ``defer_loading`` on a custom tool ("Extra inputs are not permitted",
anthropics/claude-code issue 82549). It is removed, which only makes a deferred tool load eagerly: the
model sees its full definition from the first turn, and the tool still works. No other tool field is
stripped, because no other refusal is confirmed. This module is byollm's own list, independent of the
simulator's (which must never be imported here).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["BEDROCK_BETAS", "CLIENT_HINT_PREFIXES", "STRIPPED_TOOL_FIELDS", "bedrock_tools", "loggable_betas",
           "split_betas"]

_BETA_NAME = re.compile(r"[a-z][a-z0-9-]{0,60}-(\d{8}|\d{4}-\d{2}-\d{2})")

# Source: Bedrock User Guide, model-parameters-anthropic-claude-messages-request-response.html, ``anthropic_beta``.
BEDROCK_BETAS = frozenset({
    "computer-use-2024-10-22",
    "computer-use-2025-01-24",
    "token-efficient-tools-2025-02-19",
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "dev-full-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "effort-2025-11-24",
    "tool-search-tool-2025-10-19",
    "tool-examples-2025-10-29",
})

# Betas that describe the client or how it reads the stream, not what the model does.
CLIENT_HINT_PREFIXES = (
    "claude-code-",                  # identifies Claude Code
    "oauth-",                        # claude.ai sign-in; byollm, not the client, authenticates to Bedrock
    "fine-grained-tool-streaming-",  # how tool input is chunked on the wire; the content is the same
)

STRIPPED_TOOL_FIELDS = ("defer_loading",)


def split_betas(requested: Iterable[str]) -> tuple[list[str], list[str], list[str]]:
    """``(forwarded, hints, unsupported)``: the requested betas (deduplicated, order kept) Bedrock accepts,
    the pure client hints dropped silently, and the other dropped betas worth a warning."""
    forwarded: list[str] = []
    hints: list[str] = []
    unsupported: list[str] = []
    for beta in requested:
        if beta in forwarded or beta in hints or beta in unsupported:
            continue
        if beta in BEDROCK_BETAS:
            forwarded.append(beta)
        elif beta.startswith(CLIENT_HINT_PREFIXES):
            hints.append(beta)
        else:
            unsupported.append(beta)
    return forwarded, hints, unsupported


def loggable_betas(betas: Iterable[str]) -> str:
    """The dropped betas for the log: names shaped like a beta (``feature-YYYY-MM-DD``) verbatim, anything
    else (a header is the caller's free text, and could carry a secret pasted by mistake) only counted."""
    names = list(betas)
    shown = [b for b in names if _BETA_NAME.fullmatch(b)]
    hidden = len(names) - len(shown)
    return ", ".join([*shown, *([f"{hidden} value(s) not shaped like a beta name"] if hidden else [])])


def bedrock_tools(tools: Any) -> Any:
    """``tools`` without the custom-tool fields Bedrock refuses (the same object when there are none)."""
    if not isinstance(tools, list) or not any(_needs_strip(tool) for tool in tools):
        return tools
    return [_stripped(tool) if _needs_strip(tool) else tool for tool in tools]


def _needs_strip(tool: Any) -> bool:
    return (isinstance(tool, Mapping) and tool.get("type", "custom") == "custom"
            and any(field in tool for field in STRIPPED_TOOL_FIELDS))


def _stripped(tool: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in tool.items() if k not in STRIPPED_TOOL_FIELDS}
