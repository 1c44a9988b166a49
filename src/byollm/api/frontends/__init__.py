"""Client API front ends: one module per API byollm answers in (see ``base.py`` for the concept)."""

from __future__ import annotations

from byollm.api.frontends.anthropic_messages import ANTHROPIC_MESSAGES
from byollm.api.frontends.base import ClientApi, ParsedRequest, RequestMeta
from byollm.api.frontends.openai_chat import OPENAI_CHAT

__all__ = ["ANTHROPIC_MESSAGES", "OPENAI_CHAT", "ClientApi", "ParsedRequest", "RequestMeta"]
