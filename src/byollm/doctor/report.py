"""The doctor's report: one ``Check`` per thing verified, gathered in a ``DoctorReport``.

Why plain dataclasses with ``to_dict``/``from_dict``: the same report is rendered by the panel (Jinja), sent
as JSON by the API, merged by the CLI with the checks it ran locally with the admin's AWS credentials, and
printed with Rich. A report holds identifiers (ARNs, model ids, condition keys), never a credential or token.

``DoctorInputs`` travels with the report: everything the CLI needs to run the AWS-reading checks on the
admin's machine (roles, issuer, required resources, fixing documents) without a second round trip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from byollm.errors import ErrorClass

__all__ = [
    "Check",
    "CheckStatus",
    "DoctorInputs",
    "DoctorReport",
    "RouteNeed",
    "ScopeInputs",
    "failing",
    "passing",
    "skipped",
]

CheckStatus = Literal["pass", "fail", "warn", "skip"]
STATUSES: tuple[CheckStatus, ...] = ("pass", "fail", "warn", "skip")


@dataclass(frozen=True, slots=True)
class Check:
    """One verified fact. ``fixes`` maps a format (``json``, ``terraform``, ``cloudformation``) to the document
    that fixes this very configuration; ``needs_cli`` marks a check only ``byollm doctor`` (with the admin's
    AWS credentials) can run."""

    id: str
    title: str
    status: CheckStatus
    detail: str
    error_class: ErrorClass | None = None
    remediation: str | None = None
    fixes: Mapping[str, str] = field(default_factory=dict)
    needs_cli: bool = False
    scope: str = "team"  # "team", "agent:<name>", "account" or "byollm"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "status": self.status, "detail": self.detail,
            "error_class": self.error_class.code if self.error_class else None, "remediation": self.remediation,
            "fixes": dict(self.fixes), "needs_cli": self.needs_cli, "scope": self.scope,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Check:
        code = data.get("error_class")
        status = str(data.get("status", "skip"))
        return cls(
            id=str(data["id"]), title=str(data.get("title", "")),
            status=next((s for s in STATUSES if s == status), "skip"),
            detail=str(data.get("detail", "")), error_class=ErrorClass.from_code(code) if code else None,
            remediation=data.get("remediation"), fixes=dict(data.get("fixes") or {}),
            needs_cli=bool(data.get("needs_cli", False)), scope=str(data.get("scope", "team")),
        )


def passing(id: str, title: str, detail: str, *, scope: str = "team") -> Check:
    return Check(id=id, title=title, status="pass", detail=detail, scope=scope)


def failing(id: str, title: str, detail: str, error_class: ErrorClass, *, scope: str = "team",
            fixes: Mapping[str, str] | None = None, status: CheckStatus = "fail") -> Check:
    """A failed (or warning) check carrying its class's remediation and the fixing documents."""
    return Check(id=id, title=title, status=status, detail=detail, error_class=error_class,
                 remediation=error_class.remediation, fixes=dict(fixes or {}), scope=scope)


def skipped(id: str, title: str, detail: str, *, scope: str = "team", needs_cli: bool = False) -> Check:
    return Check(id=id, title=title, status="skip", detail=detail, needs_cli=needs_cli, scope=scope)


@dataclass(frozen=True, slots=True)
class RouteNeed:
    """One enabled Bedrock model's route and the resources the role must allow it on."""

    model: str
    upstream: str
    foundation_model_id: str
    resources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ScopeInputs:
    """A role byollm assumes: the team-wide role, or a named agent's override."""

    scope: str  # "team" or "agent:<name>"
    title: str
    role_arn: str | None
    agent_uid: str | None
    subjects: Mapping[str, str]  # what the sub is for -> the sub byollm's tokens carry, e.g. "runs users start"
    required_subjects: tuple[str, ...]  # subjects that must be admitted (the others only warn)
    routes: tuple[RouteNeed, ...]
    fixes: Mapping[str, Mapping[str, str]]  # "trust_policy" | "permissions_policy" | "oidc_provider" -> fmt -> doc


@dataclass(frozen=True, slots=True)
class DoctorInputs:
    team_uid: str
    region: str
    issuer_url: str | None
    audience: str
    scopes: tuple[ScopeInputs, ...]
    probe_request_ids: tuple[str, ...] = ()

    @property
    def issuer_host(self) -> str | None:
        return self.issuer_url.split("://", 1)[-1].rstrip("/") if self.issuer_url else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "team_uid": self.team_uid, "region": self.region, "issuer_url": self.issuer_url,
            "audience": self.audience, "probe_request_ids": list(self.probe_request_ids),
            "scopes": [{
                "scope": s.scope, "title": s.title, "role_arn": s.role_arn, "agent_uid": s.agent_uid,
                "subjects": dict(s.subjects), "required_subjects": list(s.required_subjects),
                "routes": [{"model": r.model, "upstream": r.upstream, "foundation_model_id": r.foundation_model_id,
                            "resources": list(r.resources)} for r in s.routes],
                "fixes": {k: dict(v) for k, v in s.fixes.items()},
            } for s in self.scopes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DoctorInputs:
        scopes = tuple(ScopeInputs(
            scope=str(s["scope"]), title=str(s.get("title", s["scope"])), role_arn=s.get("role_arn"),
            agent_uid=s.get("agent_uid"), subjects=dict(s.get("subjects") or {}),
            required_subjects=tuple(s.get("required_subjects") or ()),
            routes=tuple(RouteNeed(str(r["model"]), str(r["upstream"]), str(r.get("foundation_model_id", "")),
                                   tuple(r.get("resources") or ())) for r in s.get("routes") or ()),
            fixes={k: dict(v) for k, v in (s.get("fixes") or {}).items()},
        ) for s in data.get("scopes") or ())
        return cls(team_uid=str(data["team_uid"]), region=str(data["region"]), issuer_url=data.get("issuer_url"),
                   audience=str(data.get("audience", "sts.amazonaws.com")), scopes=scopes,
                   probe_request_ids=tuple(data.get("probe_request_ids") or ()))


@dataclass(frozen=True, slots=True)
class DoctorReport:
    """Every check for a team (or one agent), and what the doctor found about invocation logging."""

    team_uid: str
    agent_uid: str | None
    checks: list[Check]
    invocation_logging: str = "unknown"  # "enabled" | "disabled" | "unknown"
    inputs: DoctorInputs | None = None

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings and skipped checks do not fail the report)."""
        return not any(c.status == "fail" for c in self.checks)

    @property
    def needs_cli(self) -> list[Check]:
        return [c for c in self.checks if c.needs_cli]

    def grouped(self) -> list[tuple[str, list[Check]]]:
        """Checks grouped by scope for display: byollm, the team, each agent (in report order), the account."""
        groups: dict[str, list[Check]] = {}
        for check in self.checks:
            groups.setdefault(check.scope, []).append(check)
        rank = {"byollm": 0, "team": 1, "account": 3}
        return sorted(groups.items(), key=lambda item: rank.get(item[0], 2))

    def check(self, id: str) -> Check:
        """The check with this id (KeyError if there is none)."""
        for check in self.checks:
            if check.id == id:
                return check
        raise KeyError(id)

    def merged(self, local: Sequence[Check], invocation_logging: str | None = None) -> DoctorReport:
        """This report with ``local`` checks replacing same-id checks (the skipped ``needs_cli`` ones) or
        appended; used by the CLI to fold in what it read with the admin's AWS credentials."""
        by_id = {c.id: c for c in local}
        checks = [by_id.pop(c.id, c) for c in self.checks]
        checks.extend(by_id.values())
        logging_state = invocation_logging if invocation_logging not in (None, "unknown") else self.invocation_logging
        return DoctorReport(self.team_uid, self.agent_uid, checks, logging_state or "unknown", self.inputs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "team_uid": self.team_uid, "agent_uid": self.agent_uid, "ok": self.ok,
            "invocation_logging": self.invocation_logging, "checks": [c.to_dict() for c in self.checks],
            "needs_cli": [c.id for c in self.needs_cli],
            "inputs": self.inputs.to_dict() if self.inputs is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DoctorReport:
        inputs = data.get("inputs")
        return cls(team_uid=str(data["team_uid"]), agent_uid=data.get("agent_uid"),
                   checks=[Check.from_dict(c) for c in data.get("checks") or ()],
                   invocation_logging=str(data.get("invocation_logging", "unknown")),
                   inputs=DoctorInputs.from_dict(inputs) if inputs else None)
