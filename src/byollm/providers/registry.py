"""The one place that maps a host to its adapter. Nothing else branches on the provider's name."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from byollm.policy.types import Host
from byollm.providers.anthropic_direct import AnthropicDirect
from byollm.providers.base import Provider
from byollm.providers.bedrock import BedrockProvider
from byollm.providers.google_direct import GoogleDirect
from byollm.providers.http import HttpPool
from byollm.providers.openai_direct import OpenAIDirect

__all__ = ["build_providers"]


def build_providers(pool: HttpPool) -> Mapping[Host, Provider]:
    """One adapter per host, sharing the process's connection pool."""
    return MappingProxyType({
        Host.BEDROCK: BedrockProvider(pool),
        Host.ANTHROPIC: AnthropicDirect(pool),
        Host.OPENAI: OpenAIDirect(pool),
        Host.GOOGLE: GoogleDirect(pool),
    })
