"""AssumeRoleWithWebIdentity against the simulator's STS, which validates byollm's tokens as IAM does
(discovery and JWKS fetched over HTTP from the byollm server, trust policy with ``sub``/``aud`` conditions).

Each test runs a second "replica" in its own event loop (sharing the server's database and keys) and calls
the broker directly or through the gateway; each makes its own team and roles.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from sqlalchemy import text

from byollm.credentials.web_identity import ExchangeConfig, WebIdentityBroker
from byollm.errors import ByollmError
from byollm.gateway.executor import InferenceContext
from byollm.oidc.issuer import Issuer
from byollm.oidc.tokens import TokenMinter
from byollm.policy.ids import new_uid
from byollm.policy.types import Actor, ActorKind, BillingBucket, CredentialSource, Host, RouteCandidate, RouteRequest
from byollm.providers.base import AwsAuth, CanonicalRequest
from byollm.services import Services
from byollm.store import Store
from support.oidc_stack import make_role, minted_tokens, replica_services, sts_calls
from support.stack import ACCOUNT, Stack

HAIKU = "claude-haiku-4-5"
HAIKU_US = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


def _candidate(role_arn: str) -> RouteCandidate:
    return RouteCandidate(model=HAIKU, host=Host.BEDROCK, upstream_model_id=HAIKU_US,
                          credential=CredentialSource.WEB_IDENTITY, billing=BillingBucket.CUSTOMER_CLOUD,
                          region="us-east-1", role_arn=role_arn)


def _context(team_uid: str, *, kind: ActorKind = ActorKind.USER_RUN, principal: str | None = None,
             agent: str | None = None, run_uid: str | None = "", request_id: str = "req-1") -> InferenceContext:
    principal = principal or new_uid()
    return InferenceContext(
        request_id=request_id, api="anthropic", team_uid=team_uid,
        principal_type="user" if kind is ActorKind.USER_RUN else "agent", principal_uid=principal,
        actor=Actor(kind, principal, agent), run_uid=new_uid() if run_uid == "" else run_uid,
    )


def _broker(services: Services) -> WebIdentityBroker:
    assert services.oidc is not None
    return services.oidc.web_identity


@pytest.fixture
def logs() -> Iterator[list[str]]:
    lines: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Grab(level=logging.DEBUG)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def _invoke_with(auth: AwsAuth, stack: Stack) -> dict[str, Any]:
    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=stack.sim.url,
                          aws_access_key_id=auth.access_key_id, aws_secret_access_key=auth.secret_access_key,
                          aws_session_token=auth.session_token)
    import json
    response = client.invoke_model(
        modelId=HAIKU_US,
        body=json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 20,
                         "messages": [{"role": "user", "content": "hi"}]}))
    return dict(json.loads(response["body"].read()))


async def test_team_role_exchange_names_the_run_and_the_credentials_work(stack: Stack) -> None:
    team_uid = new_uid()
    role = make_role(stack, subjects=[f"scoped_principal:{team_uid}/*"])
    context = _context(team_uid)
    async with replica_services(stack.settings) as services:
        broker = _broker(services)
        auth = await broker.credentials_for(context, _candidate(role))
        again = await broker.credentials_for(context, _candidate(role))
        assumed = broker.assumed_role_arn(context.run_uid or "", role)
    assert auth.access_key_id.startswith("ASIA") and auth.session_token and auth.expires_at is not None
    assert again is auth  # cached for the run: one exchange
    assert assumed == f"arn:aws:sts::{ACCOUNT}:assumed-role/{role.rsplit('/', 1)[1]}/byollm-run-{context.run_uid}"
    calls = [c for c in sts_calls(stack) if f"byollm-run-{context.run_uid}" in c["body"]]
    assert len(calls) == 1 and "authorization" not in str(calls[0].get("headers", "")).lower()  # unsigned, as boto3
    assert "DurationSeconds=3600" in calls[0]["body"]
    assert _invoke_with(auth, stack)["content"]


async def test_agent_override_role_and_an_agents_own_token_without_a_run(stack: Stack) -> None:
    team_uid, agent = new_uid(), new_uid()
    role = make_role(stack, subjects=[f"scoped_principal:{team_uid}/*"], name=f"byollm-agent-{agent[:6].lower()}")
    context = _context(team_uid, kind=ActorKind.AGENT_RUN, principal=agent, agent=agent, run_uid=None,
                       request_id="req_01 weird/id!")
    async with replica_services(stack.settings) as services:
        auth = await _broker(services).credentials_for(context, _candidate(role))
    assert auth.session_token
    calls = [c for c in sts_calls(stack) if role.replace(":", "%3A").replace("/", "%2F") in c["body"]]
    assert calls and "RoleSessionName=byollm-req-req_01-weird-id-" in calls[-1]["body"]


@pytest.mark.parametrize(("case", "code"), [
    ("other_team", "role_assumption_failed"),
    ("no_provider", "oidc_provider_missing"),
    ("duration", "role_assumption_failed"),
])
async def test_refusals_are_classified_with_the_check_to_make(stack: Stack, case: str, code: str) -> None:
    team_uid = new_uid()
    if case == "other_team":
        role = make_role(stack, subjects=[f"scoped_principal:{new_uid()}/*"])
    elif case == "no_provider":
        role = "arn:aws:iam::999988887777:role/byollm-team"  # an account with no OIDC provider for byollm
    else:
        role = make_role(stack, subjects=[f"scoped_principal:{team_uid}/*"], max_session_duration=3600)
    settings = replace(stack.settings, web_identity_session_seconds=7200) if case == "duration" else stack.settings
    async with replica_services(settings) as services:
        with pytest.raises(ByollmError) as info:
            await _broker(services).credentials_for(_context(team_uid), _candidate(role))
    error = info.value
    assert error.error_class.code == code
    assert error.context["role_arn"] == role and error.context["issuer_host"] == stack.url.split("://")[1]
    expected = {
        "other_team": f"scoped_principal:{team_uid}/*",
        "no_provider": "OpenID Connect provider",
        "duration": "maximum session duration",
    }[case]
    assert expected in error.detail and expected in str(error.context["check"])
    assert error.error_class.fails_over


async def test_unreachable_issuer_is_classified(stack: Stack) -> None:
    from byollm.api.serving import bind_socket, socket_url

    dead = bind_socket()  # bound, never listening: connections are refused
    try:
        dead_url = socket_url(dead)
        team_uid = new_uid()
        role = make_role(stack, subjects=[f"scoped_principal:{team_uid}/*"], issuer=dead_url)
        async with replica_services(stack.settings) as services:
            assert services.oidc is not None
            issuer = Issuer(dead_url, services.oidc.keys, audience="sts.amazonaws.com", max_age_s=1)
            broker = WebIdentityBroker(TokenMinter(issuer, services.oidc.keys, lifetime_s=300), services.pool,
                                       ExchangeConfig(sts_endpoint_url=stack.sim.url))
            with pytest.raises(ByollmError) as info:
                await broker.credentials_for(_context(team_uid), _candidate(role))
    finally:
        dead.close()
    assert info.value.error_class.code == "issuer_unreachable"
    assert dead_url.split("://")[1] in info.value.detail


async def test_a_failed_exchange_backs_off_and_is_reported_once(stack: Stack) -> None:
    team_uid = new_uid()
    role = make_role(stack, subjects=[f"scoped_principal:{new_uid()}/*"])  # another team's: refused
    context = _context(team_uid)
    reported: list[tuple[str | None, str]] = []

    async def hook(ctx: InferenceContext, error: ByollmError) -> None:
        reported.append((ctx.run_uid, error.error_class.code))

    now = [1000.0]
    async with replica_services(stack.settings) as services:
        assert services.oidc is not None
        broker = WebIdentityBroker(services.oidc.minter, services.pool,
                                   ExchangeConfig(sts_endpoint_url=stack.sim.url), on_failure=hook,
                                   clock=lambda: now[0])
        for _ in range(3):
            with pytest.raises(ByollmError) as info:
                await broker.credentials_for(context, _candidate(role))
            assert info.value.error_class.code == "role_assumption_failed"
        assert len([c for c in sts_calls(stack) if f"byollm-run-{context.run_uid}" in c["body"]]) == 1
        assert reported == [(context.run_uid, "role_assumption_failed")]
        assert info.value.context["retry_in_s"] == 30.0
        # After the back-off the trust policy is fixed: the next call exchanges again and succeeds.
        make_role(stack, subjects=[f"scoped_principal:{team_uid}/*"], name=role.rsplit("/", 1)[1])
        now[0] += 31
        auth = await broker.credentials_for(context, _candidate(role))
        assert auth.session_token
        assert len([c for c in sts_calls(stack) if f"byollm-run-{context.run_uid}" in c["body"]]) == 2
        # Refreshed (new token, new exchange) before expiry; forgotten when the run ends.
        now[0] += 3600 - 299
        refreshed = await broker.credentials_for(context, _candidate(role))
        assert refreshed.access_key_id != auth.access_key_id
        tokens = minted_tokens(stack)[-2:]
        assert tokens[0] != tokens[1]
        broker.forget_run(context.run_uid or "")
        assert broker.assumed_role_arn(context.run_uid or "", role) is None


async def test_sts_timeouts_do_not_hang(stack: Stack) -> None:
    team_uid = new_uid()
    role = make_role(stack, subjects=[f"scoped_principal:{team_uid}/*"])
    stack.fault(service="sts", timeout=True)
    async with replica_services(stack.settings) as services:
        assert services.oidc is not None
        broker = WebIdentityBroker(services.oidc.minter, services.pool,
                                   ExchangeConfig(sts_endpoint_url=stack.sim.url, connect_timeout_s=1,
                                                  read_timeout_s=1))
        started = time.monotonic()
        with pytest.raises(ByollmError) as info:
            await broker.credentials_for(_context(team_uid), _candidate(role))
    assert time.monotonic() - started < 5
    assert info.value.error_class.code == "upstream_unavailable"


async def test_a_run_invokes_bedrock_through_the_gateway_with_web_identity(stack: Stack, logs: list[str]) -> None:
    team = stack.new_team({HAIKU: {"bedrock": True}})
    role = make_role(stack, subjects=[f"scoped_principal:{team.uid}/*"])
    team.bedrock(role_arn=role)
    members = team.admin.get(f"/teams/{team.uid}/members").json()
    user = next(m["user_uid"] for m in members if m["role"] == "member")
    context = _context(team.uid, principal=user, request_id=f"req-{new_uid()}")
    body = {"model": HAIKU, "max_tokens": 30, "messages": [{"role": "user", "content": "hello"}]}
    async with replica_services(stack.settings) as services:
        served = await services.gateway.complete(
            context, CanonicalRequest(body=body, request_id=context.request_id, team_uid=team.uid),
            RouteRequest(model=HAIKU))
        auth = await _broker(services).credentials_for(context, _candidate(role))  # the cached credentials
        secrets = [auth.access_key_id, auth.secret_access_key, auth.session_token or ""]
    assert served.route.startswith("bedrock:") and served.value.message["content"]
    invocations = stack.sim_http.get("/_sim/invocations").json()["invocations"]
    assert any(f"byollm-run-{context.run_uid}" in str(i) for i in invocations)
    # Canary: no token or credential in logs, tables or the request log of these paths.
    secrets += minted_tokens(stack)
    async with Store.from_settings(stack.settings) as store, store.session(readonly=True) as session:
        tables = (await session.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))).scalars().all()
        dump = []
        for table in tables:
            dump.extend(str(row) for row in (await session.execute(text(f'SELECT * FROM "{table}"'))).all())
    haystack = "\n".join([*logs, *dump, repr(served)])
    for value in secrets:
        assert value and value not in haystack
