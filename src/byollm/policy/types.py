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

from byollm.errors import ByollmError, ErrorClass, NoRouteError
from byollm.policy import validate
from byollm.policy.setting_fields import MAX_CREDITS, setting

__all__ = [
    "Actor",
    "ActorKind",
    "ActorType",
    "Agent",
    "AvailableCredentials",
    "BedrockHostConfig",
    "BillingBucket",
    "CredentialSource",
    "CreditState",
    "DropCause",
    "DroppedRoute",
    "Host",
    "ModelAlias",
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
class ModelAlias:
    """An admin's rule "requests for ``pattern`` are served as ``target``" (``*``/``?`` wildcards allowed)."""

    pattern: str
    target: str  # a catalog model id


@dataclass(frozen=True, slots=True)
class ModelPolicy:
    """The team's model policy: per-model routing, the direct-API kill switch, the fallback order, aliases."""

    routes: Mapping[str, ModelRouting] = field(default_factory=lambda: MappingProxyType({}))
    direct_api_disabled: bool = False  # disables every direct model, and with it BYOK
    fallback_order: tuple[str, ...] = ()
    aliases: tuple[ModelAlias, ...] = ()  # first match wins (policy.names)

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


def _account_ids(value: object, field: str) -> frozenset[str]:
    """Each entry a 12-digit AWS account id, named by its position when it is not."""
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise validate.InvalidValue(field, "expected a list of 12-digit AWS account ids")
    items = value
    return frozenset(validate.validate_account_id(a, field=f"{field}[{i}]") for i, a in enumerate(items))


@dataclass(frozen=True, slots=True)
class TeamSettings:
    """A team's switches and limits: the ONE list of team settings. The store, the control plane's view and
    update, and the admin API's schema are derived from these fields (``policy/setting_fields.py``); a new
    setting is a field here plus its column in ``store/tables.py`` and a migration."""

    byok_allowed: bool = setting(False, view_required=True,
                                 help="Members may bring their own provider keys.")
    long_term_keys_allowed: bool = setting(False, view_required=True,
                                           help="Members may use long-term AWS access keys.")
    retain_request_content: bool = setting(False, view_required=True,
                                           help="Keep prompts and responses, not only their metadata.")
    transcript_retention_days: int = setting(30, ge=0, le=3650, view_required=True,
                                             help="Days a retained transcript is kept.")
    monthly_ai_credits: int = setting(0, ge=0, le=MAX_CREDITS, view_required=True,
                                      help="AI credits the team may spend each month.")
    platform_credits: int = setting(0, ge=0, le=MAX_CREDITS, view_required=True,
                                    help="Platform credits the team may spend each month.")
    compute_credits: int = setting(0, ge=0, le=MAX_CREDITS, view_required=True,
                                   help="Compute credits (cloud-run seconds) the team may spend each month.")
    allowed_aws_accounts: frozenset[str] = setting(frozenset(), max_length=100, normalise=_account_ids,
                                                   view_required=True,
                                                   help="AWS accounts members' sessions may come from.")
    max_token_lifetime_days: int | None = setting(None, ge=1, le=3650, view_required=True,
                                                  help="Longest lifetime of a byollm token (null: no limit).")
    claude_family_mapping: bool = setting(
        True, help="Unknown Claude names reach the team's best model of their family.")
    bedrock_model_discovery: bool = setting(
        True, help="Claude models the team's Bedrock lists are usable by name.")
    credentialless_direct_allowed: bool = setting(
        False, help="A member's request without AWS credentials may be served on the paid direct API"
                    " (off: it is refused).")
    degraded_runs_fail: bool = setting(
        False, help="A cloud run whose Bedrock route failed must not be served by an operator-paid fallback"
                    " (off: it is, and the run ends succeeded but degraded).")
    alert_webhook_url: str | None = setting(
        None, max_length=2048, url=True, secret=True,
        help="Receives BYOLLM failures as Slack-compatible JSON; its path is its secret.")
    alert_interval_seconds: int = setting(
        3600, ge=60, le=7 * 86400, help="At most one alert per failure class per interval.")


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
    """Which credentials this request can use; never the values, only their presence.

    ``operator_keys`` lists the direct providers the operator configured a key for; None means "not
    stated" and the planner assumes every provider has one (the gateway then fails that route if not).
    """

    delegated_session: bool = False
    byok_providers: frozenset[Host] = frozenset()
    operator_keys: frozenset[Host] | None = None


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


class DropCause(StrEnum):
    """Why the planner left a route out, for code that must tell causes apart (credits vs policy)."""

    NOT_ENABLED = "not_enabled"  # the admin did not enable the model on this host
    DIRECT_DISABLED = "direct_disabled"  # the team switched off every direct-API model, and BYOK with it
    NOT_IN_REGION = "not_in_region"  # the catalog does not offer the model on Bedrock in the team's region
    NO_PROFILE = "no_profile"  # nothing in the catalog is invocable from the region
    NO_SESSION = "no_session"  # an interactive request without delegated AWS session credentials
    # an operator-paid route of a Bedrock-routed request that came without AWS credentials, which the team
    # does not serve on its AI credits (``credentialless_direct_allowed`` off)
    CREDENTIALLESS_DIRECT_REFUSED = "credentialless_direct_refused"
    NO_ROLE = "no_role"  # a cloud run with no role ARN (team-wide or the agent's)
    BYOK_NOT_ALLOWED = "byok_not_allowed"  # the user sent a provider key but the team forbids BYOK
    NO_OPERATOR_KEY = "no_operator_key"  # the operator has no key for this provider
    NO_CREDITS = "no_credits"  # the team has no AI credits left for an operator-paid route
    DOES_NOT_FIT = "does_not_fit"  # a fallback whose context window, output limit or tools cannot serve


@dataclass(frozen=True, slots=True)
class DroppedRoute:
    """A route that policy, credentials, credits or the request's shape ruled out, and why."""

    model: str
    host: Host
    reason: str
    cause: DropCause | None = None
    credential: CredentialSource | None = None  # the credential the dropped route would have used, if known
    upstream_model_id: str | None = None  # the id the route would have sent upstream, when it got that far

    @property
    def route(self) -> str:
        """The route's name as a candidate would have it (``host:upstream-id``), else ``host:model``."""
        return f"{self.host.value}:{self.upstream_model_id or self.model}"

    @property
    def label(self) -> str:
        """``model@host: reason``, identifiers only, for error context and logs."""
        return f"{self.model}@{self.host.value}: {self.reason}"


@dataclass(frozen=True, slots=True)
class RoutePlan:
    requested_model: str
    model: str  # the catalog model resolved from the name, alias or Auto
    candidates: tuple[RouteCandidate, ...]
    dropped: tuple[DroppedRoute, ...] = ()
    auto_reason: str | None = None  # set when the request asked for Auto
    resolved_via: str = "catalog"  # how the name became ``model``: catalog, alias:<pattern>, family:<f>, auto

    @property
    def skipped_first(self) -> tuple[DroppedRoute, ...]:
        """The requested model's Bedrock routes dropped only for want of the caller's AWS session.

        They come first in the plan's order, so when another route serves the request it is a fallback: the
        gateway counts them as failed attempts (class ``local_credentials_missing``) and reports them.
        """
        return tuple(d for d in self.dropped if d.cause is DropCause.NO_SESSION and d.model == self.model)

    @property
    def blocked_by_credits(self) -> bool:
        """True when no route is left and an operator-paid route was dropped only for lack of AI credits."""
        return not self.candidates and any(d.cause is DropCause.NO_CREDITS for d in self.dropped)

    def require_candidates(self) -> tuple[RouteCandidate, ...]:
        """The candidates, or the error the gateway should raise when there are none.

        ``credits_exhausted`` when credits were the reason (with credits, an operator-paid route would
        exist; the detail adds when signing in to AWS would open a Bedrock route); then
        ``local_credentials_missing`` when a Bedrock route was dropped only because the request carried no
        AWS session credentials (the user fixes that in seconds, at no cost to anyone); otherwise
        ``no_fallback_available`` listing why each route was dropped.
        """
        if self.candidates:
            return self.candidates
        reasons = [d.label for d in self.dropped]
        no_session = any(d.cause is DropCause.NO_SESSION for d in self.dropped)
        if self.blocked_by_credits:
            raise ByollmError(
                ErrorClass.CREDITS_EXHAUSTED,
                f"no route for {self.model} without AI credits: the team's credits are used up and no"
                " Bedrock or own-key route is available"
                + ("; signing in to AWS (`aws login`) would let Bedrock serve it" if no_session else ""),
                model=self.model,
                dropped=reasons,
            )
        if no_session:
            raise ByollmError(
                ErrorClass.LOCAL_CREDENTIALS_MISSING,
                f"{self.model} is served through your team's AWS Bedrock, and the request carried no AWS session"
                " credentials",
                model=self.model,
                dropped=reasons,
            )
        raise NoRouteError(
            (), detail=f"no route is available for {self.model}", dropped=reasons
        )
