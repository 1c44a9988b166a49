"""The doctor's checks that judge IAM and Bedrock facts: pure functions from documents and answers to ``Check``s.

Why separate from the service: these run in two places. The server runs them on policy documents an admin
pasted into the panel (and, in tests, with an in-process reader); the ``byollm doctor`` CLI runs them on its
own machine with what it read from AWS with the admin's credentials (``run_aws_checks``), then merges them
into the server's report. Same code, same wording, same fixing documents.

Each failing check names exactly what is wrong (the trust-policy condition that is false for byollm's token,
each resource the permissions do not cover) and carries its error class's remediation and the documents
that fix this configuration.

Policies are evaluated with the request context AWS would build for byollm's calls (``request_context``):
``aws:RequestedRegion`` (the Region of each resource; ``unspecified`` for the region-less model ARN a
``global.`` profile is authorised on), ``aws:PrincipalArn`` (the role), ``aws:CurrentTime`` and
``aws:EpochTime`` (now), ``aws:SecureTransport`` (true: byollm calls AWS over TLS). ``aws:SourceIp`` is left
out: byollm's egress address as AWS sees it is not known here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from byollm.doctor.aws import AwsReader, AwsReadError, OidcProviderFacts
from byollm.doctor.report import Check, DoctorInputs, ScopeInputs, failing, passing, skipped
from byollm.errors import ErrorClass
from byollm.iam.evaluate import MalformedPolicy, evaluate_identity, evaluate_trust, global_context
from byollm.iam.policies import COUNT_TOKENS_ACTION, GATEWAY_ACTIONS, INVOKE_ACTIONS, count_tokens_resource
from byollm.policy.validate import InvalidValue, parse_role_arn

__all__ = [
    "logging_checks",
    "model_account_checks",
    "permissions_check",
    "permissions_from_decisions",
    "provider_check",
    "request_context",
    "role_account",
    "run_aws_checks",
    "trust_check",
]

TRUST = "Trust policy admits byollm's tokens"
PERMISSIONS = "Permissions cover every enabled model's route"
PROVIDER = "OIDC provider registered for byollm's issuer"


def role_account(role_arn: str | None) -> tuple[str, str] | None:
    """(partition, account) of a role ARN, or None when it is missing or invalid."""
    if not role_arn:
        return None
    try:
        parsed = parse_role_arn(role_arn)
    except InvalidValue:
        return None
    return parsed.partition, parsed.account_id


def _provider_arn(inputs: DoctorInputs, scope: ScopeInputs) -> str | None:
    facts = role_account(scope.role_arn)
    if facts is None or inputs.issuer_host is None:
        return None
    return f"arn:{facts[0]}:iam::{facts[1]}:oidc-provider/{inputs.issuer_host}"


# --- trust policy ----------------------------------------------------------------------------------------------


def trust_check(inputs: DoctorInputs, scope: ScopeInputs, document: Mapping[str, Any] | None, *,
                source: str) -> Check:
    """Evaluate ``document`` (the role's trust policy, from ``source``) for the tokens byollm mints for this
    scope, with IAM's condition semantics; name each false condition or principal mismatch."""
    cid, fixes = f"{scope.scope}.trust_policy", scope.fixes.get("trust_policy", {})
    provider_arn = _provider_arn(inputs, scope)
    host = inputs.issuer_host
    if provider_arn is None or host is None:
        return skipped(cid, TRUST, "needs a valid role ARN and byollm's public issuer URL", scope=scope.scope)
    if document is None:
        return failing(cid, TRUST, f"{scope.role_arn} has no trust policy ({source})",
                       ErrorClass.ROLE_ASSUMPTION_FAILED, scope=scope.scope, fixes=fixes)
    refused: list[str] = []
    optional_refused: list[str] = []
    admitted: list[str] = []
    now = datetime.now(UTC)
    for purpose, subject in scope.subjects.items():
        context = {**global_context(now=now, requested_region=inputs.region),
                   f"{host}:sub": [subject], f"{host}:aud": [inputs.audience]}
        try:
            evaluation = evaluate_trust(document, principal=("Federated", provider_arn), context=context)
        except MalformedPolicy as exc:
            return failing(cid, TRUST, f"the trust policy of {scope.role_arn} ({source}) cannot be read: {exc}",
                           ErrorClass.ROLE_ASSUMPTION_FAILED, scope=scope.scope, fixes=fixes)
        if evaluation.allowed:
            admitted.append(f"{purpose} (sub {subject})")
            continue
        line = f"{purpose} (sub {subject}, aud {inputs.audience}): " + "; ".join(evaluation.reasons())
        (refused if subject in scope.required_subjects else optional_refused).append(line)
    if refused:
        detail = (f"the trust policy of {scope.role_arn} ({source}) refuses byollm's tokens for the federated"
                  f" principal {provider_arn}: " + " | ".join(refused + optional_refused))
        return failing(cid, TRUST, detail, ErrorClass.ROLE_ASSUMPTION_FAILED, scope=scope.scope, fixes=fixes)
    if optional_refused:
        detail = (f"the trust policy of {scope.role_arn} ({source}) admits {', '.join(admitted)} but refuses "
                  + " | ".join(optional_refused))
        return failing(cid, TRUST, detail, ErrorClass.ROLE_ASSUMPTION_FAILED, scope=scope.scope, fixes=fixes,
                       status="warn")
    return passing(cid, TRUST, f"the trust policy of {scope.role_arn} ({source}) admits {', '.join(admitted)}"
                               f" from {provider_arn} with aud {inputs.audience}", scope=scope.scope)


# --- permissions -----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Need:
    actions: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)


# (resource, the inference profile the call goes through or None) -> what byollm calls on it and for which routes
_Needs = dict[tuple[str, str | None], _Need]


def _profile_of(resources: Sequence[str]) -> str | None:
    return next((r for r in resources if ":inference-profile/" in r or ":application-inference-profile/" in r),
                None)


def _needs(scope: ScopeInputs, region: str) -> _Needs:
    """What byollm calls: the invoke actions on each route's resources (through the route's profile, if
    any), and CountTokens on the foundation model in the team's region (called with the model id)."""
    needs: _Needs = {}

    def add(resource: str, profile: str | None, actions: Sequence[str], route: str) -> None:
        need = needs.setdefault((resource, profile), _Need())
        need.actions.extend(a for a in actions if a not in need.actions)
        if route not in need.routes:
            need.routes.append(route)

    for route in scope.routes:
        label = f"{route.model} via {route.upstream}"
        profile = _profile_of(route.resources)
        for resource in route.resources:
            add(resource, profile, INVOKE_ACTIONS, label)
        if route.foundation_model_id:
            add(count_tokens_resource(route.foundation_model_id, region), None, (COUNT_TOKENS_ACTION,), label)
    return needs


def requested_region(resource: str) -> str:
    """``aws:RequestedRegion`` as AWS sets it when authorising ``resource``: its Region, or ``unspecified``
    for a region-less ARN (global cross-Region inference)."""
    parts = resource.split(":")
    return (parts[3] if len(parts) > 3 else "") or "unspecified"


def request_context(scope: ScopeInputs, resource: str, profile: str | None, now: datetime) -> dict[str, list[str]]:
    """The condition keys AWS evaluates byollm's call on ``resource`` with, through ``scope``'s role (and
    ``bedrock:InferenceProfileArn`` when the call goes through an inference profile)."""
    context = global_context(now=now, requested_region=requested_region(resource), principal_arn=scope.role_arn)
    if profile is not None:
        context["bedrock:InferenceProfileArn"] = [profile]
    return context


def _permissions_verdict(scope: ScopeInputs, needs: _Needs, missing: Mapping[str, list[str]],
                         source: str) -> Check:
    cid, fixes = f"{scope.scope}.permissions", scope.fixes.get("permissions_policy", {})
    if not needs:
        return skipped(cid, PERMISSIONS, "no Bedrock model is enabled for this team's region", scope=scope.scope)
    resources = {resource for resource, _ in needs}
    if not missing:
        return passing(cid, PERMISSIONS, f"{scope.role_arn} ({source}) allows {', '.join(GATEWAY_ACTIONS)} where"
                                         f" byollm calls them, on all {len(resources)} resource(s) the enabled"
                                         " routes need", scope=scope.scope)
    routes: dict[str, list[str]] = {}
    for (resource, _), need in needs.items():
        routes.setdefault(resource, []).extend(r for r in need.routes if r not in routes.get(resource, []))
    lines = [f"{resource} ({', '.join(actions)}; needed by {', '.join(routes[resource])})"
             for resource, actions in missing.items()]
    detail = f"the permissions of {scope.role_arn} ({source}) do not allow: " + "; ".join(lines)
    only_counting = all(a.startswith(f"{COUNT_TOKENS_ACTION}:") for actions in missing.values() for a in actions)
    if only_counting:  # requests still run; only the count_tokens endpoint fails on Bedrock routes
        detail += f" — model calls work, but count_tokens requests on these routes fail without {COUNT_TOKENS_ACTION}"
    return failing(cid, PERMISSIONS, detail, ErrorClass.INSUFFICIENT_PERMISSIONS, scope=scope.scope, fixes=fixes,
                   status="warn" if only_counting else "fail")


def _record(missing: dict[str, list[str]], resource: str, line: str) -> None:
    if line not in missing.setdefault(resource, []):
        missing[resource].append(line)


def permissions_check(scope: ScopeInputs, documents: Sequence[Mapping[str, Any]], *, source: str, region: str,
                      now: datetime | None = None) -> Check:
    """Evaluate identity-policy ``documents`` for every action on every resource the scope's routes need,
    each with the request context AWS would use (``request_context``)."""
    moment = now or datetime.now(UTC)
    needs = _needs(scope, region)
    missing: dict[str, list[str]] = {}
    try:
        for (resource, profile), need in needs.items():
            context = request_context(scope, resource, profile, moment)
            for action in need.actions:
                evaluation = evaluate_identity(documents, action, resource, context)
                if not evaluation.allowed:
                    why = "explicit deny" if evaluation.decision == "explicitDeny" else "not allowed"
                    conditions = [r for r in evaluation.reasons() if ": condition " in r]
                    if conditions:  # an Allow covered it but a condition was false: name that condition
                        why += f" ({'; '.join(conditions)})"
                    _record(missing, resource, f"{action}: {why}")
    except MalformedPolicy as exc:
        return failing(f"{scope.scope}.permissions", PERMISSIONS, f"the permissions policy ({source}) cannot be"
                       f" read: {exc}", ErrorClass.INSUFFICIENT_PERMISSIONS, scope=scope.scope,
                       fixes=scope.fixes.get("permissions_policy", {}))
    return _permissions_verdict(scope, needs, missing, source)


Decisions = Mapping[tuple[str, str, str | None], str]  # (action, resource, profile) -> decision


def permissions_from_decisions(scope: ScopeInputs, decisions: Decisions, *, source: str, region: str) -> Check:
    """The same verdict from ``SimulatePrincipalPolicy`` answers (every policy attached to the role counts)."""
    needs = _needs(scope, region)
    missing: dict[str, list[str]] = {}
    for (resource, profile), need in needs.items():
        for action in need.actions:
            decision = decisions.get((action, resource, profile), "implicitDeny")
            if decision != "allowed":
                _record(missing, resource, f"{action}: {decision}")
    return _permissions_verdict(scope, needs, missing, source)


def _simulate(reader: AwsReader, scope: ScopeInputs, region: str) -> dict[tuple[str, str, str | None], str]:
    """SimulatePrincipalPolicy for every needed resource, one call per request context (requested Region,
    profile) so each resource is simulated with the context AWS would set for it."""
    assert scope.role_arn is not None
    now = datetime.now(UTC)
    groups: dict[tuple[str, str | None], list[str]] = {}
    for resource, profile in _needs(scope, region):
        groups.setdefault((requested_region(resource), profile), []).append(resource)
    decisions: dict[tuple[str, str, str | None], str] = {}
    for (_, profile), resources in groups.items():
        context = request_context(scope, resources[0], profile, now)
        answers = reader.simulate(scope.role_arn, GATEWAY_ACTIONS, sorted(resources), context)
        decisions.update({(action, resource, profile): d for (action, resource), d in answers.items()})
    return decisions


# --- OIDC provider -----------------------------------------------------------------------------------------------


def provider_check(inputs: DoctorInputs, scope: ScopeInputs, facts: OidcProviderFacts | None, *,
                   near_miss: OidcProviderFacts | None = None) -> Check:
    """``near_miss`` is a provider registered for the issuer URL with a trailing slash: IAM keeps the slash and
    matches ``iss`` exactly, so it does not admit byollm's tokens (the most common real web-identity failure)."""
    cid, fixes = f"{scope.scope}.oidc_provider", scope.fixes.get("oidc_provider", {})
    provider_arn = _provider_arn(inputs, scope) or "?"
    if facts is None and near_miss is not None:
        return failing(cid, PROVIDER, f"the IAM OpenID Connect provider {near_miss.arn} was registered with a"
                                      f" trailing slash ({near_miss.url or near_miss.arn}), but byollm's tokens"
                                      f" carry iss {inputs.issuer_url}; IAM matches the URL exactly, so create"
                                      f" {provider_arn} (the URL without the slash)",
                       ErrorClass.OIDC_PROVIDER_MISSING, scope=scope.scope, fixes=fixes)
    if facts is None:
        return failing(cid, PROVIDER, f"no IAM OpenID Connect provider {provider_arn} exists for issuer"
                                      f" {inputs.issuer_url} in the role's account",
                       ErrorClass.OIDC_PROVIDER_MISSING, scope=scope.scope, fixes=fixes)
    if inputs.audience not in facts.client_ids:
        return failing(cid, PROVIDER, f"the OIDC provider {facts.arn} does not list the audience {inputs.audience}"
                                      f" (its client IDs: {', '.join(facts.client_ids) or 'none'})",
                       ErrorClass.OIDC_PROVIDER_MISSING, scope=scope.scope, fixes=fixes)
    return passing(cid, PROVIDER, f"{facts.arn} lists the audience {inputs.audience}", scope=scope.scope)


# --- models and logging (the account's Bedrock control plane) ----------------------------------------------------


def model_account_checks(inputs: DoctorInputs, reader: AwsReader) -> list[Check]:
    """Each enabled model offered to the account in the region (ListFoundationModels) and each system
    profile it uses callable from there (GetInferenceProfile)."""
    routes = {r.model: r for s in inputs.scopes for r in s.routes}
    checks: list[Check] = []
    title = "Model offered to the account in the team's region"
    try:
        offered = reader.foundation_models(inputs.region)
    except AwsReadError as exc:
        return [skipped(f"models.{m}.account", title, f"could not list Bedrock models in {inputs.region}:"
                        f" {exc.code}", scope="account") for m in routes]
    for model, route in routes.items():
        cid = f"models.{model}.account"
        if route.foundation_model_id and route.foundation_model_id not in offered:
            checks.append(failing(cid, title, f"{route.foundation_model_id} ({model}) is not offered in"
                                              f" {inputs.region} (ListFoundationModels)",
                                  ErrorClass.REGION_MODEL_MISMATCH, scope="account"))
            continue
        if not route.upstream.startswith("arn:") and route.upstream != route.foundation_model_id:
            try:
                profile = reader.inference_profile(inputs.region, route.upstream)
            except AwsReadError as exc:
                checks.append(skipped(cid, title, f"could not read inference profile {route.upstream}: {exc.code}",
                                      scope="account"))
                continue
            if profile is None:
                checks.append(failing(cid, title, f"inference profile {route.upstream} ({model}) cannot be called"
                                                  f" from {inputs.region} (GetInferenceProfile: not found)",
                                      ErrorClass.REGION_MODEL_MISMATCH, scope="account"))
                continue
        checks.append(passing(cid, title, f"{route.upstream} ({model}) is offered in {inputs.region}", scope="account"))
    return checks


def logging_checks(inputs: DoctorInputs, reader: AwsReader) -> tuple[list[Check], str]:
    """Whether model invocation logging is configured, and whether the doctor's test prompts are visible in
    the log. Says plainly when the log cannot be read."""
    title, seen_title = "Model invocation logging configured", "Test prompt visible in the invocation log"
    try:
        config = reader.invocation_logging(inputs.region)
    except AwsReadError as exc:
        return [skipped("account.invocation_logging", title, f"could not read the logging configuration in"
                        f" {inputs.region}: {exc.code}", scope="account")], "unknown"
    if not config:
        return [Check(id="account.invocation_logging", title=title, status="warn", scope="account",
                      detail=f"model invocation logging is not configured in {inputs.region}: Bedrock keeps no"
                             " record of byollm's requests in your account",
                      remediation="Turn on model invocation logging (Bedrock console → Settings) to CloudWatch Logs"
                                  " or S3 if you want provider-side logs of each request.")], "disabled"
    group = (config.get("cloudWatchConfig") or {}).get("logGroupName")
    where = f"CloudWatch Logs group {group}" if group else "S3" if config.get("s3Config") else "a configured sink"
    checks = [passing("account.invocation_logging", title, f"invocation logs go to {where} ({inputs.region})",
                      scope="account")]
    if not group:
        checks.append(skipped("account.invocation_log", seen_title, f"invocation logs go to {where}; byollm reads"
                              " CloudWatch Logs only", scope="account"))
    elif not inputs.probe_request_ids:
        checks.append(skipped("account.invocation_log", seen_title, "no test prompt was sent", scope="account"))
    else:
        marker = inputs.probe_request_ids[0]
        try:
            found = reader.invocation_log_has(inputs.region, group, marker)
        except AwsReadError as exc:
            checks.append(skipped("account.invocation_log", seen_title, f"could not read CloudWatch Logs group"
                                  f" {group} ({exc.code}{': ' + exc.message[:160] if exc.message else ''}); look for"
                                  f" request metadata byollm_request_id={marker}"
                                  " there yourself", scope="account"))
        else:
            checks.append(passing("account.invocation_log", seen_title, f"found {marker} in {group}", scope="account")
                          if found else Check(
                              id="account.invocation_log", title=seen_title, status="warn", scope="account",
                              detail=f"{marker} is not in {group} yet (delivery can take minutes); run the doctor"
                                     " again later"))
    return checks, "enabled"


# --- everything the CLI reads ----------------------------------------------------------------------------------


def _with_app_profiles(inputs: DoctorInputs, scope: ScopeInputs, reader: AwsReader) -> ScopeInputs:
    """Application-profile routes with the resources the account says they use (GetInferenceProfile): the
    profile and every foundation model it routes to; when those span geographies (a copy of a global
    profile), what a global profile is authorised on instead."""
    routes = []
    for route in scope.routes:
        if ":application-inference-profile/" not in route.upstream:
            routes.append(route)
            continue
        try:
            profile = reader.inference_profile(inputs.region, route.upstream)
        except AwsReadError:
            profile = None
        arns = [str(m.get("modelArn")) for m in (profile or {}).get("models", []) if isinstance(m, dict)]
        if not arns:
            routes.append(route)
            continue
        needed = {route.upstream, *arns}
        if len({a.split(":")[3].split("-")[0] for a in arns}) > 1:
            # a copy of a global profile: authorised as one (the profile, the model in the source Region and
            # the region-less model ARN), not on each destination Region
            partition, source = route.upstream.split(":")[1], route.upstream.split(":")[3]
            needed = {route.upstream, f"arn:{partition}:bedrock:{source}::foundation-model/{route.foundation_model_id}",
                      f"arn:{partition}:bedrock:::foundation-model/{route.foundation_model_id}"}
        routes.append(replace(route, resources=tuple(sorted(needed))))
    return replace(scope, routes=tuple(routes))


def run_aws_checks(inputs: DoctorInputs, reader: AwsReader) -> tuple[list[Check], str]:
    """Every AWS-reading check for ``inputs``: per role, the OIDC provider, the trust policy (GetRole) and
    the permissions (SimulatePrincipalPolicy); then the account's models and invocation logging.
    Returns the checks and the invocation-logging state (``enabled``/``disabled``/``unknown``)."""
    checks: list[Check] = []
    try:
        account = reader.caller_account()
    except AwsReadError as exc:
        account = None
        checks.append(skipped("account.credentials", "Your AWS credentials", f"could not identify them: {exc.code}"
                              " (sign in with `aws login` or set AWS_PROFILE)", scope="account"))
    for scope in inputs.scopes:
        facts = role_account(scope.role_arn)
        if facts is None or scope.role_arn is None:
            continue
        if account is not None and account != facts[1]:
            why = (f"your AWS credentials are for account {account}, the role {scope.role_arn} is in {facts[1]}:"
                   " run the doctor with credentials of that account")
            checks.extend(skipped(f"{scope.scope}.{what}", title, why, scope=scope.scope)
                          for what, title in (("oidc_provider", PROVIDER), ("trust_policy", TRUST),
                                              ("permissions", PERMISSIONS)))
            continue
        if inputs.issuer_host is not None:
            try:
                found = reader.oidc_provider(facts[1], inputs.issuer_host)
                near = None if found is not None else reader.oidc_provider(facts[1], f"{inputs.issuer_host}/")
                checks.append(provider_check(inputs, scope, found, near_miss=near))
            except AwsReadError as exc:
                checks.append(skipped(f"{scope.scope}.oidc_provider", PROVIDER, f"could not read it: {exc.code}",
                                      scope=scope.scope))
        try:
            document = reader.role_trust_policy(scope.role_arn)
            checks.append(trust_check(inputs, scope, document, source="GetRole"))
        except AwsReadError as exc:
            error_class = ErrorClass.ROLE_ASSUMPTION_FAILED
            if exc.code == "NoSuchEntity":
                checks.append(failing(f"{scope.scope}.trust_policy", TRUST, f"the role {scope.role_arn} does not"
                                      " exist (GetRole: NoSuchEntity): check the role ARN configured in byollm",
                                      error_class, scope=scope.scope, fixes=scope.fixes.get("trust_policy", {})))
            else:
                checks.append(skipped(f"{scope.scope}.trust_policy", TRUST, f"could not read the role: {exc.code}",
                                      scope=scope.scope))
        scope = _with_app_profiles(inputs, scope, reader)
        if scope.routes:
            try:
                decisions = _simulate(reader, scope, inputs.region)
                checks.append(permissions_from_decisions(scope, decisions, source="SimulatePrincipalPolicy",
                                                         region=inputs.region))
            except AwsReadError as exc:
                checks.append(skipped(f"{scope.scope}.permissions", PERMISSIONS,
                                      f"could not simulate the role's policies: {exc.code}", scope=scope.scope))
    checks.extend(model_account_checks(inputs, reader))
    logging, state = logging_checks(inputs, reader)
    checks.extend(logging)
    return checks, state
