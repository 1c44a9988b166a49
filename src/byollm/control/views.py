"""What the control plane returns: plain frozen dataclasses, serialised as-is by the admin API and the CLI.

Why dataclasses here and pydantic only for inputs: outputs are built by our own code and need no
validation; FastAPI documents and serialises dataclasses directly, so there is one definition per shape.
No view ever carries a secret, except ``IssuedToken.token``, which exists once, in the response that
creates it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "AgentView",
    "AuditView",
    "BedrockView",
    "InvitedMember",
    "IssuedToken",
    "MeView",
    "MemberView",
    "ModelRouteView",
    "PolicyView",
    "RequestView",
    "SettingsView",
    "TeamView",
    "TokenView",
    "UsageRowView",
]


@dataclass(frozen=True, slots=True)
class TeamView:
    uid: str
    name: str
    created_at: datetime
    your_role: str | None = None
    admin_path: str = ""  # the panel URL path, which shows the team UID the trust policy needs


@dataclass(frozen=True, slots=True)
class MeView:
    principal_uid: str
    kind: str
    is_operator: bool
    teams: list[TeamView] = field(default_factory=list)
    token_team_uid: str | None = None


@dataclass(frozen=True, slots=True)
class MemberView:
    user_uid: str
    email: str
    display_name: str
    role: str


@dataclass(frozen=True, slots=True)
class AgentView:
    uid: str
    name: str
    role_arn_override: str | None
    default_model: str | None
    tools: list[str]
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ModelRouteView:
    model: str
    display_name: str
    bedrock: bool
    inference_profile: str | None
    direct: bool
    direct_provider: str | None
    bedrock_available_in_region: bool
    default_bedrock_id: str | None  # what Bedrock gets when no override is set (global profile by default)
    on_bedrock: bool = False  # offered on Bedrock in some region (``bedrock_available_in_region``: this one)


@dataclass(frozen=True, slots=True)
class AliasView:
    """"Requests for ``pattern`` are served as ``target``"; ``*`` and ``?`` are wildcards."""

    pattern: str
    target: str


@dataclass(frozen=True, slots=True)
class PolicyView:
    team_uid: str
    policy_version: int
    direct_api_disabled: bool
    fallback_order: list[str]
    auto_allowed: bool
    region: str
    models: list[ModelRouteView]
    aliases: list[AliasView] = field(default_factory=list)
    claude_family_mapping: bool = True
    # on a save: models just enabled on Bedrock that the last validated permissions policy does not cover
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SettingsView:
    byok_allowed: bool
    long_term_keys_allowed: bool
    retain_request_content: bool
    transcript_retention_days: int
    monthly_ai_credits: int
    platform_credits: int
    compute_credits: int
    allowed_aws_accounts: list[str]
    max_token_lifetime_days: int | None
    claude_family_mapping: bool = True
    bedrock_model_discovery: bool = True
    credentialless_direct_allowed: bool = False
    degraded_runs_fail: bool = False
    alert_webhook_url: str | None = None  # scheme and host only: a webhook's path is its secret
    alert_interval_seconds: int = 3600


@dataclass(frozen=True, slots=True)
class BedrockView:
    region: str
    endpoint_url: str | None
    role_arn: str | None


@dataclass(frozen=True, slots=True)
class TokenView:
    uid: str
    name: str
    principal_type: str
    principal_uid: str
    team_uid: str | None
    display_prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """The only view that carries a secret: returned once, by the call that creates the token."""

    token: str
    details: TokenView

    def __repr__(self) -> str:
        return f"IssuedToken(details={self.details!r})"


@dataclass(frozen=True, slots=True)
class AuditView:
    id: int
    at: datetime
    team_uid: str | None
    actor_uid: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class RequestView:
    """One request-log row as the admin API shows it: identifiers, outcome and counts, never a credential."""

    request_id: str
    started_at: datetime
    principal_type: str
    principal_uid: str
    api: str
    requested_model: str
    served_model: str | None
    route: str | None
    host: str | None
    billing: str | None
    stream: bool
    status: int
    error_code: str | None
    attempts: list[dict[str, Any]]
    input_tokens: int
    output_tokens: int
    credits: str  # a decimal number as text, exact
    duration_ms: float
    overhead_ms: float
    auto_reason: str | None
    run_uid: str | None
    principal_name: str | None = None  # the member's name or email, or "agent <name>"; None if unknown
    outcome: str = "ok"  # ok, error, or fallback (served after a failed attempt)


@dataclass(frozen=True, slots=True)
class UsageRowView:
    principal: str | None
    model: str | None
    host: str | None
    bucket: str | None
    day: str | None
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    credits: str


@dataclass(frozen=True, slots=True)
class InvitedMember:
    """A new membership, and for a person byollm did not know yet their first token (shown once): the only
    way a team admin hands someone a token, since admins cannot issue tokens for other people."""

    user_uid: str
    email: str
    display_name: str
    role: str
    first_token: IssuedToken | None = None
