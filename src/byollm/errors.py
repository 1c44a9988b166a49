"""The error taxonomy: every failure a user can hit is exactly one of these classes.

Why one module: the gateway, the run worker, the CLI and the admin panel all show the same failures, and a
user must see the same code and the same remediation whichever door they came through. Providers classify
upstream errors into these classes at their boundary; one server handler renders them in the caller's API
shape (Anthropic or OpenAI error JSON); anything unclassified becomes ``internal_error`` with a request id.

Statuses follow one rule: a class the user fixes by acting (credentials, policy, permissions, setup) uses a
status the official SDKs do not retry (400, 401, 402, 403, 404, 413, 422, 424), never 429 or 5xx, so an agent
does not spin on a failure only a human can fix. Only transient classes (throttling, unavailability) use
429/5xx.

Exception tree::

    ByollmError                      carries one ErrorClass, a safe detail, and safe context fields
     +-- NoRouteError                every candidate route failed or none existed; lists the attempts

Details and context are shown to callers: they must never contain a credential, key or token value.
Callers build them from identifiers (ARNs, model ids, account ids), never from secrets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = [
    "Attempt",
    "ByollmError",
    "ErrorClass",
    "NoRouteError",
]


@dataclass(frozen=True, slots=True)
class _ClassInfo:
    code: str
    status: int
    title: str
    remediation: str
    fails_over: bool
    retryable: bool


class ErrorClass(Enum):
    """One member per failure class; ``.value`` holds the stable code, status and remediation."""

    # --- local / delegated credentials (interactive flow) -------------------------------------------
    LOCAL_CREDENTIALS_EXPIRED = _ClassInfo(
        "local_credentials_expired", 401, "Missing or expired local AWS credentials",
        "Sign in to AWS again with `aws login` (or `aws sso login --profile <profile>`); to avoid this,"
        " turn on auto-refresh with `byollm config set auto_refresh true`.",
        fails_over=False, retryable=False,
    )
    LOCAL_CREDENTIALS_MISSING = _ClassInfo(
        "local_credentials_missing", 401, "No local AWS credentials sent",
        "Your team serves this model through its AWS Bedrock, so requests must carry your AWS session: sign in"
        " with `aws login` (or `aws sso login --profile <profile>`) and send requests through `byollm proxy`,"
        " `byollm exec -- <tool>` or `byollm chat`, which attach it; or ask a team admin to allow direct service"
        " for requests without AWS credentials (it is paid from AI credits).",
        fails_over=False, retryable=False,
    )
    PARTIAL_CREDENTIALS = _ClassInfo(
        "partial_credentials", 400, "Incomplete AWS credentials",
        "Send the access key id, secret access key and session token together, or none of them;"
        " `byollm proxy` and `byollm chat` do this for you.",
        fails_over=False, retryable=False,
    )
    LONG_TERM_CREDENTIALS_REFUSED = _ClassInfo(
        "long_term_credentials_refused", 403, "Long-term AWS keys refused",
        "Use short-lived session credentials (`aws login`, IAM Identity Center or a role profile) instead of"
        " an IAM user's access keys, or ask a team admin to allow long-term keys.",
        fails_over=False, retryable=False,
    )
    AWS_ACCOUNT_NOT_ALLOWED = _ClassInfo(
        "aws_account_not_allowed", 403, "AWS account not allowed for this team",
        "Sign in to one of the AWS accounts your team accepts (see `byollm doctor --local`), or ask a team"
        " admin to add this account to the team's allowed accounts.",
        fails_over=False, retryable=False,
    )
    # --- cloud agent runs: web identity ---------------------------------------------------------------
    ROLE_ASSUMPTION_FAILED = _ClassInfo(
        "role_assumption_failed", 403, "Role assumption failed",
        "Check the role's trust policy: the federated principal must be this issuer's OIDC provider, the"
        " `<issuer-host>:sub` condition must match `scoped_principal:<team-uid>/*` for this team, the"
        " `:aud` condition must be the configured audience, and the role ARN configured in byollm must be the"
        " role you meant (`byollm iam trust-policy --team <team>` prints the expected policy).",
        fails_over=True, retryable=False,
    )
    OIDC_PROVIDER_MISSING = _ClassInfo(
        "oidc_provider_missing", 403, "Missing OIDC provider",
        "Create an IAM OpenID Connect identity provider in the role's AWS account for this issuer's host,"
        " with the configured audience (`byollm iam oidc-provider` prints it).",
        fails_over=True, retryable=False,
    )
    ISSUER_UNREACHABLE = _ClassInfo(
        "issuer_unreachable", 403, "AWS could not reach byollm's OIDC issuer",
        "AWS fetches the issuer's discovery document and keys over the internet: set byollm's public issuer"
        " URL to a public HTTPS address that serves /.well-known/openid-configuration and the JWKS.",
        fails_over=True, retryable=False,
    )
    # --- authorisation and placement in the customer's cloud ---------------------------------------
    INSUFFICIENT_PERMISSIONS = _ClassInfo(
        "insufficient_permissions", 403, "Insufficient permissions",
        "Allow bedrock:InvokeModel and bedrock:InvokeModelWithResponseStream on the foundation-model,"
        " inference-profile and application-inference-profile resources this model's route uses, and grant"
        " model access in the Bedrock console (`byollm iam permissions-policy --team <team>`).",
        fails_over=True, retryable=False,
    )
    REGION_MODEL_MISMATCH = _ClassInfo(
        "region_model_mismatch", 400, "Region or model mismatch",
        "Confirm the model is offered and enabled in the team's Bedrock region, that the inference profile"
        " suits that region, and that your environment uses the region the team configured.",
        fails_over=True, retryable=False,
    )
    ENDPOINT_NOT_ALLOWED = _ClassInfo(
        "endpoint_not_allowed", 403, "Bedrock endpoint not allowed",
        "The team's Bedrock endpoint URL is, or resolves to, an internal address this byollm server does not"
        " call: a team admin should set a public endpoint hostname (or clear it for the regional endpoint), or"
        " the operator should allow that network in BYOLLM_ALLOWED_INTERNAL_NETWORKS (for a VPC interface"
        " endpoint, the VPC's CIDR).",
        fails_over=True, retryable=False,
    )
    PROVIDER_KEY_REJECTED = _ClassInfo(
        "provider_key_rejected", 403, "Provider API key rejected",
        "The direct provider refused the API key: the operator must replace the stored provider key, or,"
        " for your own key, run `byollm keys add <provider>` again.",
        fails_over=True, retryable=False,
    )
    QUOTA_EXCEEDED = _ClassInfo(
        "quota_exceeded", 429, "Provider quota or throttling",
        "Check the Bedrock service quotas for this model and account and request an increase, or spread the"
        " load over another inference profile.",
        fails_over=True, retryable=True,
    )
    UPSTREAM_UNAVAILABLE = _ClassInfo(
        "upstream_unavailable", 503, "Upstream unavailable",
        "The model provider did not answer in time or reported an outage; retry shortly.",
        fails_over=True, retryable=True,
    )
    UNSUPPORTED_BY_ROUTE = _ClassInfo(
        "unsupported_by_route", 400, "Request feature not supported by this route",
        "The request uses a feature (a content block, a server tool) that this fallback model's API cannot"
        " take, so the route was skipped; enable a fallback from the same model family, or leave the feature"
        " out.",
        fails_over=True, retryable=False,
    )
    # --- policy --------------------------------------------------------------------------------------
    NO_FALLBACK_AVAILABLE = _ClassInfo(
        "no_fallback_available", 424, "No route could serve the request",
        "Every route the team's policy allows failed; fix the first failure listed, or ask a team admin to"
        " enable a fallback model.",
        fails_over=False, retryable=False,
    )
    MODEL_NOT_ALLOWED = _ClassInfo(
        "model_not_allowed", 403, "Model not allowed by policy",
        "Pick a model your team enables (`GET /v1/models` lists them), or ask a team admin to enable this one.",
        fails_over=False, retryable=False,
    )
    MODEL_NOT_FOUND = _ClassInfo(
        "model_not_found", 404, "Unknown model",
        "Use one of the models your team can use (listed in the message and by `GET /v1/models`), or ask a"
        " team admin to add an alias for this name or enable the model.",
        fails_over=False, retryable=False,
    )
    AUTO_DISABLED = _ClassInfo(
        "auto_disabled", 403, "Auto model selection is disabled",
        "Auto is off because a team admin disabled a direct-API model; choose a specific model instead.",
        fails_over=False, retryable=False,
    )
    CREDITS_EXHAUSTED = _ClassInfo(
        "credits_exhausted", 402, "Credits exhausted",
        "The team has used its credit allowance for this period; route the model through Bedrock, use your"
        " own provider key where allowed, or ask a team admin to raise the allowance.",
        fails_over=False, retryable=False,
    )
    INVALID_REQUEST = _ClassInfo(
        "invalid_request", 400, "Invalid request",
        "Fix the request as the message describes; resending it unchanged will fail again.",
        fails_over=False, retryable=False,
    )
    PAYLOAD_TOO_LARGE = _ClassInfo(
        "payload_too_large", 413, "Request too large",
        "Send a smaller request; the operator sets the limit with BYOLLM_MAX_BODY_BYTES.",
        fails_over=False, retryable=False,
    )
    # --- cloud agent runs: tools ----------------------------------------------------------------------
    TOOL_NOT_ENABLED = _ClassInfo(
        "tool_not_enabled", 403, "Tool not enabled on this deployment",
        "Tools are off until the operator enables them: the operator lists the tools this deployment offers in"
        " BYOLLM_RUN_TOOLS (for example `shell`) and restarts byollm; until then leave the tool out.",
        fails_over=False, retryable=False,
    )
    SANDBOX_UNAVAILABLE = _ClassInfo(
        "sandbox_unavailable", 424, "Tool sandbox unavailable",
        "The operator must make the tool sandbox work on every process that executes runs: install bubblewrap"
        " (`apt-get install bubblewrap`) or point BYOLLM_BWRAP at it, and allow unprivileged user namespaces"
        " (`sysctl kernel.unprivileged_userns_clone=1`, or in a container a seccomp/AppArmor profile that"
        " permits them); tools never run unconfined.",
        fails_over=False, retryable=False,
    )
    # --- byollm's own API ----------------------------------------------------------------------------
    UNAUTHENTICATED = _ClassInfo(
        "unauthenticated", 401, "Missing or invalid byollm token",
        "Send a valid byollm token as `x-api-key` or `Authorization: Bearer`; `byollm login` stores one.",
        fails_over=False, retryable=False,
    )
    FORBIDDEN = _ClassInfo(
        "forbidden", 403, "Not permitted",
        "Your token's role does not allow this action; ask a team admin.",
        fails_over=False, retryable=False,
    )
    NOT_FOUND = _ClassInfo(
        "not_found", 404, "Not found",
        "Check the identifier; you can only see teams you belong to.",
        fails_over=False, retryable=False,
    )
    CONFLICT = _ClassInfo(
        "conflict", 409, "Conflict",
        "The resource already exists or changed meanwhile; reload it and try again.",
        fails_over=False, retryable=False,
    )
    TOO_MANY_ATTEMPTS = _ClassInfo(
        "too_many_attempts", 429, "Too many failed attempts",
        "Wait a minute before trying again with a valid token.",
        fails_over=False, retryable=True,
    )
    INTERNAL_ERROR = _ClassInfo(
        "internal_error", 500, "Internal error",
        "Something failed inside byollm; quote the request id to your operator.",
        fails_over=False, retryable=True,
    )

    @property
    def code(self) -> str:
        return self.value.code

    @property
    def status(self) -> int:
        return self.value.status

    @property
    def title(self) -> str:
        return self.value.title

    @property
    def remediation(self) -> str:
        return self.value.remediation

    @property
    def fails_over(self) -> bool:
        """True when another route may still serve the request after this failure."""
        return self.value.fails_over

    @property
    def retryable(self) -> bool:
        """True when sending the same request later can succeed without anyone acting."""
        return self.value.retryable

    @classmethod
    def from_code(cls, code: str) -> ErrorClass:
        for member in cls:
            if member.value.code == code:
                return member
        raise KeyError(code)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One route tried while serving a request: what it was and how it failed (identifiers only)."""

    route: str
    error_class: ErrorClass
    detail: str = ""
    latency_ms: float = 0.0


class ByollmError(Exception):
    """A failure of a known class. ``detail`` and ``context`` are shown to the caller: never secrets."""

    def __init__(self, error_class: ErrorClass, detail: str = "", **context: Any) -> None:
        self.error_class = error_class
        self.detail = detail or error_class.title
        self.context: Mapping[str, Any] = context
        super().__init__(f"{error_class.code}: {self.detail}")

    @property
    def status(self) -> int:
        return self.error_class.status

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed if sent again unchanged (drives ``x-should-retry``)."""
        return self.error_class.retryable

    def to_dict(self) -> dict[str, Any]:
        """The body fields every API shape carries (code, message, remediation, context)."""
        body: dict[str, Any] = {
            "code": self.error_class.code,
            "message": self.detail,
            "remediation": self.error_class.remediation,
        }
        if self.context:
            body["context"] = dict(self.context)
        return body


class NoRouteError(ByollmError):
    """Nothing could serve the request; ``attempts`` says which route failed with which class."""

    def __init__(
        self,
        attempts: Sequence[Attempt],
        error_class: ErrorClass = ErrorClass.NO_FALLBACK_AVAILABLE,
        detail: str = "",
        dropped: Sequence[str] = (),
    ) -> None:
        self.attempts = tuple(attempts)
        self.dropped = tuple(dropped)
        summary = "; ".join(f"{a.route}: {a.error_class.code}" for a in self.attempts)
        message = detail or (
            f"all {len(self.attempts)} route(s) failed ({summary})" if self.attempts else "no route is available"
        )
        super().__init__(
            error_class,
            message,
            attempts=[
                {"route": a.route, "code": a.error_class.code, "detail": a.detail,
                 "remediation": a.error_class.remediation}
                for a in self.attempts
            ],
            **({"dropped": list(self.dropped)} if self.dropped else {}),
        )

    @property
    def retryable(self) -> bool:
        """Every route failed for a passing reason (throttling, an outage): the same request can succeed in a
        moment, so clients should retry it even though the class itself is not retryable. One permanent failure
        among the attempts (a denied permission, a rejected key) makes a retry pointless."""
        return bool(self.attempts) and all(a.error_class.retryable for a in self.attempts)
