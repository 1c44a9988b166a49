"""Execute a route plan: credentials -> provider -> failover -> usage -> credits and request log.

The executor is where the product's promises meet: it plans with the team's cached policy, tries each
candidate in order with exactly the credential that route needs, classifies every failure into the taxonomy,
fails over only for classes that allow it (never for expired local credentials, never for the caller's own
invalid request), and stops at a deadline. A streaming request fails over until its first content event is
ready to go to the client; after that, an upstream failure becomes an in-stream ``error`` event.

Usage and credits are recorded exactly once per request (``_Outcome.settled``) and handed to the request-log
writer, which writes them off the hot path; ledger charges carry an attempt id so nothing is ever charged
twice. The record is settled when the caller's answer is decided, not when the upstream answered: a front
end renders inside ``completing`` (and ends a stream it could not send with ``ServedStream.abandon``), so
the status and code logged are the ones the client received, a 500 included. Whatever answer the client
gets, the tokens an upstream reported are charged.

The gateway yields typed values only: a ``CompletedMessage``, ``StreamEvent``s and, for a failure after a
stream was committed, a ``StreamFailure`` holding the taxonomy error; each front end (``api/frontends``)
renders them in its client's wire format.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from byollm.catalog.types import Catalog, CatalogModel
from byollm.credentials.delegated import AccountChecker, DelegatedCredentials
from byollm.errors import Attempt, ByollmError, ErrorClass, NoRouteError
from byollm.gateway.metrics import GatewayMetrics
from byollm.gateway.model_discovery import BedrockModelDiscovery
from byollm.gateway.operator_keys import OperatorKeys
from byollm.gateway.policy_cache import PolicyCache
from byollm.policy.auto import is_auto
from byollm.policy.discovered import discovery_applies, with_discovered
from byollm.policy.names import ResolvedVia, resolve_model_name
from byollm.policy.planner import plan_routes
from byollm.policy.types import (
    Actor,
    ActorKind,
    AvailableCredentials,
    BillingBucket,
    CredentialSource,
    CreditState,
    DroppedRoute,
    Host,
    RouteCandidate,
    RoutePlan,
    RouteRequest,
    TeamPolicy,
)
from byollm.providers.base import (
    ApiKeyAuth,
    AwsAuth,
    CanonicalRequest,
    CompletedMessage,
    Provider,
    StreamEvent,
    UpstreamAuth,
    UpstreamCall,
    Usage,
)
from byollm.providers.bedrock import default_endpoint
from byollm.store.ledger import CreditTracker
from byollm.store.request_log import AttemptRecord, LedgerCharge, RequestLogWriter, RequestRecord

__all__ = [
    "Gateway",
    "GatewayConfig",
    "InferenceContext",
    "ModelListing",
    "Served",
    "ServedStream",
    "StreamFailure",
    "WebIdentitySource",
]

T = TypeVar("T")

_COMMIT_EVENTS = frozenset({"content_block_delta", "message_delta", "message_stop"})


class WebIdentitySource(Protocol):
    """Where a cloud run's Bedrock credentials come from (byollm's OIDC token exchanged with STS)."""

    async def credentials_for(self, context: InferenceContext, candidate: RouteCandidate) -> AwsAuth: ...


class FailureAlerts(Protocol):
    """Told of every failed attempt; sends the team's webhook the BYOLLM failures among them (``alerts``)."""

    def failed(self, context: InferenceContext, policy: TeamPolicy, route: str, error: ByollmError) -> None: ...


class NoWebIdentity:
    """Used where no run is executing: a web-identity route cannot be served outside a cloud run."""

    async def credentials_for(self, context: InferenceContext, candidate: RouteCandidate) -> AwsAuth:
        raise ByollmError(ErrorClass.ROLE_ASSUMPTION_FAILED,
                          "web-identity credentials are issued to cloud agent runs only; start a run to use"
                          f" role {candidate.role_arn}")


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    provider_base_urls: Mapping[Host, str]
    deadline_s: float = 600.0  # the whole request, all attempts included
    attempt_timeout_s: float = 300.0  # one non-streaming attempt, or the wait for a stream's first content
    stream_read_timeout_s: float = 120.0  # gap between streamed chunks


@dataclass(frozen=True, slots=True)
class InferenceContext:
    """Who is asking and with which per-request credentials. Values are never logged (see ``__repr__``)."""

    request_id: str
    api: str  # "anthropic" | "openai"
    team_uid: str
    principal_type: str
    principal_uid: str
    actor: Actor
    token_uid: str | None = None
    delegated: DelegatedCredentials | None = None
    byok: Mapping[Host, str] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    run_uid: str | None = None

    def __repr__(self) -> str:
        return (f"InferenceContext(request_id={self.request_id!r}, team_uid={self.team_uid!r},"
                f" principal_uid={self.principal_uid!r}, delegated={self.delegated is not None},"
                f" byok={sorted(h.value for h in self.byok)})")


@dataclass(frozen=True, slots=True)
class Served:
    """A result and the facts the response headers report."""

    value: Any
    route: str
    model: str
    fallbacks: int
    overhead_ms: float
    auto_reason: str | None = None
    requested_model: str = ""  # the name the caller sent
    model_rule: str = "catalog"  # how that name became ``model`` (RoutePlan.resolved_via)
    failures: tuple[Attempt, ...] = ()  # the routes tried (or skipped) before the one that served, and why
    billing: str = ""  # the serving route's billing bucket
    credits: Decimal | None = None  # AI credits charged (None: not known when the headers go out)


@dataclass(frozen=True, slots=True)
class StreamFailure:
    """The upstream failed after the stream was committed (the client already has a 200): the front end
    ends its stream with this error in its own wire format."""

    error: ByollmError


async def _no_abandon(status: int, code: str) -> None:
    return None


@dataclass(slots=True)
class ServedStream:
    events: AsyncIterator[StreamEvent | StreamFailure]
    route: str
    model: str
    fallbacks: int
    overhead_ms: float
    auto_reason: str | None = None
    requested_model: str = ""
    model_rule: str = "catalog"
    preamble: int = 0  # how many leading events were read before committing (a writer can send them as one)
    # ends a stream whose events were not all sent (never started, or the writer failed): closes the
    # upstream and settles the request as ``status``/``code`` unless the relay already settled it
    abandon: Callable[[int, str], Awaitable[None]] = _no_abandon
    failures: tuple[Attempt, ...] = ()
    billing: str = ""
    credits: Decimal | None = None  # set once ``events`` is exhausted: the AI credits the answer cost


@dataclass(frozen=True, slots=True)
class ModelListing:
    id: str
    display_name: str
    owner: str
    routes: list[dict[str, str]]
    alias_of: str | None = None  # set for a team alias: the catalog model its requests are served as


@dataclass(slots=True)
class _Outcome:
    """What the request log and ledger need, filled in as the request proceeds."""

    attempts: list[AttemptRecord] = field(default_factory=list)
    failures: list[Attempt] = field(default_factory=list)
    upstream_s: float = 0.0
    served: RouteCandidate | None = None
    usage: Usage = field(default_factory=Usage)
    status: int = 200
    error_code: str | None = None
    credits: Decimal = Decimal(0)
    response_text: list[str] = field(default_factory=list)
    response: Mapping[str, Any] | None = None
    call: UpstreamCall | None = None  # the serving attempt's call (its wire clock keeps running while streaming)
    settled: bool = False  # the request log row and charges were handed over (exactly once)
    free: bool = False  # a token count: logged like any upstream call, but counting costs no credits
    abandoned: bool = False  # the front end ended the stream; its status stands

    def fail(self, status: int, code: str) -> None:
        """What the client received, when it is not the success the outcome started as."""
        self.status, self.error_code = status, code

    def failed_with(self, error: BaseException) -> None:
        """Record how ``error`` ends the request for the client: its class, a disconnect, or a 500."""
        if isinstance(error, ByollmError):
            self.fail(error.status, error.error_class.code)
        elif isinstance(error, asyncio.CancelledError | GeneratorExit):
            self.fail(499, "client_disconnected")
        else:
            self.fail(ErrorClass.INTERNAL_ERROR.status, ErrorClass.INTERNAL_ERROR.code)


class Gateway:
    def __init__(
        self,
        *,
        catalog: Catalog,
        policies: PolicyCache,
        providers: Mapping[Host, Provider],
        operator_keys: OperatorKeys,
        accounts: AccountChecker,
        credits: CreditTracker,
        log: RequestLogWriter,
        metrics: GatewayMetrics,
        config: GatewayConfig,
        web_identity: WebIdentitySource | None = None,
        alerts: FailureAlerts | None = None,
        discovery: BedrockModelDiscovery | None = None,
    ) -> None:
        self._catalog = catalog
        self._discovery = discovery
        self._policies = policies
        self._providers = providers
        self._operator_keys = operator_keys
        self._accounts = accounts
        self._credits = credits
        self._log = log
        self._metrics = metrics
        self._config = config
        self._web_identity: WebIdentitySource = web_identity or NoWebIdentity()
        self._alerts = alerts

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    # --- planning --------------------------------------------------------------------------------------

    async def _plan_inputs(self, context: InferenceContext
                           ) -> tuple[TeamPolicy, AvailableCredentials, CreditState]:
        """What planning depends on besides the request: the team's policy (account allow-list enforced), the
        credentials this request can use, and whether the team has AI credits. All from memory when warm."""
        policy = await self._policies.get(context.team_uid)
        if context.delegated is not None and policy.settings.allowed_aws_accounts:
            account = await self._accounts.account_of(context.delegated, policy.bedrock.region)
            if account not in policy.settings.allowed_aws_accounts:
                raise ByollmError(ErrorClass.AWS_ACCOUNT_NOT_ALLOWED,
                                  f"your AWS credentials belong to account {account}, which this team does not"
                                  " accept", account=account)
        available = AvailableCredentials(
            delegated_session=context.delegated is not None,
            byok_providers=frozenset(context.byok),
            operator_keys=self._operator_keys.providers,
        )
        allowance = policy.settings.monthly_ai_credits
        has_credits = allowance > 0 and await self._credits.ai_credits_available(
            context.team_uid, allowance, datetime.now(UTC))
        return policy, available, CreditState(ai_credits_available=has_credits)

    async def plan(self, context: InferenceContext, request: RouteRequest) -> tuple[TeamPolicy, RoutePlan]:
        policy, available, credits = await self._plan_inputs(context)
        catalog = self._catalog
        if self._needs_discovery(policy, request.model):
            catalog = await self._team_catalog(context, policy)
            policy = with_discovered(policy, catalog)
        plan = plan_routes(policy, catalog, request, actor=context.actor, credentials=available,
                           credits=credits)
        return policy, plan

    # --- models discovered on the team's Bedrock (gateway/model_discovery.py) -------------------------------

    def _needs_discovery(self, policy: TeamPolicy, name: str) -> bool:
        """Only a name the shipped catalog and the aliases cannot resolve (or only the family mapping can) may
        wait for the team's Bedrock listing; every known name plans at once."""
        if self._discovery is None or not name.strip() or is_auto(name):
            return False
        resolution = resolve_model_name(policy, self._catalog, name)
        if resolution is not None and resolution.via is not ResolvedVia.FAMILY:
            return False
        return discovery_applies(policy, self._catalog)

    async def _team_catalog(self, context: InferenceContext, policy: TeamPolicy) -> Catalog:
        assert self._discovery is not None
        bedrock = policy.bedrock
        auth = await self._discovery_auth(context, policy)
        return await self._discovery.catalog_for(context.team_uid, bedrock.region, bedrock.endpoint_url, auth)

    async def _discovery_auth(self, context: InferenceContext, policy: TeamPolicy) -> AwsAuth | None:
        """The request's own AWS credentials: the user's delegated session, or a run's web identity for the role
        its Bedrock routes use. Used for the listing and dropped; None when the request has none."""
        if context.delegated is not None:
            return context.delegated.auth
        if context.actor.kind is ActorKind.INTERACTIVE_USER:
            return None
        agent = policy.agents.get(context.actor.agent_uid) if context.actor.agent_uid else None
        role = (agent.role_arn_override if agent is not None else None) or policy.bedrock.role_arn
        if role is None:
            return None
        probe = RouteCandidate(model="", host=Host.BEDROCK, upstream_model_id="",
                               credential=CredentialSource.WEB_IDENTITY, billing=BillingBucket.CUSTOMER_CLOUD,
                               region=policy.bedrock.region, role_arn=role)
        try:
            return await self._web_identity.credentials_for(context, probe)
        except ByollmError:
            return None  # the run's own Bedrock attempt will report the exchange's failure

    def _model_for(self, context: InferenceContext, policy: TeamPolicy, model_id: str) -> CatalogModel | None:
        model = self._catalog.get(model_id)
        if model is None and self._discovery is not None:
            team = self._discovery.cached(context.team_uid, policy.bedrock.region)
            model = team.get(model_id) if team is not None else None
        return model

    async def list_models(self, context: InferenceContext) -> list[ModelListing]:
        """The models this caller can use right now, each with its ordered routes (and ``auto`` if allowed)."""
        try:
            policy, available, credits = await self._plan_inputs(context)  # once, not once per model
        except ByollmError:
            return []
        catalog = self._catalog
        auto_allowed = not policy.models.any_direct_disabled  # of the admin's own policy, before discovery
        if self._discovery is not None and discovery_applies(policy, catalog):  # not the hot path: may read
            catalog = await self._team_catalog(context, policy)
            policy = with_discovered(policy, catalog)
        listing: list[ModelListing] = []
        routes_of: dict[str, list[dict[str, str]]] = {}
        for model in catalog:
            try:
                plan = plan_routes(policy, catalog, RouteRequest(model=model.id), actor=context.actor,
                                   credentials=available, credits=credits)
            except ByollmError:
                continue
            own = [c for c in plan.candidates if c.model == model.id]
            routes_of[model.id] = [
                {"host": c.host.value, "upstream_model_id": c.upstream_model_id, "credential": c.credential.value,
                 "billing": c.billing.value} for c in plan.candidates if c.model == plan.model]
            if own:
                listing.append(ModelListing(model.id, model.display_name, model.provider, routes_of[model.id]))
        for alias in policy.models.aliases:  # the admin's names, each with the routes of the model it serves
            target = catalog.resolve(alias.target)
            if target is not None and routes_of.get(target.id):
                listing.append(ModelListing(alias.pattern, f"{alias.pattern} (served as {target.display_name})",
                                            "byollm", routes_of[target.id], alias_of=target.id))
        if listing and auto_allowed:
            listing.insert(0, ModelListing("auto", "Auto (best enabled model for the task)", "byollm", []))
        return listing

    # --- one attempt -------------------------------------------------------------------------------------

    async def _auth_for(self, context: InferenceContext, candidate: RouteCandidate) -> UpstreamAuth:
        source = candidate.credential
        if source is CredentialSource.DELEGATED_SESSION:
            if context.delegated is None:  # the planner never plans this; keep the invariant explicit
                raise ByollmError(ErrorClass.LOCAL_CREDENTIALS_EXPIRED, "no AWS session credentials were sent")
            return context.delegated.auth
        if source is CredentialSource.WEB_IDENTITY:
            return await self._web_identity.credentials_for(context, candidate)
        if source is CredentialSource.BYOK:
            key = context.byok.get(candidate.host)
        else:
            key = self._operator_keys.get(candidate.host)
        if not key:
            raise ByollmError(ErrorClass.PROVIDER_KEY_REJECTED, f"no {candidate.host.value} key is configured")
        return ApiKeyAuth(key)

    def _call(self, policy: TeamPolicy, candidate: RouteCandidate, request: CanonicalRequest, auth: UpstreamAuth,
              timeout_s: float) -> UpstreamCall:
        if candidate.host is Host.BEDROCK:
            base = policy.bedrock.endpoint_url or default_endpoint(candidate.region or policy.bedrock.region)
        else:
            base = self._config.provider_base_urls[candidate.host]
        return UpstreamCall(candidate=candidate, request=request, auth=auth, base_url=base, timeout_s=timeout_s,
                            read_timeout_s=self._config.stream_read_timeout_s)

    async def _attempts(
        self,
        context: InferenceContext,
        policy: TeamPolicy,
        plan: RoutePlan,
        request: CanonicalRequest,
        outcome: _Outcome,
        run: Callable[[Provider, UpstreamCall], Awaitable[T]],
    ) -> tuple[RouteCandidate, T]:
        """Try each candidate until one succeeds; record every attempt; raise the right final error."""
        deadline = context.started + self._config.deadline_s
        candidates = plan.require_candidates()
        for skipped in plan.skipped_first:  # the first choice, lost for want of the caller's AWS session
            self._note_skipped(context, outcome, skipped)
        for number, candidate in enumerate(candidates, start=len(outcome.attempts) + 1):
            refused = _paid_fallback_refused(context, policy, candidate, outcome.failures)
            if refused is not None:
                raise NoRouteError(outcome.failures, refused.error_class, dropped=[d.label for d in plan.dropped],
                                   detail=f"{refused.route} failed ({refused.error_class.code}) and the team makes"
                                   " a cloud run fail rather than continue on an operator-paid fallback")
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                outcome.failures.append(Attempt("deadline", ErrorClass.UPSTREAM_UNAVAILABLE,
                                                "the request's deadline passed before this route"))
                break
            begun = time.perf_counter()
            call: UpstreamCall | None = None
            try:
                provider = self._providers[candidate.host]
                if request.lost and not provider.passes_through(request):
                    refusal = request.unsupported_here()
                    assert refusal is not None
                    raise refusal
                auth = await self._auth_for(context, candidate)
                call = self._call(policy, candidate, request, auth, min(remaining, self._config.attempt_timeout_s))
                async with asyncio.timeout(remaining):
                    result = await run(provider, call)
            except ByollmError as error:
                self._note_attempt(context, outcome, number, candidate, begun, call, error.error_class, error.detail)
                if self._alerts is not None:
                    self._alerts.failed(context, policy, candidate.label, error)
                if not error.error_class.fails_over:
                    raise self._final(error, outcome) from None
                continue
            except TimeoutError:
                if time.perf_counter() < deadline:  # this attempt's own timeout: the next route may serve
                    self._note_attempt(context, outcome, number, candidate, begun, call,
                                       ErrorClass.UPSTREAM_UNAVAILABLE,
                                       "the upstream did not answer within the attempt timeout")
                    continue
                self._note_attempt(context, outcome, number, candidate, begun, call, ErrorClass.UPSTREAM_UNAVAILABLE,
                                   "the request's deadline passed")
                break
            self._note_attempt(context, outcome, number, candidate, begun, call, None, "")
            outcome.served = candidate
            outcome.call = call
            return candidate, result
        failures = outcome.failures
        if failures and all(f.error_class is ErrorClass.UNSUPPORTED_BY_ROUTE for f in failures):
            # no route can take what the caller asked for: say which field, as the 400 it is
            raise NoRouteError(failures, ErrorClass.UNSUPPORTED_BY_ROUTE, failures[0].detail,
                               dropped=[d.label for d in plan.dropped])
        raise NoRouteError(failures, dropped=[d.label for d in plan.dropped])

    def _note_skipped(self, context: InferenceContext, outcome: _Outcome, dropped: DroppedRoute) -> None:
        """A first-choice route the plan could not try (no AWS session): a failed attempt that took no time."""
        error_class = ErrorClass.LOCAL_CREDENTIALS_MISSING
        outcome.attempts.append(AttemptRecord(
            attempt_id=f"{context.request_id}:{len(outcome.attempts) + 1}", route=dropped.route,
            host=dropped.host.value, model=dropped.model, error_code=error_class.code, latency_ms=0.0))
        outcome.failures.append(Attempt(dropped.route, error_class, dropped.reason))
        self._metrics.attempts.labels(dropped.host.value, dropped.route, error_class.code).inc()

    def _note_attempt(self, context: InferenceContext, outcome: _Outcome, number: int, candidate: RouteCandidate,
                      begun: float, call: UpstreamCall | None, error_class: ErrorClass | None, detail: str) -> None:
        elapsed = time.perf_counter() - begun
        # only the time spent waiting on the upstream is the upstream's; signing, serialising and parsing
        # are byollm's overhead (a timeout is all waiting)
        waited = elapsed if call is None and error_class is ErrorClass.UPSTREAM_UNAVAILABLE else 0.0
        outcome.upstream_s += call.wire.seconds if call is not None else waited
        code = error_class.code if error_class else None
        outcome.attempts.append(AttemptRecord(
            attempt_id=f"{context.request_id}:{number}", route=candidate.label, host=candidate.host.value,
            model=candidate.model, error_code=code, latency_ms=round(elapsed * 1000, 3),
        ))
        if error_class is not None:
            outcome.failures.append(Attempt(candidate.label, error_class, detail, round(elapsed * 1000, 3)))
        self._metrics.attempts.labels(candidate.host.value, candidate.label, code or "ok").inc()

    @staticmethod
    def _final(error: ByollmError, outcome: _Outcome) -> ByollmError:
        """A non-failover error ends the request as itself; earlier failed attempts go into its context."""
        if len(outcome.failures) > 1:
            error.context = {**error.context, "earlier_attempts": [
                {"route": a.route, "code": a.error_class.code} for a in outcome.failures[:-1]]}
        return error

    # --- the three operations ----------------------------------------------------------------------------

    async def complete(self, context: InferenceContext, request: CanonicalRequest,
                       route_request: RouteRequest) -> Served:
        """The answer, settled as a success as soon as it is returned (callers that render nothing)."""
        async with self.completing(context, request, route_request) as served:
            return served

    @asynccontextmanager
    async def completing(self, context: InferenceContext, request: CanonicalRequest,
                         route_request: RouteRequest) -> AsyncGenerator[Served, None]:
        """The answer, for a front end to render inside the block; the request is logged and charged when
        the block ends, with the status the block ended in (an exception's, or 200)."""
        outcome = _Outcome()
        plan: RoutePlan | None = None
        policy: TeamPolicy | None = None
        try:
            policy, plan = await self.plan(context, route_request)

            async def run(provider: Provider, call: UpstreamCall) -> CompletedMessage:
                return await provider.complete(call)

            candidate, message = await self._attempts(context, policy, plan, request, outcome, run)
            outcome.usage = message.usage
            outcome.response = message.message
            yield Served(value=message, route=candidate.label, model=candidate.model,
                         fallbacks=len(outcome.attempts) - 1, overhead_ms=self._overhead_ms(context, outcome),
                         auto_reason=plan.auto_reason, requested_model=plan.requested_model,
                         model_rule=plan.resolved_via, failures=tuple(outcome.failures),
                         billing=candidate.billing.value, credits=self._credits_for(candidate, message.usage))
        except ByollmError as error:
            outcome.fail(error.status, error.error_class.code)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            outcome.fail(499, "client_disconnected")
            raise
        except BaseException:
            outcome.fail(ErrorClass.INTERNAL_ERROR.status, ErrorClass.INTERNAL_ERROR.code)
            raise
        finally:
            self._finish(context, request, route_request, plan, policy, outcome)

    async def count_tokens(self, context: InferenceContext, request: CanonicalRequest,
                           route_request: RouteRequest) -> Served:
        """Counted by the first route that can count. Logged like every upstream call (the count as its input
        tokens), never charged: counting costs nothing upstream."""
        outcome = _Outcome(free=True)
        plan: RoutePlan | None = None
        policy: TeamPolicy | None = None

        async def run(provider: Provider, call: UpstreamCall) -> int:
            if call.candidate.host is Host.BEDROCK and policy is not None:  # CountTokens wants the model itself
                model = self._model_for(context, policy, call.candidate.model)
                if model is not None and model.bedrock is not None:
                    call = replace(call, candidate=replace(call.candidate,
                                                           upstream_model_id=model.bedrock.foundation_model_id))
            return await provider.count_tokens(call)

        try:
            policy, plan = await self.plan(context, route_request)
            candidate, count = await self._attempts(context, policy, plan, request, outcome, run)
        except BaseException as error:
            outcome.failed_with(error)
            self._finish(context, request, route_request, plan, policy, outcome)
            raise
        outcome.usage = Usage(input_tokens=count)
        self._finish(context, request, route_request, plan, policy, outcome)
        return Served(value=count, route=candidate.label, model=candidate.model,
                      fallbacks=len(outcome.attempts) - 1, overhead_ms=self._overhead_ms(context, outcome),
                      requested_model=plan.requested_model, model_rule=plan.resolved_via,
                      failures=tuple(outcome.failures), billing=candidate.billing.value, credits=Decimal(0))

    async def stream(self, context: InferenceContext, request: CanonicalRequest,
                     route_request: RouteRequest) -> ServedStream:
        """Open a stream on the first route that produces content; the caller iterates ``events``."""
        outcome = _Outcome()
        plan: RoutePlan | None = None
        policy: TeamPolicy | None = None
        try:
            policy, plan = await self.plan(context, route_request)
            candidate, (buffered, upstream) = await self._attempts(context, policy, plan, request, outcome,
                                                                   self._open_stream)
        except BaseException as error:
            outcome.failed_with(error)
            self._finish(context, request, route_request, plan, policy, outcome)
            raise
        overhead = self._overhead_ms(context, outcome)
        opened = ServedStream(
            events=_empty(), route=candidate.label, model=candidate.model, fallbacks=len(outcome.attempts) - 1,
            overhead_ms=overhead, auto_reason=plan.auto_reason, preamble=len(buffered),
            requested_model=plan.requested_model, model_rule=plan.resolved_via,
            failures=tuple(outcome.failures), billing=candidate.billing.value,
        )
        relay = self._relay(context, request, route_request, plan, policy, outcome, buffered, upstream, opened)

        async def abandon(status: int, code: str) -> None:
            if outcome.settled:
                return
            outcome.fail(status, code)
            outcome.abandoned = True
            await relay.aclose()  # a relay suspended mid-stream settles itself, with this status
            if not outcome.settled:  # it never started: nothing settled it
                await _close(upstream)
                self._finish(context, request, route_request, plan, policy, outcome)

        opened.events = relay
        opened.abandon = abandon
        return opened

    async def _open_stream(self, provider: Provider, call: UpstreamCall
                           ) -> tuple[list[StreamEvent], AsyncIterator[StreamEvent]]:
        """Read until the first content event, so a failure before it can still fail over."""
        upstream = provider.stream(call)
        buffered: list[StreamEvent] = []
        try:
            async with asyncio.timeout(call.timeout_s):
                async for event in upstream:
                    buffered.append(event)
                    if event.type in _COMMIT_EVENTS:
                        return buffered, upstream
        except TimeoutError:
            await _close(upstream)
            raise ByollmError(ErrorClass.UPSTREAM_UNAVAILABLE,
                              "the upstream sent no content within the attempt timeout") from None
        except BaseException:
            await _close(upstream)
            raise
        await _close(upstream)
        raise ByollmError(ErrorClass.UPSTREAM_UNAVAILABLE, "the upstream stream ended before any content")

    async def _relay(self, context: InferenceContext, request: CanonicalRequest, route_request: RouteRequest,
                     plan: RoutePlan, policy: TeamPolicy, outcome: _Outcome, buffered: list[StreamEvent],
                     upstream: AsyncIterator[StreamEvent], opened: ServedStream
                     ) -> AsyncGenerator[StreamEvent | StreamFailure, None]:
        usage = _StreamUsage()
        call = outcome.call
        wire_at_commit = call.wire.seconds if call is not None else 0.0
        try:
            for event in buffered:
                usage.see(event)
                yield event
            async for event in upstream:
                usage.see(event)
                yield event
        except ByollmError as error:
            outcome.fail(error.status, error.error_class.code)
            yield StreamFailure(error)
        except (asyncio.CancelledError, GeneratorExit):
            if not outcome.abandoned:
                outcome.fail(499, "client_disconnected")
            raise
        except BaseException:
            outcome.fail(ErrorClass.INTERNAL_ERROR.status, ErrorClass.INTERNAL_ERROR.code)
            raise
        finally:
            await _close(upstream)
            if call is not None:
                outcome.upstream_s += call.wire.seconds - wire_at_commit
            outcome.usage = usage.total
            outcome.response_text = usage.text
            self._finish(context, request, route_request, plan, policy, outcome)
            opened.credits = outcome.credits

    # --- accounting ----------------------------------------------------------------------------------------

    @staticmethod
    def _overhead_ms(context: InferenceContext, outcome: _Outcome) -> float:
        total = time.perf_counter() - context.started
        return round(max(total - outcome.upstream_s, 0.0) * 1000, 3)

    def _credits_for(self, candidate: RouteCandidate, usage: Usage) -> Decimal:
        """The AI credits an answer on ``candidate`` costs: operator-paid routes only."""
        model = self._catalog.get(candidate.model)
        if candidate.billing is not BillingBucket.AI_CREDITS or model is None:
            return Decimal(0)
        return model.pricing.credits(usage.input_tokens, usage.output_tokens)

    def _finish(self, context: InferenceContext, request: CanonicalRequest, route_request: RouteRequest,
                plan: RoutePlan | None, policy: TeamPolicy | None, outcome: _Outcome) -> None:
        """Charge credits and hand the request-log row to the writer, once per request. Never raises:
        accounting must not fail a request that already has its answer.

        The tokens the serving upstream reported are charged whatever the client's status: the call was
        made and paid for (a stream cut off mid-way, an answer byollm then failed to render)."""
        if outcome.settled:
            return
        outcome.settled = True
        now = datetime.now(UTC)
        served = outcome.served
        charges: list[LedgerCharge] = []
        used = outcome.usage.input_tokens or outcome.usage.output_tokens
        if (served is not None and served.billing is BillingBucket.AI_CREDITS and not outcome.free
                and (outcome.status < 400 or used)):
            model = self._catalog.get(served.model)
            if model is not None:
                outcome.credits = self._credits_for(served, outcome.usage)
                charges.append(LedgerCharge(
                    attempt_id=outcome.attempts[-1].attempt_id, team_uid=context.team_uid,
                    request_id=context.request_id, principal_uid=context.principal_uid, bucket="ai_credits",
                    model=served.model, host=served.host.value, input_tokens=outcome.usage.input_tokens,
                    output_tokens=outcome.usage.output_tokens, credits=outcome.credits, at=now,
                    run_uid=context.run_uid,
                ))
                self._credits.note_charge(context.team_uid, outcome.credits, now)
        duration = time.perf_counter() - context.started
        content = None
        if policy is not None and policy.settings.retain_request_content:
            content = {"request": dict(request.body),
                       "response": outcome.response if outcome.response is not None
                       else {"text": "".join(outcome.response_text)}}
        host = served.host.value if served else "none"
        self._metrics.requests.labels(context.api, host, served.model if served else route_request.model,
                                      outcome.error_code or "ok").inc()
        self._metrics.latency.labels(context.api, host).observe(duration)
        self._metrics.overhead.labels(context.api, str(request.stream).lower()).observe(
            max(duration - outcome.upstream_s, 0.0))
        self._log.submit(RequestRecord(
            request_id=context.request_id, team_uid=context.team_uid, principal_type=context.principal_type,
            principal_uid=context.principal_uid, token_uid=context.token_uid, api=context.api,
            requested_model=route_request.model, served_model=served.model if served else None,
            route=served.label if served else None, host=served.host.value if served else None,
            credential=served.credential.value if served else None,
            billing=served.billing.value if served else None, stream=request.stream, status=outcome.status,
            error_code=outcome.error_code, attempts=tuple(outcome.attempts),
            input_tokens=outcome.usage.input_tokens, output_tokens=outcome.usage.output_tokens,
            credits=outcome.credits, duration_ms=round(duration * 1000, 3),
            overhead_ms=round(max(duration - outcome.upstream_s, 0.0) * 1000, 3),
            started_at=now, auto_reason=plan.auto_reason if plan else None, run_uid=context.run_uid,
            content=content,
        ), charges)


def _paid_fallback_refused(context: InferenceContext, policy: TeamPolicy, candidate: RouteCandidate,
                           failures: list[Attempt]) -> Attempt | None:
    """The Bedrock failure that forbids this operator-paid route, for a cloud run of a team that set
    ``degraded_runs_fail``; None when the route may be tried."""
    if context.run_uid is None or not policy.settings.degraded_runs_fail:
        return None
    if candidate.billing is not BillingBucket.AI_CREDITS:
        return None
    return next((a for a in failures if a.route.startswith(f"{Host.BEDROCK.value}:")), None)


class _StreamUsage:
    """Tallies usage (and, for content retention, text) from Anthropic streaming events."""

    def __init__(self) -> None:
        self.total = Usage()
        self.text: list[str] = []

    def see(self, event: StreamEvent) -> None:
        kind = event.type
        if kind == "message_start":
            message = event.data.get("message") or {}
            self.total = Usage.from_anthropic(message.get("usage"))
        elif kind == "message_delta":
            # Anthropic's message_delta carries the cumulative output (and, in newer versions, the input
            # counts too); a relayed OpenAI Responses stream reports all of its usage here
            usage = event.data.get("usage") or {}
            total = self.total
            self.total = Usage(*(int(usage[name]) if usage.get(name) is not None else current for name, current in (
                ("input_tokens", total.input_tokens), ("output_tokens", total.output_tokens),
                ("cache_creation_input_tokens", total.cache_creation_input_tokens),
                ("cache_read_input_tokens", total.cache_read_input_tokens))))
        elif kind == "content_block_delta":
            delta = event.data.get("delta") or {}
            if delta.get("type") == "text_delta":
                self.text.append(str(delta.get("text", "")))


async def _empty() -> AsyncIterator[StreamEvent]:
    return
    yield  # an async generator with nothing in it


async def _close(iterator: AsyncIterator[Any]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # closing a broken upstream must not mask the real outcome
            return
