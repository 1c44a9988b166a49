"""What the customer's cloud admin must create for a team: OIDC provider, role trust policy, permissions.

Pure functions over the team's policy, the catalog and the issuer facts, so the CLI, the admin API and
(later) the admin doctor print exactly the same documents. Three renderings: the IAM JSON itself, Terraform
(``hashicorp/aws`` resources with ``jsonencode``) and a CloudFormation template (JSON).

Why these shapes:

- the trust policy names the federated principal ``arn:aws:iam::<account>:oidc-provider/<issuer-host>``,
  requires ``<host>:aud`` to equal the audience and pins ``<host>:sub`` to ``scoped_principal:<team-uid>/*``,
  so no other team's tokens (whose ``sub`` starts with their own UID) can assume the role. IAM offers no
  condition key for byollm's extra claims, so an agent's override role cannot be pinned to one agent for
  runs users start; it can be narrowed to the agent's own trigger (``…/service_account:<agent-uid>``) only
  if users never start runs of that agent (``agent_strict``).
- the permissions policy covers every action the gateway calls (``GATEWAY_ACTIONS``). Its least-privilege
  form allows ``bedrock:InvokeModel`` and ``bedrock:InvokeModelWithResponseStream`` on exactly what the
  team's enabled Bedrock routes call: the profile ARN (system or application) and, for a geographic profile
  (``us.``, ``eu.``, ``apac.``…), the foundation model in the source region and in every region the profile
  routes to; for a ``global.`` profile, the foundation model in the source region and the region-less
  ``arn:aws:bedrock:::foundation-model/…`` (AWS authorises that one with ``aws:RequestedRegion`` =
  ``unspecified``); or the foundation model in the team's region when it is invoked on demand. It allows
  ``bedrock:CountTokens`` on the foundation model in the team's region (count-tokens takes a model id, not a
  profile). The wildcard form (``PolicyForm.WILDCARD``) allows the same actions on every foundation model
  and inference profile, so enabling another model later needs no policy change; both forms are offered
  side by side (``facts["forms"]``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from byollm.catalog.types import Catalog, partition_for_region
from byollm.policy.types import TeamPolicy
from byollm.policy.validate import InvalidValue, ProfileKind, parse_inference_profile, parse_role_arn

__all__ = [
    "COUNT_TOKENS_ACTION",
    "GATEWAY_ACTIONS",
    "INVOKE_ACTIONS",
    "IamDocument",
    "OutputFormat",
    "PolicyForm",
    "count_tokens_resource",
    "oidc_provider_document",
    "permissions_policy_document",
    "route_resources",
    "trust_policy_document",
]

INVOKE_ACTIONS = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")
COUNT_TOKENS_ACTION = "bedrock:CountTokens"
GATEWAY_ACTIONS = (*INVOKE_ACTIONS, COUNT_TOKENS_ACTION)  # every Bedrock Runtime action the gateway calls
ACCOUNT_PLACEHOLDER = "ACCOUNT_ID"
THUMBPRINT_NOTE = (
    "Thumbprints are optional: IAM verifies the issuer's TLS certificate against its own trusted root CAs."
    " If your tooling insists on one, it is the SHA-1 fingerprint of the top intermediate CA certificate of"
    " the issuer host's chain."
)


class OutputFormat(StrEnum):
    JSON = "json"
    TERRAFORM = "terraform"
    CLOUDFORMATION = "cloudformation"


class PolicyForm(StrEnum):
    """Which permissions policy: exactly the enabled routes' resources, or every model and profile."""

    LEAST_PRIVILEGE = "least-privilege"
    WILDCARD = "wildcard"


@dataclass(frozen=True, slots=True)
class IamDocument:
    """One answer: the IAM JSON (``document``), its rendering in the asked format, and notes for the admin."""

    kind: str  # oidc_provider | trust_policy | permissions_policy
    format: OutputFormat
    document: dict[str, Any]
    rendered: str
    role_arn: str | None = None
    notes: tuple[str, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)


# --- rendering ---------------------------------------------------------------------------------------------


def _hcl(value: Any) -> str:
    """A JSON value as an HCL expression (HCL object constructors accept ``:``), ``${`` escaped."""
    return json.dumps(value, indent=2).replace("${", "$${").replace("%{", "%%{")


def _tf_name(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in text.lower())
    return cleaned if cleaned and not cleaned[0].isdigit() else f"r_{cleaned}"


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if i else line for i, line in enumerate(text.splitlines()))


def _cfn(resources: dict[str, Any]) -> str:
    return json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}, indent=2)


# --- OIDC provider -----------------------------------------------------------------------------------------


def oidc_provider_document(*, issuer_url: str, audience: str, fmt: OutputFormat) -> IamDocument:
    host = issuer_url.split("://", 1)[-1].rstrip("/")
    document = {"Url": issuer_url, "ClientIDList": [audience], "ThumbprintList": []}
    if fmt is OutputFormat.TERRAFORM:
        rendered = (
            'resource "aws_iam_openid_connect_provider" "byollm" {\n'
            f"  url            = {json.dumps(issuer_url)}\n"
            f"  client_id_list = {json.dumps([audience])}\n"
            "  # thumbprint_list is optional (IAM trusts the issuer's CA-signed certificate)\n"
            "}\n"
        )
    elif fmt is OutputFormat.CLOUDFORMATION:
        rendered = _cfn({"ByollmOidcProvider": {"Type": "AWS::IAM::OIDCProvider",
                                                "Properties": {"Url": issuer_url, "ClientIdList": [audience]}}})
    else:
        rendered = json.dumps(document, indent=2)
    return IamDocument(
        kind="oidc_provider", format=fmt, document=document, rendered=rendered,
        notes=(f"Create it once per AWS account whose roles byollm assumes; its name is {host}.",
               THUMBPRINT_NOTE),
        facts={"issuer_url": issuer_url, "issuer_host": host, "audience": audience,
               "provider_arn_pattern": f"arn:aws:iam::<account>:oidc-provider/{host}"},
    )


# --- trust policy ------------------------------------------------------------------------------------------


def _role_facts(role_arn: str | None) -> tuple[str, str, str]:
    """(partition, account, role name) of a role ARN, placeholders when none is configured."""
    if role_arn:
        try:
            parsed = parse_role_arn(role_arn)
            return parsed.partition, parsed.account_id, parsed.name
        except InvalidValue:
            pass
    return "aws", ACCOUNT_PLACEHOLDER, "byollm-team"


def trust_policy_document(*, issuer_url: str, audience: str, team_uid: str, role_arn: str | None,
                          fmt: OutputFormat, agent_uid: str | None = None, agent_name: str | None = None,
                          agent_strict: bool = False, max_session_duration: int = 3600) -> IamDocument:
    host = issuer_url.split("://", 1)[-1].rstrip("/")
    partition, account, role_name = _role_facts(role_arn)
    provider_arn = f"arn:{partition}:iam::{account}:oidc-provider/{host}"
    subjects = [f"scoped_principal:{team_uid}/*"]
    if agent_uid is not None and agent_strict:
        subjects = [f"scoped_principal:{team_uid}/service_account:{agent_uid}"]
    statement = {
        "Sid": "ByollmWebIdentity",
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {f"{host}:aud": audience},
            "StringLike": {f"{host}:sub": subjects if len(subjects) > 1 else subjects[0]},
        },
    }
    document = {"Version": "2012-10-17", "Statement": [statement]}
    notes = [f"The role's MaxSessionDuration must be at least {max_session_duration} seconds."]
    if account == ACCOUNT_PLACEHOLDER:
        notes.append("No role ARN is configured yet: replace ACCOUNT_ID, then set the role ARN in byollm.")
    if agent_uid is not None and not agent_strict:
        notes.append(
            f"IAM has no condition key for byollm's agent claim, so this role trusts every run of team {team_uid};"
            " keep the override role's permissions specific to the agent. Runs users start carry"
            f" .../user:<user-uid>; the agent's own trigger carries .../service_account:{agent_uid}.")
    resource = _tf_name(f"byollm_{agent_name or 'team'}_{team_uid[:8]}")
    if fmt is OutputFormat.TERRAFORM:
        rendered = (
            f'resource "aws_iam_role" "{resource}" {{\n'
            f"  name                 = {json.dumps(role_name)}\n"
            f"  max_session_duration = {max_session_duration}\n"
            f"  assume_role_policy   = jsonencode({_indent(_hcl(document), 2)})\n"
            "}\n"
        )
    elif fmt is OutputFormat.CLOUDFORMATION:
        rendered = _cfn({"ByollmRole": {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": role_name, "MaxSessionDuration": max_session_duration,
            "AssumeRolePolicyDocument": document}}})
    else:
        rendered = json.dumps(document, indent=2)
    return IamDocument(
        kind="trust_policy", format=fmt, document=document, rendered=rendered, role_arn=role_arn,
        notes=tuple(notes),
        facts={"issuer_host": host, "audience": audience, "provider_arn": provider_arn, "subjects": subjects,
               "team_uid": team_uid, "agent_uid": agent_uid},
    )


# --- permissions policy ------------------------------------------------------------------------------------


def _profile_models(catalog: Catalog, profile_id: str, region: str) -> set[str]:
    """Foundation-model ARNs a system profile needs (see ``Catalog.foundation_model_arns``)."""
    return set(catalog.foundation_model_arns(profile_id, region))


def count_tokens_resource(foundation_model_id: str, region: str) -> str:
    """The resource ``bedrock:CountTokens`` is authorised on: the foundation model in the calling region."""
    return f"arn:{partition_for_region(region)}:bedrock:{region}::foundation-model/{foundation_model_id}"


def _wildcard_document(partition: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "ByollmBedrockModelAccess", "Effect": "Allow", "Action": list(GATEWAY_ACTIONS),
        "Resource": [f"arn:{partition}:bedrock:*::foundation-model/*",
                     f"arn:{partition}:bedrock:*:*:inference-profile/*",
                     f"arn:{partition}:bedrock:*:*:application-inference-profile/*"]}]}


def _route_resources(catalog: Catalog, model_id: str, upstream: str, region: str, account: str) -> set[str]:
    """Resources one Bedrock route needs (see the module docstring)."""
    ref = parse_inference_profile(upstream)
    partition = partition_for_region(region)
    if ref.kind is ProfileKind.SYSTEM_PROFILE:
        return {catalog.inference_profile_arn(upstream, region, account), *_profile_models(catalog, upstream, region)}
    if ref.kind is ProfileKind.SYSTEM_PROFILE_ARN:
        profile_id = upstream.rsplit("/", 1)[-1]
        return {upstream, *_profile_models(catalog, profile_id, ref.region or region)}
    if ref.kind is ProfileKind.APPLICATION_PROFILE_ARN:
        model = catalog.get(model_id)
        fm = model.bedrock.foundation_model_id if model is not None and model.bedrock is not None else None
        # What an application profile routes to is known only to the account: allow the model it serves in
        # any region (one model, not all), plus the region-less ARN a global source profile needs.
        extra = {f"arn:{partition}:bedrock:*::foundation-model/{fm}",
                 f"arn:{partition}:bedrock:::foundation-model/{fm}"} if fm else set()
        return {upstream, *extra}
    if ref.kind is ProfileKind.FOUNDATION_MODEL_ARN:
        return {upstream}
    return set(catalog.foundation_model_arns(upstream, region))


def route_resources(catalog: Catalog, model_id: str, upstream: str, region: str, account: str) -> frozenset[str]:
    """The resources one Bedrock route needs ``bedrock:InvokeModel*`` on: the doctor checks a role's policy
    against exactly these, and ``permissions_policy_document`` grants exactly their union. Raises
    ``InvalidValue`` for an upstream id that is not a profile, model id or Bedrock ARN."""
    return frozenset(_route_resources(catalog, model_id, upstream, region, account))


def permissions_policy_document(*, policy: TeamPolicy, catalog: Catalog, fmt: OutputFormat,
                                role_arn: str | None = None,
                                form: PolicyForm = PolicyForm.LEAST_PRIVILEGE) -> IamDocument:
    region = policy.bedrock.region
    role_arn = role_arn or policy.bedrock.role_arn
    _partition, account, role_name = _role_facts(role_arn)
    account_in_arns = "*" if account == ACCOUNT_PLACEHOLDER else account
    resources: set[str] = set()
    counted: set[str] = set()
    models: list[dict[str, str]] = []
    notes: list[str] = []
    for model in catalog:
        if not policy.models.bedrock_enabled(model.id) or not model.offered_on_bedrock_in(region):
            continue
        upstream = policy.models.routing(model.id).inference_profile or catalog.default_bedrock_upstream(
            model.id, region)
        if upstream is None:
            notes.append(f"{model.id}: no inference profile serves {region}; set an override first")
            continue
        try:
            resources |= _route_resources(catalog, model.id, upstream, region, account_in_arns)
        except InvalidValue:
            notes.append(f"{model.id}: cannot derive resources for {upstream!r}")
            continue
        assert model.bedrock is not None  # offered_on_bedrock_in
        counted.add(count_tokens_resource(model.bedrock.foundation_model_id, region))
        models.append({"model": model.id, "upstream": upstream})
    statements: list[dict[str, Any]] = []
    if resources:
        statements.append({"Sid": "ByollmInvokeEnabledModels", "Effect": "Allow", "Action": list(INVOKE_ACTIONS),
                           "Resource": sorted(resources)})
        statements.append({"Sid": "ByollmCountTokens", "Effect": "Allow", "Action": COUNT_TOKENS_ACTION,
                           "Resource": sorted(counted)})
    least = {"Version": "2012-10-17", "Statement": statements}
    wildcard = _wildcard_document(partition_for_region(region))
    if form is PolicyForm.WILDCARD:
        document = wildcard
        notes.append("Wildcard form: every foundation model and inference profile, so models enabled later need"
                     " no policy change. The least-privilege form lists only what the enabled models use.")
    else:
        document = least
        if not resources:
            notes.append("The team enables no Bedrock model yet: enable one, then print this policy again.")
        notes.append("Least-privilege form: a model enabled later needs this policy printed and applied again;"
                     " the wildcard form (--form wildcard) does not.")
        if account == ACCOUNT_PLACEHOLDER:
            notes.append("No role ARN is configured: profile ARNs use '*' for the account.")
    notes.append("Also grant model access to these models in the Bedrock console of each region listed.")
    if fmt is OutputFormat.TERRAFORM:
        rendered = (
            f'resource "aws_iam_role_policy" "{_tf_name("byollm_bedrock_" + policy.team_uid[:8])}" {{\n'
            '  name   = "byollm-bedrock-invoke"\n'
            f"  role   = {json.dumps(role_name)}\n"
            f"  policy = jsonencode({_indent(_hcl(document), 2)})\n"
            "}\n"
        )
    elif fmt is OutputFormat.CLOUDFORMATION:
        rendered = _cfn({"ByollmBedrockInvoke": {"Type": "AWS::IAM::RolePolicy", "Properties": {
            "PolicyName": "byollm-bedrock-invoke", "RoleName": role_name, "PolicyDocument": document}}})
    else:
        rendered = json.dumps(document, indent=2)
    return IamDocument(kind="permissions_policy", format=fmt, document=document, rendered=rendered,
                       role_arn=role_arn, notes=tuple(notes),
                       facts={"region": region, "models": models, "team_uid": policy.team_uid, "form": form.value,
                              "forms": {PolicyForm.LEAST_PRIVILEGE.value: least, PolicyForm.WILDCARD.value: wildcard}})
