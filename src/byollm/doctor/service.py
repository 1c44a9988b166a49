"""The configuration doctor: check a team's Bedrock setup the way a cloud run will use it, before a run does.

Why here and not at request time: the product's troubleshooting list (role assumption failed, missing OIDC
provider, insufficient permissions, region or model mismatch, provider quota limits, issuer unreachable) is
what users hit mid-run. ``Doctor.validate`` finds each of them at configuration time, names exactly which
condition or resource is wrong, and hands the admin the documents that fix this very configuration.

What runs where:

- on the server, with no AWS credentials of the admin: the issuer's public documents, each role ARN, the
  catalog's region offering, each agent's default model, a test prompt per enabled Bedrock model through each
  role (byollm's own OIDC token exchanged with STS, exactly as a run does, then Bedrock), recent throttling
  in the request log, and any policy documents the admin pasted (evaluated locally with IAM's semantics);
- with an ``AwsReader`` (the CLI, using the admin's own credentials): the OIDC provider, the trust policy
  (GetRole), the permissions (SimulatePrincipalPolicy), the account's models and profiles, invocation logging.
  Without one, those checks are ``skip`` with ``needs_cli=True`` and the report's ``inputs`` carry what the
  CLI needs to run them locally (``byollm.doctor.checks.run_aws_checks``).

The test prompt uses a broker of its own (same minter, same STS endpoint and session length as runs), so a
doctor run neither reuses a run's cached credentials nor leaves a back-off that would delay real runs.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from byollm.catalog.types import Catalog
from byollm.control.authz import Action, Caller, PrincipalKind, require
from byollm.control.service import ControlService
from byollm.credentials.web_identity import ExchangeConfig, WebIdentityBroker
from byollm.doctor.aws import AwsReader
from byollm.doctor.checks import permissions_check, role_account, run_aws_checks, trust_check
from byollm.doctor.report import (
    Check,
    DoctorInputs,
    DoctorReport,
    RouteNeed,
    ScopeInputs,
    failing,
    passing,
    skipped,
)
from byollm.errors import ByollmError, ErrorClass
from byollm.gateway.executor import Gateway, InferenceContext
from byollm.iam.coverage import ValidatedPermissions
from byollm.iam.policies import (
    OutputFormat,
    oidc_provider_document,
    permissions_policy_document,
    route_resources,
    trust_policy_document,
)
from byollm.oidc.wiring import OidcServices
from byollm.policy.types import Actor, ActorKind, Agent, Host, RouteRequest, TeamPolicy
from byollm.policy.validate import InvalidValue, ProfileKind, parse_inference_profile
from byollm.providers.base import CanonicalRequest, Provider, UpstreamCall
from byollm.providers.bedrock import default_endpoint
from byollm.providers.http import HttpPool
from byollm.settings import Settings
from byollm.store import Store
from byollm.store import policy as policy_repo
from byollm.store.usage import list_requests

__all__ = ["Doctor", "DoctorConfig"]

log = logging.getLogger("byollm.doctor")

_CLI = "run `byollm doctor --team <team>` with your AWS credentials, or paste the document here"
_FIX_KINDS = {
    ErrorClass.ROLE_ASSUMPTION_FAILED: "trust_policy",
    ErrorClass.OIDC_PROVIDER_MISSING: "oidc_provider",
    ErrorClass.INSUFFICIENT_PERMISSIONS: "permissions_policy",
}


def _app_profile_resources(resources: frozenset[str], arn: str, foundation_model_id: str) -> frozenset[str]:
    """What an application profile routes to is known only to the account (the CLI reads it with
    GetInferenceProfile). Without that, require what it needs at least: the profile and the foundation model
    in the profile's own region, not the any-region pattern the generated policy grants."""
    region = arn.split(":")[3]
    partition = arn.split(":")[1]
    return frozenset({r for r in resources if "*" not in r and ":::" not in r}
                     | {f"arn:{partition}:bedrock:{region}::foundation-model/{foundation_model_id}"})


@dataclass(frozen=True, slots=True)
class DoctorConfig:
    """Timeouts and windows (plain values so tests can shorten them)."""

    fetch_timeout_s: float = 5.0  # each of the issuer's documents
    prompt_timeout_s: float = 30.0  # one test prompt, exchange included
    throttling_window: timedelta = timedelta(hours=1)  # how far back the request log counts as "recent"
    session_seconds: int = 3600  # the web-identity session length runs ask for (the role must allow it)


class Doctor:
    def __init__(self, *, settings: Settings, store: Store, catalog: Catalog, control: ControlService,
                 gateway: Gateway, oidc: OidcServices | None, pool: HttpPool, bedrock: Provider,
                 config: DoctorConfig | None = None) -> None:
        self._settings = settings
        self._store = store
        self._catalog = catalog
        self._control = control
        self._gateway = gateway
        self._oidc = oidc
        self._pool = pool
        self._bedrock = bedrock
        self._config = config or DoctorConfig(session_seconds=settings.web_identity_session_seconds)

    # --- the one entry point ---------------------------------------------------------------------------------

    async def validate(self, caller: Caller, team_uid: str, *, agent_uid: str | None = None,
                       pasted_trust_policy: dict[str, Any] | None = None,
                       pasted_permissions_policy: dict[str, Any] | None = None,
                       aws_reader: AwsReader | None = None) -> DoctorReport:
        """Run every check for the team (or, with ``agent_uid``, one named agent: UID or name). Admins only."""
        require(caller, Action.MANAGE_TEAM, team_uid)
        policy, _version = await self._control.team_policy(team_uid)
        focus = self._agent(policy, agent_uid) if agent_uid else None
        inputs = self._inputs(policy, caller, focus)
        checks: list[Check] = [await self._issuer_check()]
        for scope in inputs.scopes:
            checks.append(self._role_check(scope, uses_bedrock=any(policy.models.bedrock_enabled(m.id)
                                                                   for m in self._catalog)))
        checks.extend(self._region_checks(policy))
        agents = [focus] if focus is not None else list(policy.agents.values())
        checks.extend(self._default_model_check(policy, agent) for agent in agents)
        probes = await self._prompts(policy, caller, inputs, focus)
        inputs = DoctorInputs(inputs.team_uid, inputs.region, inputs.issuer_url, inputs.audience, inputs.scopes,
                              tuple(request_id for request_id, _ in probes))
        checks.extend(check for _, check in probes)
        if checks[0].status == "fail" and any(check.status == "pass" for _, check in probes):
            # AWS fetched the documents (an exchange succeeded): only this process's own path to its public
            # URL fails (hairpin NAT, an egress proxy), which does not affect runs
            checks[0] = Check(id=checks[0].id, title=checks[0].title, status="warn", scope="byollm",
                              detail=checks[0].detail + "; AWS STS could fetch them (a test prompt passed), so"
                                     " only byollm's own route to its public URL fails")
        checks.append(await self._throttling_check(team_uid))
        checks.extend(self._pasted_checks(inputs, pasted_trust_policy, pasted_permissions_policy))
        logging_state = "unknown"
        if aws_reader is not None:
            aws_checks, logging_state = await asyncio.to_thread(run_aws_checks, inputs, aws_reader)
            pasted = {c.id for c in checks}
            checks.extend(c for c in aws_checks if c.id not in pasted)  # an admin's pasted document wins
        else:
            checks.extend(self._cli_only(inputs, {c.id for c in checks}))
        if focus is None:
            await self._remember_permissions(inputs, checks, pasted_permissions_policy)
        return DoctorReport(team_uid=team_uid, agent_uid=focus.uid if focus else None, checks=checks,
                            invocation_logging=logging_state, inputs=inputs)

    async def _remember_permissions(self, inputs: DoctorInputs, checks: list[Check],
                                    pasted: dict[str, Any] | None) -> None:
        """A passing team-wide permissions check is what saving a model policy is later compared with
        (``iam.coverage``): the pasted document itself, or the resources AWS allowed."""
        team = next((s for s in inputs.scopes if s.scope == "team"), None)
        check = next((c for c in checks if c.id == "team.permissions"), None)
        if team is None or check is None or check.status not in ("pass", "warn"):  # warn: only counting lacks
            return
        documents: tuple[dict[str, Any], ...] = ()
        allowed: frozenset[str] = frozenset()
        if pasted is not None and "pasted document" in check.detail:
            documents, source = (pasted,), "pasted document"
        else:
            allowed, source = frozenset(r for route in team.routes for r in route.resources), "SimulatePrincipalPolicy"
        record = ValidatedPermissions(role_arn=team.role_arn, source=source,
                                      validated_at=datetime.now(UTC).isoformat(timespec="seconds"),
                                      documents=documents, allowed=allowed)
        async with self._store.session() as session:
            await policy_repo.set_validated_permissions(session, team_uid=inputs.team_uid, record=record.to_json())

    # --- inputs ------------------------------------------------------------------------------------------------

    @staticmethod
    def _agent(policy: TeamPolicy, agent: str) -> Agent:
        found = policy.agents.get(agent) or next((a for a in policy.agents.values() if a.name == agent), None)
        if found is None:
            raise ByollmError(ErrorClass.NOT_FOUND, f"no agent {agent!r} in this team", agent=agent)
        return found

    def _inputs(self, policy: TeamPolicy, caller: Caller, focus: Agent | None) -> DoctorInputs:
        team = policy.team_uid
        user_sub = f"scoped_principal:{team}/user:{caller.principal_uid}"
        scopes: list[ScopeInputs] = []
        if focus is None:
            shared = [a for a in policy.agents.values() if not a.role_arn_override]
            subjects = {"runs users start": user_sub}
            subjects.update({f"agent {a.name}'s own runs": f"scoped_principal:{team}/service_account:{a.uid}"
                             for a in shared})
            scopes.append(self._scope(policy, "team", "Team-wide role", policy.bedrock.role_arn, None, subjects,
                                      tuple(subjects.values())))
            overrides = [a for a in policy.agents.values() if a.role_arn_override]
        else:
            overrides = [focus]
        for agent in overrides:
            own = f"scoped_principal:{team}/service_account:{agent.uid}"
            subjects = {f"agent {agent.name}'s own runs": own, f"runs users start of agent {agent.name}": user_sub}
            role = agent.role_arn_override or policy.bedrock.role_arn
            title = f"Agent {agent.name}: " + ("its own role" if agent.role_arn_override else "the team-wide role")
            scopes.append(self._scope(policy, f"agent:{agent.name}", title, role, agent, subjects, (own,)))
        issuer = self._oidc.issuer.url if self._oidc is not None else None
        return DoctorInputs(team_uid=team, region=policy.bedrock.region, issuer_url=issuer,
                            audience=self._settings.oidc_audience, scopes=tuple(scopes))

    def _scope(self, policy: TeamPolicy, scope: str, title: str, role_arn: str | None, agent: Agent | None,
               subjects: Mapping[str, str], required: tuple[str, ...]) -> ScopeInputs:
        region = policy.bedrock.region
        facts = role_account(role_arn)
        account = facts[1] if facts else "*"
        routes: list[RouteNeed] = []
        for model in self._catalog:
            if not policy.models.bedrock_enabled(model.id) or not model.offered_on_bedrock_in(region):
                continue
            assert model.bedrock is not None
            upstream = policy.models.routing(model.id).inference_profile or self._catalog.default_bedrock_upstream(
                model.id, region)
            if upstream is None:
                continue
            try:
                resources = route_resources(self._catalog, model.id, upstream, region, account)
                if parse_inference_profile(upstream).kind is ProfileKind.APPLICATION_PROFILE_ARN:
                    resources = _app_profile_resources(resources, upstream, model.bedrock.foundation_model_id)
            except InvalidValue:
                continue
            routes.append(RouteNeed(model.id, upstream, model.bedrock.foundation_model_id, tuple(sorted(resources))))
        return ScopeInputs(scope=scope, title=title, role_arn=role_arn, agent_uid=agent.uid if agent else None,
                           subjects=dict(subjects), required_subjects=required, routes=tuple(routes),
                           fixes=self._fixes(policy, role_arn, agent))

    def _fixes(self, policy: TeamPolicy, role_arn: str | None, agent: Agent | None) -> dict[str, dict[str, str]]:
        """The documents that fix this configuration, in every format."""
        fixes: dict[str, dict[str, str]] = {"trust_policy": {}, "permissions_policy": {}, "oidc_provider": {}}
        issuer = self._oidc.issuer.url if self._oidc is not None else None
        audience = self._settings.oidc_audience
        for fmt in OutputFormat:
            fixes["permissions_policy"][fmt.value] = permissions_policy_document(
                policy=policy, catalog=self._catalog, fmt=fmt, role_arn=role_arn).rendered
            if issuer is not None:
                fixes["trust_policy"][fmt.value] = trust_policy_document(
                    issuer_url=issuer, audience=audience, team_uid=policy.team_uid, role_arn=role_arn, fmt=fmt,
                    agent_uid=agent.uid if agent else None, agent_name=agent.name if agent else None,
                    max_session_duration=max(3600, self._config.session_seconds)).rendered
                fixes["oidc_provider"][fmt.value] = oidc_provider_document(
                    issuer_url=issuer, audience=audience, fmt=fmt).rendered
        return fixes

    # --- server-side checks ------------------------------------------------------------------------------------

    async def _issuer_check(self) -> Check:
        """AWS fetches the discovery document and the JWKS from the issuer URL: do the same, from here."""
        title, cid = "byollm's OIDC issuer is reachable", "byollm.issuer"
        issuer = self._oidc.issuer.url if self._oidc is not None else None
        if self._oidc is None or issuer is None:
            return failing(cid, title, "byollm has no public issuer URL: set BYOLLM_PUBLIC_URL (or"
                           " BYOLLM_OIDC_ISSUER_URL) to the public HTTPS address AWS can reach",
                           ErrorClass.ISSUER_UNREACHABLE, scope="byollm")
        timeout = aiohttp.ClientTimeout(total=self._config.fetch_timeout_s)
        discovery_url = f"{issuer}/.well-known/openid-configuration"
        try:
            async with self._pool.session.get(discovery_url, timeout=timeout, allow_redirects=False) as response:
                if response.status != 200:
                    raise ValueError(f"{discovery_url} answered HTTP {response.status}")
                discovery = await response.json(content_type=None)
            if not isinstance(discovery, dict) or discovery.get("issuer") != issuer:
                raise ValueError(f"{discovery_url} does not name {issuer} as its issuer")
            jwks_uri = str(discovery.get("jwks_uri", ""))
            async with self._pool.session.get(jwks_uri, timeout=timeout, allow_redirects=False) as response:
                if response.status != 200:
                    raise ValueError(f"{jwks_uri} answered HTTP {response.status}")
                jwks = await response.json(content_type=None)
            if not isinstance(jwks, dict):
                raise ValueError(f"{jwks_uri} is not a JWKS")
            kids = {str(k.get("kid")) for k in (jwks.get("keys") or []) if isinstance(k, dict)}
            signing = (await self._oidc.keys.signing_key()).kid
            if signing not in kids:
                raise ValueError(f"the JWKS at {jwks_uri} does not publish the current signing key {signing}"
                                 " (a proxy serving a stale copy?)")
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            reason = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__} fetching {discovery_url}"
            return failing(cid, title, f"the issuer {issuer} cannot be used: {reason}", ErrorClass.ISSUER_UNREACHABLE,
                           scope="byollm")
        parts = urlsplit(issuer)
        loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
        if parts.scheme != "https" or parts.port is not None or loopback:
            return Check(id=cid, title=title, status="warn", scope="byollm", error_class=ErrorClass.ISSUER_UNREACHABLE,
                         remediation=ErrorClass.ISSUER_UNREACHABLE.remediation,
                         detail=f"{issuer} serves its discovery document and keys, but AWS IAM accepts only public"
                                " https:// issuers without a port (a simulator accepts this one)")
        return passing(cid, title, f"{issuer} serves its discovery document and the current signing key",
                       scope="byollm")

    @staticmethod
    def _role_check(scope: ScopeInputs, *, uses_bedrock: bool) -> Check:
        cid, title = f"{scope.scope}.role", "Role ARN configured"
        if scope.role_arn is None and not uses_bedrock:
            return skipped(cid, title, "no model is routed through Bedrock, so cloud runs need no role",
                           scope=scope.scope)
        if scope.role_arn is None:
            return failing(cid, title, "no IAM role ARN is configured: cloud runs cannot use Bedrock (set the Role"
                           " ARN on the Models page, or the agent's custom role)", ErrorClass.ROLE_ASSUMPTION_FAILED,
                           scope=scope.scope, fixes=scope.fixes.get("trust_policy", {}), status="warn")
        if role_account(scope.role_arn) is None:
            return failing(cid, title, f"{scope.role_arn!r} is not an IAM role ARN", ErrorClass.ROLE_ASSUMPTION_FAILED,
                           scope=scope.scope)
        return passing(cid, title, f"{scope.title}: {scope.role_arn}", scope=scope.scope)

    def _region_checks(self, policy: TeamPolicy) -> list[Check]:
        """Each model enabled for Bedrock is offered (per the catalog) in the team's region."""
        region = policy.bedrock.region
        checks: list[Check] = []
        title = "Model offered on Bedrock in the team's region"
        for model in self._catalog:
            if not policy.models.bedrock_enabled(model.id):
                continue
            cid = f"models.{model.id}.region"
            if not model.offered_on_bedrock_in(region):
                where = sorted(model.bedrock.regions) if model.bedrock else []
                detail = (f"{model.id} is not offered on Bedrock in {region}" +
                          (f"; it is in {', '.join(where)}" if where else "; it is not on Bedrock at all"))
                checks.append(failing(cid, title, detail, ErrorClass.REGION_MODEL_MISMATCH, scope="team"))
                continue
            upstream = policy.models.routing(model.id).inference_profile or self._catalog.default_bedrock_upstream(
                model.id, region)
            if upstream is None:
                checks.append(failing(cid, title, f"no inference profile of {model.id} can be called from {region};"
                                      " set an inference-profile override", ErrorClass.REGION_MODEL_MISMATCH))
                continue
            checks.append(passing(cid, title, f"{model.id} via {upstream} in {region}"))
        return checks

    def _default_model_check(self, policy: TeamPolicy, agent: Agent) -> Check:
        """A named agent that runs on Bedrock must default to a model enabled for Bedrock there."""
        scope, title = f"agent:{agent.name}", "Agent's default model is enabled for Bedrock"
        cid = f"{scope}.default_model"
        role = agent.role_arn_override or policy.bedrock.role_arn
        if role is None:
            return skipped(cid, title, f"agent {agent.name} has no role, so its runs do not use Bedrock", scope=scope)
        if agent.default_model is None:
            return skipped(cid, title, f"agent {agent.name} has no default model; runs name their model",
                           scope=scope)
        model = self._catalog.resolve(agent.default_model)
        model_id = model.id if model is not None else agent.default_model
        if model is None or not policy.models.bedrock_enabled(model.id):
            return failing(cid, title, f"agent {agent.name} runs on Bedrock (role {role}) but its default model"
                           f" {model_id} is not enabled for Bedrock on the Models page",
                           ErrorClass.REGION_MODEL_MISMATCH, scope=scope)
        if not model.offered_on_bedrock_in(policy.bedrock.region):
            return failing(cid, title, f"agent {agent.name}'s default model {model_id} is not offered on Bedrock in"
                           f" {policy.bedrock.region}", ErrorClass.REGION_MODEL_MISMATCH, scope=scope)
        return passing(cid, title, f"agent {agent.name} defaults to {model_id}, enabled for Bedrock", scope=scope)

    async def _prompts(self, policy: TeamPolicy, caller: Caller, inputs: DoctorInputs,
                       focus: Agent | None) -> list[tuple[str, Check]]:
        """One test prompt per enabled Bedrock model through each role, as a run would send it."""
        if self._oidc is None:
            return []
        broker = WebIdentityBroker(self._oidc.minter, self._pool, ExchangeConfig(
            sts_endpoint_url=self._settings.sts_endpoint_url, duration_s=self._config.session_seconds,
            connect_timeout_s=self._settings.sts_connect_timeout_seconds,
            read_timeout_s=self._settings.sts_read_timeout_seconds))
        probes: list[tuple[InferenceContext, ScopeInputs, RouteNeed]] = []
        for scope in inputs.scopes:
            if scope.role_arn is None:
                continue
            if scope.agent_uid is not None:
                actor = Actor(ActorKind.AGENT_RUN, scope.agent_uid, scope.agent_uid)
                principal_type = PrincipalKind.AGENT.value
            else:
                actor = Actor(ActorKind.USER_RUN, caller.principal_uid)
                principal_type = PrincipalKind.USER.value
            for route in scope.routes:
                context = InferenceContext(request_id=f"doctor_{secrets.token_hex(8)}", api="anthropic",
                                           team_uid=policy.team_uid, principal_type=principal_type,
                                           principal_uid=actor.principal_uid, actor=actor)
                probes.append((context, scope, route))
        checks = await asyncio.gather(*(self._prompt(broker, policy, context, scope, route)
                                        for context, scope, route in probes))
        return [(context.request_id, check) for (context, _, _), check in zip(probes, checks, strict=True)]

    async def _prompt(self, broker: WebIdentityBroker, policy: TeamPolicy, context: InferenceContext,
                      scope: ScopeInputs, route: RouteNeed) -> Check:
        cid, title = f"{scope.scope}.prompt.{route.model}", f"Test prompt to {route.model} through the role"
        try:
            _policy, plan = await self._gateway.plan(context, RouteRequest(model=route.model, max_output_tokens=16))
            candidate = next((c for c in plan.candidates if c.host is Host.BEDROCK and c.model == route.model), None)
            if candidate is None:
                reasons = [d.reason for d in plan.dropped if d.host is Host.BEDROCK and d.model == route.model]
                return skipped(cid, title, "a run would not route this model through Bedrock: "
                               + ("; ".join(reasons) or "no Bedrock route"), scope=scope.scope)
            auth = await broker.credentials_for(context, candidate)
            body = {"model": route.model, "max_tokens": 16,
                    "messages": [{"role": "user", "content": "byollm doctor: reply with OK."}]}
            call = UpstreamCall(
                candidate=candidate, auth=auth, timeout_s=self._config.prompt_timeout_s,
                request=CanonicalRequest(body=body, request_id=context.request_id, team_uid=policy.team_uid),
                base_url=policy.bedrock.endpoint_url or default_endpoint(candidate.region or policy.bedrock.region))
            async with asyncio.timeout(self._config.prompt_timeout_s):
                await self._bedrock.complete(call)
        except ByollmError as error:
            fixes = scope.fixes.get(_FIX_KINDS.get(error.error_class, ""), {})
            detail = f"{route.model} via {route.upstream} with role {scope.role_arn}: {error.detail}"
            return failing(cid, title, detail, error.error_class, scope=scope.scope, fixes=fixes,
                           status="warn" if error.error_class.retryable else "fail")
        except TimeoutError:
            return failing(cid, title, f"{route.model} via {route.upstream} did not answer within"
                           f" {self._config.prompt_timeout_s:.0f} s", ErrorClass.UPSTREAM_UNAVAILABLE,
                           scope=scope.scope, status="warn")
        return passing(cid, title, f"{route.model} answered via bedrock:{candidate.upstream_model_id} with byollm's"
                       f" token for role {scope.role_arn} (request {context.request_id})", scope=scope.scope)

    async def _throttling_check(self, team_uid: str) -> Check:
        """Throttled attempts in the request log: the quota signal (Bedrock or STS said slow down)."""
        cid, title = "team.throttling", "No recent throttling (quota)"
        window = self._config.throttling_window
        since = datetime.now(UTC) - window
        async with self._store.session(readonly=True) as session:
            rows = await list_requests(session, team_uid=team_uid, since=since, limit=1000)
        by_route: dict[str, int] = {}
        for row in rows:
            for attempt in row.attempts:
                if attempt.error_code == ErrorClass.QUOTA_EXCEEDED.code:
                    by_route[attempt.route] = by_route.get(attempt.route, 0) + 1
        minutes = int(window.total_seconds() // 60)
        if not by_route:
            return passing(cid, title, f"no throttled attempt in the last {minutes} minutes ({len(rows)} requests)")
        listed = ", ".join(f"{route} ({count})" for route, count in sorted(by_route.items(), key=lambda x: -x[1]))
        return failing(cid, title, f"{sum(by_route.values())} throttled attempt(s) in the last {minutes} minutes:"
                       f" {listed}", ErrorClass.QUOTA_EXCEEDED, status="warn")

    def _pasted_checks(self, inputs: DoctorInputs, trust: dict[str, Any] | None,
                       permissions: dict[str, Any] | None) -> list[Check]:
        """Evaluate documents the admin pasted, for the focused scope (the first one: the team or the agent)."""
        if not inputs.scopes:
            return []
        scope = inputs.scopes[0]
        checks: list[Check] = []
        if trust is not None:
            checks.append(trust_check(inputs, scope, trust, source="pasted document"))
        if permissions is not None:
            checks.append(permissions_check(scope, [permissions], source="pasted document", region=inputs.region))
        return checks

    @staticmethod
    def _cli_only(inputs: DoctorInputs, done: set[str]) -> list[Check]:
        """The checks that need the admin's AWS credentials, marked so the panel can say so."""
        checks: list[Check] = []
        for scope in inputs.scopes:
            if scope.role_arn is None:
                continue
            for what, title, api in (("oidc_provider", "OIDC provider registered for byollm's issuer",
                                      "GetOpenIDConnectProvider"),
                                     ("trust_policy", "Trust policy admits byollm's tokens", "GetRole"),
                                     ("permissions", "Permissions cover every enabled model's route",
                                      "SimulatePrincipalPolicy")):
                cid = f"{scope.scope}.{what}"
                if cid not in done:
                    checks.append(skipped(cid, title, f"reads {api} with an admin's AWS credentials: {_CLI}",
                                          scope=scope.scope, needs_cli=True))
        for model in sorted({route.model for scope in inputs.scopes for route in scope.routes}):
            checks.append(skipped(f"models.{model}.account", "Model offered to the account in the team's region",
                                  "reads ListFoundationModels and GetInferenceProfile with an admin's AWS"
                                  " credentials: run `byollm doctor --team <team>`", scope="account", needs_cli=True))
        checks.append(skipped("account.invocation_logging", "Model invocation logging configured",
                              "reads GetModelInvocationLoggingConfiguration with an admin's AWS credentials: run"
                              " `byollm doctor --team <team>`", scope="account", needs_cli=True))
        checks.append(skipped("account.invocation_log", "Test prompt visible in the invocation log",
                              "reads the account's CloudWatch Logs with an admin's AWS credentials: run"
                              " `byollm doctor --team <team>`", scope="account", needs_cli=True))
        return checks
