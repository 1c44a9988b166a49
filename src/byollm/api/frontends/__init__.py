"""Client API front ends: one module per client API byollm answers in (parse, render, render a stream,
render an error); the concept is in ``base.py``."""

from __future__ import annotations

from byollm.api.frontends.anthropic_messages import ANTHROPIC_MESSAGES
from byollm.api.frontends.base import ClientApi, ParsedRequest, RequestMeta
from byollm.api.frontends.openai_chat import OPENAI_CHAT
from byollm.api.frontends.openai_responses import OPENAI_RESPONSES

__all__ = ["ANTHROPIC_MESSAGES", "OPENAI_CHAT", "OPENAI_RESPONSES", "ClientApi", "ParsedRequest", "RequestMeta"]
