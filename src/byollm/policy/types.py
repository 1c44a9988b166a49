"""Pure domain values: teams, principals, the model policy, host configuration and route plans.

Everything here is a frozen dataclass with no I/O, so the store can build them from rows, the planner can
reason over them, and hypothesis can generate them. Validation of user-supplied identifiers lives in
``policy.validate`` so the types stay plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "Actor",
    "ActorKind",
    "ActorType",
    "Agent",
    "AvailableCredentials",
    "BedrockHostConfig",
    "BillingBucket",
    "CreditState",
    "CredentialSource",
    "DroppedRoute",
    "Host",
    "ModelPolicy",
    "ModelRouting",
    "Role",
    "RouteCandidate",
    "RoutePlan",
    "RouteRequest",
    "TeamPolicy",
    "TeamSettings",
]


class Role(StrEnum):
    """A user's role in one team."""

    ADMIN = "admin"
    MEMBER = "member"


class ActorType(StrEnum):
    """The actor type in a web-identity token's ``sub`` (``scoped_principal:<team>/<actor-type>:<uid>``)."""

    USER = "user"
    SERVICE_ACCOUNT = "service_account"


class Host(StrEnum):
    """Where inference runs. Bedrock is the customer's cloud; the others are direct provider APIs."""

    BEDROCK = "bedrock"
    ANTHROPIC = "anthropic"
    OPENAI = "openai"
    GOOGLE = "google"

    @property
    def is_direct(self) -> bool:
        return self is not Host.BEDROCK


class CredentialSource(StrEnum):
    """Which credential signs or authorises a candidate route."""

    DELEGATED_SESSION = "delegated_session"  # the interactive user's own AWS session, one request only
    WEB_IDENTITY = "web_identity"  # byollm's OIDC token exchanged with STS for a run
    OPERATOR_KEY = "operator_key"  # the operator's direct-API key (consumes AI credits)
    BYOK = "byok"  # the user's own provider key, sent with the request, never stored


class BillingBucket(StrEnum):
    """Who pays for a route's inference."""

    CUSTOMER_CLOUD = "customer_cloud"  # the team's own AWS bill; no AI credits
    AI_CREDITS = "ai_credits"  # byollm's operator key; consumes the team's AI credits
    USER_KEY = "user_key"  # the user's own provider key; no AI credits


class ActorKind(StrEnum):
    """Who is asking, which decides the Bedrock credential source."""

    INTERACTIVE_USER = "interactive_user"  # a person in a terminal, with delegated AWS credentials
    USER_RUN = "user_run"  # a cloud run a user started (optionally of a named agent)
    AGENT_RUN = "agent_run"  # a named agent's own trigger (its service-account token, a schedule)


@dataclass(frozen=True, slots=True)
class ModelRouting:
    """How one catalog model may be served for a team."""

    model: str  # catalog model id
    bedrock: bool = False
    inference_profile: str | None = None  # override: profile id (``us.…``) or application-profile ARN
    direct: bool = False


@dataclass(frozen=True, slots=True)
class ModelPolicy:
    """The team's model policy: per-model routing, the direct-API kill switch and the fallback order."""

    routes: Mapping[str, ModelRouting] = field(default_factory=lambda: MappingProxyType({}))
    direct_api_disabled: bool = False  # disables every direct model, and with it BYOK
    fallback_order: tuple[str, ...] = ()

    def routing(self, model: str) -> ModelRouting:
        return self.routes.get(model) or ModelRouting(model=model)

    def bedrock_enabled(self, model: str) -> bool:
        return self.routing(model).bedrock

    def direct_enabled(self, model: str) -> bool:
        return not self.direct_api_disabled and self.routing(model).direct

    @property
    def any_direct_disabled(self) -> bool:
        """True when an admin switched off any direct model (which turns Auto off).

        A model the admin never configured is not "disabled"; only an explicit routing entry with
        ``direct=False`` or the global switch counts.
        """
        return self.direct_api_disabled or any(not r.direct for r in self.routes.values())


@dataclass(frozen=True, slots=True)
class BedrockHostConfig:
    """Where and as whom the team's Bedrock calls go."""

    region: str = "us-east-1"
    endpoint_url: str | None = None  # VPC/FIPS endpoint, or the simulator in the demo
    role_arn: str | None = None  # team-wide role for cloud runs


@dataclass(frozen=True, slots=True)
class TeamSettings:
    byok_allowed: bool = False
    long_term_keys_allowed: bool = False
    retain_request_content: bool = False
    transcript_retention_days: int = 30
    monthly_ai_credits: int = 0
    platform_credits: int = 0
    compute_credits: int = 0
    allowed_aws_accounts: frozenset[str] = frozenset()
    max_token_lifetime_days: int | None = None


@dataclass(frozen=True, slots=True)
class Agent:
    """A named agent: a service-account principal with its own optional role and default model."""

    uid: str
    name: str
    role_arn_override: str | None = None
    default_model: str | None = None
    tools: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TeamPolicy:
    """Everything the planner needs to know about a team, in one immutable value."""

    team_uid: str
    settings: TeamSettings = TeamSettings()
    models: ModelPolicy = ModelPolicy()
    bedrock: BedrockHostConfig = BedrockHostConfig()
    agents: Mapping[str, Agent] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """What the caller asked for, reduced to what routing depends on."""

    model: str  # catalog id, alias, or "auto"
    stream: bool = False
    estimated_input_tokens: int = 0
    max_output_tokens: int = 0
    uses_tools: bool = False


@dataclass(frozen=True, slots=True)
class Actor:
    kind: ActorKind
    principal_uid: str
    agent_uid: str | None = None  # the named agent whose run this is, if any


@dataclass(frozen=True, slots=True)
class AvailableCredentials:
    """Which credentials this request can use; never the values, only their presence."""

    delegated_session: bool = False
    byok_providers: frozenset[Host] = frozenset()


@dataclass(frozen=True, slots=True)
class CreditState:
    ai_credits_available: bool = True


@dataclass(frozen=True, slots=True)
class RouteCandidate:
    """One way to serve the request, in the order the gateway should try it."""

    model: str  # catalog model id
    host: Host
    upstream_model_id: str  # exact id sent upstream: Bedrock profile/model id/ARN, or the provider's id
    credential: CredentialSource
    billing: BillingBucket
    region: str | None = None  # Bedrock region
    role_arn: str | None = None  # web identity only

    @property
    def label(self) -> str:
        """Identifier-only route name used in headers, logs and metrics: ``host:upstream-id``."""
        return f"{self.host.value}:{self.upstream_model_id}"


@dataclass(frozen=True, slots=True)
class DroppedRoute:
    """A route that policy, credentials, credits or the request's shape ruled out, and why."""

    model: str
    host: Host
    reason: str


@dataclass(frozen=True, slots=True)
class RoutePlan:
    requested_model: str
    model: str  # the catalog model resolved from the name, alias or Auto
    candidates: tuple[RouteCandidate, ...]
    dropped: tuple[DroppedRoute, ...] = ()
    auto_reason: str | None = None  # set when the request asked for Auto
