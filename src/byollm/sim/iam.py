"""IAM reads (query protocol, XML): GetRole, GetOpenIDConnectProvider, ListOpenIDConnectProviders,
SimulatePrincipalPolicy. Every call is SigV4-signed and authorised against the caller's own policies.

Policy documents are returned URL-encoded JSON, as real IAM does (botocore decodes them back to dicts).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from urllib.parse import quote
from xml.sax.saxutils import escape

from starlette.responses import Response

from byollm.sim.authorize import authorise, policy_sets, request_context
from byollm.sim.iam_policy import ALLOWED, EXPLICIT_DENY, PolicyError, PolicySet, compile_policies
from byollm.sim.sigv4 import Verified
from byollm.sim.state import SimState
from byollm.sim.sts import QueryError, iso8601, xml_response
from byollm.sim.world import Account

__all__ = ["IAM_NAMESPACE", "IamService", "list_param", "not_authorized"]

IAM_NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/"
_PROVIDER_ARN = re.compile(r"arn:aws:iam::(\d{12}):oidc-provider/(.+)\Z")


def list_param(params: Mapping[str, str], name: str) -> list[str]:
    """Query-protocol list ``Name.member.1``, ``Name.member.2``… in order."""
    out = []
    i = 1
    while f"{name}.member.{i}" in params:
        out.append(params[f"{name}.member.{i}"])
        i += 1
    return out


def not_authorized(caller_arn: str, action: str, resource: str, explicit: bool) -> str:
    """IAM's AccessDenied wording."""
    why = (
        "with an explicit deny in an identity-based policy"
        if explicit
        else f"because no identity-based policy allows the {action} action"
    )
    return f"User: {caller_arn} is not authorized to perform: {action} on resource: {resource} {why}"


def _x(value: object) -> str:
    return escape(str(value))


class IamService:
    """The IAM read actions. ``call`` returns the response or raises QueryError."""

    ACTIONS = frozenset(
        {"GetRole", "GetOpenIDConnectProvider", "ListOpenIDConnectProviders", "SimulatePrincipalPolicy"}
    )

    def __init__(self, state: SimState) -> None:
        self._state = state

    def call(self, action: str, params: Mapping[str, str], caller: Verified, request_id: str) -> Response:
        account = self._state.account(caller.principal.account_id)
        if account is None:
            raise QueryError("InvalidClientTokenId", "The security token included in the request is invalid.", 403)
        if action == "GetRole":
            result = self._get_role(account, params, caller)
        elif action == "GetOpenIDConnectProvider":
            result = self._get_provider(account, params, caller)
        elif action == "ListOpenIDConnectProviders":
            self._authorise(caller, "iam:ListOpenIDConnectProviders", "*")
            members = "".join(
                f"\n      <member><Arn>{_x(p.arn(account.account_id))}</Arn></member>"
                for p in account.oidc_providers.values()
            )
            result = f"    <OpenIDConnectProviderList>{members}\n    </OpenIDConnectProviderList>"
        else:
            result = self._simulate(account, params, caller)
        return xml_response(action, IAM_NAMESPACE, result, request_id)

    def _authorise(self, caller: Verified, action: str, resource: str) -> None:
        context = request_context(caller, self._state.clock(), requested_region=caller.region)
        decision, _why = authorise(policy_sets(self._state, caller), action, resource, context)
        if decision != ALLOWED:
            raise QueryError(
                "AccessDenied",
                not_authorized(caller.principal.arn, action, resource, decision == EXPLICIT_DENY),
                403,
            )

    def _get_role(self, account: Account, params: Mapping[str, str], caller: Verified) -> str:
        name = params.get("RoleName", "")
        role = account.roles.get(name)
        arn = f"arn:aws:iam::{account.account_id}:role/{name}"
        self._authorise(caller, "iam:GetRole", role.arn(account.account_id) if role else arn)
        if role is None:
            raise QueryError("NoSuchEntity", f"The role with name {name} cannot be found.", 404)
        doc = quote(json.dumps(role.trust_policy))
        trust = (
            f"      <AssumeRolePolicyDocument>{doc}</AssumeRolePolicyDocument>\n"
            if role.trust_policy is not None
            else ""
        )
        return (
            f"    <Role>\n      <Path>{_x(role.path)}</Path>\n{trust}"
            f"      <MaxSessionDuration>{role.max_session_duration}</MaxSessionDuration>\n"
            f"      <RoleId>{role.role_id}</RoleId>\n      <RoleName>{_x(role.name)}</RoleName>\n"
            f"      <Description>{_x(role.description)}</Description>\n"
            f"      <Arn>{_x(role.arn(account.account_id))}</Arn>\n"
            f"      <CreateDate>{iso8601(role.create_date)}</CreateDate>\n    </Role>"
        )

    def _get_provider(self, account: Account, params: Mapping[str, str], caller: Verified) -> str:
        arn = params.get("OpenIDConnectProviderArn", "")
        self._authorise(caller, "iam:GetOpenIDConnectProvider", arn)
        match = _PROVIDER_ARN.match(arn)
        if match is None:
            raise QueryError("InvalidInput", f"ARN {arn} is not valid.", 400)
        provider = account.oidc_providers.get(match.group(2)) if match.group(1) == account.account_id else None
        if provider is None:
            raise QueryError("NoSuchEntity", f"OpenIDConnect provider not found for arn {arn}", 404)
        clients = "".join(f"\n      <member>{_x(c)}</member>" for c in provider.client_ids)
        prints = "".join(f"\n      <member>{_x(t)}</member>" for t in provider.thumbprints)
        return (
            f"    <Url>{_x(provider.host_path)}</Url>\n"
            f"    <ClientIDList>{clients}\n    </ClientIDList>\n"
            f"    <ThumbprintList>{prints}\n    </ThumbprintList>\n"
            f"    <CreateDate>{iso8601(provider.create_date)}</CreateDate>"
        )

    def _simulate(self, account: Account, params: Mapping[str, str], caller: Verified) -> str:
        source = params.get("PolicySourceArn", "")
        self._authorise(caller, "iam:SimulatePrincipalPolicy", source)
        policies = self._policies_of(account, source)
        extra = list_param(params, "PolicyInputList")
        if extra:
            try:
                docs = [json.loads(d) for d in extra]
                policies = compile_policies([*self._documents_of(account, source), *docs])
            except (ValueError, PolicyError) as exc:
                raise QueryError("InvalidInput", f"Invalid policy input: {exc}", 400) from None
        actions = list_param(params, "ActionNames")
        resources = list_param(params, "ResourceArns") or ["*"]
        context = self._context(params)
        members = []
        for action in actions:
            for resource in resources:
                decision = policies.evaluate(action, resource, context)
                members.append(
                    "\n      <member>\n"
                    f"        <EvalActionName>{_x(action)}</EvalActionName>\n"
                    f"        <EvalResourceName>{_x(resource)}</EvalResourceName>\n"
                    f"        <EvalDecision>{decision.decision}</EvalDecision>\n"
                    "        <MatchedStatements/>\n        <MissingContextValues/>\n"
                    f"        <EvalDecisionDetails/>\n"
                    "      </member>"
                )
        return (
            f"    <EvaluationResults>{''.join(members)}\n    </EvaluationResults>\n    <IsTruncated>false</IsTruncated>"
        )

    @staticmethod
    def _context(params: Mapping[str, str]) -> dict[str, list[str]]:
        ctx: dict[str, list[str]] = {}
        i = 1
        while f"ContextEntries.member.{i}.ContextKeyName" in params:
            prefix = f"ContextEntries.member.{i}"
            ctx[params[f"{prefix}.ContextKeyName"].lower()] = list_param(params, f"{prefix}.ContextKeyValues")
            i += 1
        return ctx

    def _documents_of(self, account: Account, source: str) -> list[dict[str, object]]:
        tail = source.split(":", 5)[-1]
        kind, _, rest = tail.partition("/")
        name = rest.split("/")[-1] if kind in ("user", "role") else rest.split("/")[0]
        if kind == "user" and name in account.users:
            return list(account.users[name].policies.values())
        if kind in ("role", "assumed-role") and name in account.roles:
            return list(account.roles[name].policies.values())
        raise QueryError("NoSuchEntity", f"The entity {source} cannot be found.", 404)

    def _policies_of(self, account: Account, source: str) -> PolicySet:
        try:
            return compile_policies(self._documents_of(account, source))
        except PolicyError as exc:
            raise QueryError("InvalidInput", str(exc), 400) from None
