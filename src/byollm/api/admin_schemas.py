"""Validated inputs of the admin API. Outputs are the control plane's view dataclasses.

Only shape and bounds are checked here; meaning (is this a valid role ARN, an enabled model, a real
region?) is checked by the control service with the pure validators, so the CLI and the panel get the same
answers.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from byollm.policy.types import Role

__all__ = [
    "AgentCreate",
    "AgentUpdate",
    "BedrockUpdate",
    "MemberInvite",
    "MemberUpdate",
    "ModelRoutingIn",
    "PolicyUpdate",
    "ProviderKeyIn",
    "SettingsUpdate",
    "TeamCreate",
    "TokenCreate",
]

# the largest integer every JSON client reads exactly; far inside the store's 64-bit columns (an unbounded
# credit amount overflowed SQLite's INTEGER and answered 500: found by tests/fuzz)
_MAX_CREDITS = 2**53 - 1


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TeamCreate(_In):
    name: str = Field(min_length=1, max_length=100)


class MemberInvite(_In):
    email: str = Field(max_length=254)  # its meaning is checked by the control service, for every caller
    display_name: str | None = Field(default=None, max_length=100)
    role: Role = Role.MEMBER


class MemberUpdate(_In):
    role: Role


class AgentCreate(_In):
    name: str = Field(min_length=1, max_length=100)
    role_arn_override: str | None = Field(default=None, max_length=2048)
    default_model: str | None = Field(default=None, max_length=200)
    tools: list[str] = Field(default_factory=list, max_length=50)


class AgentUpdate(_In):
    """Fields left out stay as they are; an explicit ``null`` clears an optional field."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    role_arn_override: str | None = Field(default=None, max_length=2048)
    default_model: str | None = Field(default=None, max_length=200)
    tools: list[str] | None = Field(default=None, max_length=50)


class ModelRoutingIn(_In):
    bedrock: bool = False
    inference_profile: str | None = Field(default=None, max_length=2048)
    direct: bool = False


class AliasIn(_In):
    """Requests for ``pattern`` (``*`` and ``?`` are wildcards) are served as the catalog model ``target``."""

    pattern: str = Field(min_length=1, max_length=200)
    target: str = Field(min_length=1, max_length=200)


class PolicyUpdate(_In):
    """Fields left out stay as they are. ``models`` replaces the routing of the models it names only;
    ``aliases`` replaces the whole alias list (first match wins)."""

    direct_api_disabled: bool | None = None
    fallback_order: list[str] | None = Field(default=None, max_length=50)
    models: dict[str, ModelRoutingIn] | None = None
    aliases: list[AliasIn] | None = Field(default=None, max_length=100)


class SettingsUpdate(_In):
    byok_allowed: bool | None = None
    long_term_keys_allowed: bool | None = None
    retain_request_content: bool | None = None
    transcript_retention_days: int | None = Field(default=None, ge=0, le=3650)
    monthly_ai_credits: int | None = Field(default=None, ge=0, le=_MAX_CREDITS)
    platform_credits: int | None = Field(default=None, ge=0, le=_MAX_CREDITS)
    compute_credits: int | None = Field(default=None, ge=0, le=_MAX_CREDITS)
    allowed_aws_accounts: list[str] | None = Field(default=None, max_length=100)
    max_token_lifetime_days: int | None = Field(default=None, ge=1, le=3650)
    claude_family_mapping: bool | None = None
    bedrock_model_discovery: bool | None = None
    credentialless_direct_allowed: bool | None = None
    degraded_runs_fail: bool | None = None
    alert_webhook_url: str | None = Field(default=None, max_length=2048)
    alert_interval_seconds: int | None = Field(default=None, ge=60, le=7 * 86400)


class BedrockUpdate(_In):
    region: str | None = Field(default=None, max_length=30)
    endpoint_url: str | None = Field(default=None, max_length=2048)
    role_arn: str | None = Field(default=None, max_length=2048)


class TokenCreate(_In):
    """Issue a token for yourself (default), for a member (admins) or for a named agent (admins)."""

    name: str = Field(min_length=1, max_length=100)
    user_uid: str | None = Field(default=None, max_length=40)
    agent_uid: str | None = Field(default=None, max_length=40)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class ProviderKeyIn(_In):
    """The operator's API key for one direct provider; ``null`` removes it. Stored encrypted, never shown."""

    api_key: str | None = Field(default=None, max_length=4096)
