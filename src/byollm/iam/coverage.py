"""Does the permissions policy the doctor last validated cover a model an admin is enabling now?

Why: the generated permissions policy lists exact resources for the models enabled when it was printed. An
admin who later enables another model on Bedrock gets ``AccessDenied`` on it in cloud runs (and, with a
direct route, a quiet paid fallback). So when the doctor passes a permissions check it records what it
validated (``ValidatedPermissions``: the pasted policy documents, or, when it asked AWS through
``SimulatePrincipalPolicy``, the resources AWS allowed), and saving a model policy checks each newly enabled
Bedrock route against that record. A route it does not cover is a warning on save, never a refusal: the
customer's AWS account is the authority, and the admin may be about to update the policy.

Pure: catalog, policy values and the record in, warning sentences out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from byollm.catalog.types import Catalog
from byollm.iam.evaluate import MalformedPolicy, evaluate_identity
from byollm.iam.policies import INVOKE_ACTIONS, route_resources
from byollm.policy.types import TeamPolicy
from byollm.policy.validate import InvalidValue, parse_role_arn

__all__ = ["DOCTOR_HINT", "ValidatedPermissions", "uncovered_warnings"]

DOCTOR_HINT = ("run `byollm doctor --team <team>` (or the panel's Validate page) after updating the role's"
               " permissions policy (`byollm iam permissions-policy --team <team>` prints one that covers it)")


@dataclass(frozen=True, slots=True)
class ValidatedPermissions:
    """What the doctor's last passing permissions check validated, stored on the team (no secret in it)."""

    role_arn: str | None
    source: str  # "pasted document" | "SimulatePrincipalPolicy"
    validated_at: str
    documents: tuple[Mapping[str, Any], ...] = ()  # the policy documents evaluated, when the admin pasted them
    allowed: frozenset[str] = field(default_factory=frozenset)  # resources AWS allowed, when it was asked

    def to_json(self) -> dict[str, Any]:
        return {"role_arn": self.role_arn, "source": self.source, "validated_at": self.validated_at,
                "documents": [dict(d) for d in self.documents], "allowed": sorted(self.allowed)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ValidatedPermissions | None:
        if not data:
            return None
        return cls(role_arn=data.get("role_arn"), source=str(data.get("source") or ""),
                   validated_at=str(data.get("validated_at") or ""),
                   documents=tuple(d for d in data.get("documents") or () if isinstance(d, Mapping)),
                   allowed=frozenset(str(r) for r in data.get("allowed") or ()))

    def covers(self, resource: str) -> bool:
        if self.documents:
            try:
                return all(evaluate_identity(self.documents, action, resource).allowed for action in INVOKE_ACTIONS)
            except MalformedPolicy:
                return False
        return resource in self.allowed


def _account(role_arn: str | None) -> str:
    if not role_arn:
        return "*"
    try:
        return parse_role_arn(role_arn).account_id
    except InvalidValue:
        return "*"


def uncovered_warnings(catalog: Catalog, policy: TeamPolicy, models: Iterable[str],
                       record: ValidatedPermissions | None) -> list[str]:
    """One sentence per model in ``models`` (just enabled on Bedrock, or re-pointed) whose route needs a
    resource the last validated permissions policy does not allow; each names the doctor."""
    region = policy.bedrock.region
    warnings: list[str] = []
    for model_id in models:
        model = catalog.get(model_id)
        if model is None or not model.offered_on_bedrock_in(region) or not policy.models.bedrock_enabled(model_id):
            continue
        upstream = policy.models.routing(model_id).inference_profile or catalog.default_bedrock_upstream(
            model_id, region)
        if upstream is None:
            continue
        if record is None:
            warnings.append(f"{model_id}: no permissions policy has been validated for this team yet, so byollm"
                            f" cannot tell whether the role may invoke {upstream}; {DOCTOR_HINT}")
            continue
        try:
            needed: Sequence[str] = sorted(route_resources(catalog, model_id, upstream, region,
                                                           _account(record.role_arn or policy.bedrock.role_arn)))
        except InvalidValue:
            continue
        missing = [r for r in needed if not record.covers(r)]
        if missing:
            warnings.append(f"{model_id}: the permissions policy validated on {record.validated_at[:10]}"
                            f" ({record.source}) does not allow {INVOKE_ACTIONS[0]} on {', '.join(missing[:3])}"
                            + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
                            + f"; cloud runs will fail on it (or fall back to a paid route); {DOCTOR_HINT}")
    return warnings
