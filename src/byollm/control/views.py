"""What the control plane returns: plain frozen dataclasses, serialised as-is by the admin API and the CLI.

Why dataclasses here and pydantic only for inputs: outputs are built by our own code and need no
validation; FastAPI documents and serialises dataclasses directly, so there is one definition per shape.
No view ever carries a secret, except ``IssuedToken.token``, which exists once, in the response that
creates it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, make_dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from byollm.policy.setting_fields import setting_specs, settings_to_values
from byollm.policy.types import TeamSettings

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
    "masked_url",
    "settings_view",
    "settings_view_class",
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


def masked_url(url: str | None) -> str | None:
    """A webhook URL's path is its secret (Slack's are): shown as its scheme and host only."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


def settings_view_class(settings_cls: type[Any], name: str = "SettingsView") -> type[Any]:
    """The view of a team's settings, one field per declared setting (``policy/setting_fields.py``): sets
    as sorted lists, secret settings redacted. Fields marked ``view_required`` come first without a default,
    as the hand-written view had them, so the OpenAPI document is unchanged."""
    specs = setting_specs(settings_cls)
    required: list[tuple[str, Any]] = [(s.name, s.wire_type) for s in specs if s.view_required]
    optional: list[tuple[str, Any, Any]] = [
        (s.name, s.wire_type, field(default_factory=functools.partial(s.to_wire, s.default)) if s.is_set
         else field(default=s.default)) for s in specs if not s.view_required]
    cls = make_dataclass(name, [*required, *optional], frozen=True, slots=True)
    cls.__module__ = __name__
    return cls


def settings_view(settings: Any, view_cls: type[Any] | None = None) -> SettingsView:
    """A settings value as its view: the one place secret settings are redacted."""
    values = settings_to_values(settings)
    for spec in setting_specs(type(settings)):
        if spec.secret:
            values[spec.name] = masked_url(values[spec.name])
    return cast("SettingsView", (view_cls or SettingsView)(**values))


if TYPE_CHECKING:
    class SettingsView:
        """What mypy sees of the derived view: one attribute per ``TeamSettings`` field."""

        def __init__(self, **values: Any) -> None: ...
        def __getattr__(self, name: str) -> Any: ...
else:
    SettingsView = settings_view_class(TeamSettings)


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
