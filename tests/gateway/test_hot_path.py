"""The hot path stays off the database, and cached policies still follow changes made on another replica.

Why these tests: the gateway's overhead budget (issue 8: p50 <= 0.5 ms) leaves no room for a database round
trip per request, so authentication, the team policy and the AI-credit state are served from memory once
warm. Caches are only correct if they follow changes: a change made through one replica must take effect on
every other replica within the bound ``PolicyCache`` documents (its ``ttl_s``).

Both tests run a second byollm server ("replica B") in this process on the stack's database, built exactly
like the first (``create_app(settings)``), so the SQL it issues can be watched on its engine.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from sqlalchemy import event
from yarl import URL

from byollm.api.app import create_app
from byollm.api.serving import ServerThread
from byollm.gateway.policy_cache import DEFAULT_TTL_S
from byollm.providers.base import AwsAuth
from byollm.providers.bedrock import sigv4_headers
from byollm.services import Services
from support.stack import Stack

PROMPT = {"role": "user", "content": "hi"}
MODEL = "claude-haiku-4-5"
POLICY_TTL_S = DEFAULT_TTL_S  # what build_services gives the policy cache
_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN)\s+\"?(\w+)\"?", re.IGNORECASE)

# reads the hot path makes only when a cache entry is older than its refresh interval
_REFRESH_READS = {"api_tokens", "users", "memberships", "teams", "model_routes", "credit_ledger"}
# the batched request-log writer's tables (through the engine on PostgreSQL; its own connection on SQLite)
_LOG_WRITES = {"request_log", "credit_ledger"}
# background work on its own timers, whatever the traffic: token last-use flush, provider-key refresh, the run
# queue's slow poll, OIDC key rotation checks
_BACKGROUND = {"api_tokens", "secrets", "runs", "run_events", "signing_keys", "agents"}


@contextmanager
def replica(stack: Stack) -> Iterator[tuple[str, Services]]:
    """A second byollm server on the stack's database (same settings, its own caches)."""
    app = create_app(stack.settings)
    with ServerThread(app) as server:
        yield server.url, app.state.services


class StatementLog:
    """Every SQL statement a replica's engine executes while recording (listener on the sync engine)."""

    def __init__(self, services: Services) -> None:
        self._engine = services.store.engine.sync_engine
        self._lock = threading.Lock()
        self.recording = False
        self.statements: list[str] = []
        event.listen(self._engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
              ) -> None:
        if self.recording:
            with self._lock:
                self.statements.append(" ".join(statement.split()))

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


def _tables(statement: str) -> set[str]:
    return {t.lower() for t in _TABLE.findall(statement)}


def _send(client: httpx.Client, i: int, delegated: dict[str, str]) -> None:
    """One of four inference shapes: Bedrock and direct, Messages and Chat Completions, plain and streaming."""
    shape = i % 4
    if shape == 0:
        r = client.post("/v1/messages", headers=delegated,
                        json={"model": MODEL, "max_tokens": 5, "messages": [PROMPT]})
    elif shape == 1:
        r = client.post("/v1/messages", json={"model": MODEL, "max_tokens": 5, "messages": [PROMPT], "stream": True})
    elif shape == 2:
        r = client.post("/v1/chat/completions", json={"model": MODEL, "messages": [PROMPT]})
    else:
        r = client.post("/v1/chat/completions", headers=delegated,
                        json={"model": MODEL, "messages": [PROMPT], "stream": True})
    assert r.status_code == 200, r.text
    expected = "bedrock:" if shape in (0, 3) else "anthropic:"
    assert r.headers["x-byollm-route"].startswith(expected)


def test_no_database_round_trip_per_request_after_warm_up(stack: Stack) -> None:
    # the direct shapes carry no AWS credentials: the team allows serving them direct (a counted fallback)
    team = stack.new_team({MODEL: {"bedrock": True, "direct": True}}, credentialless_direct_allowed=True)
    delegated = stack.delegated_headers()
    requests = 80
    with replica(stack) as (url, services), \
            httpx.Client(base_url=url, timeout=30, headers={"authorization": f"Bearer {team.token}"}) as client:
        log = StatementLog(services)
        try:
            for i in range(4):  # warm-up: every cache filled once, the pool's connections open
                _send(client, i, delegated)
            log.recording = True
            began = time.monotonic()
            for i in range(requests):
                _send(client, i, delegated)
            elapsed = time.monotonic() - began
            time.sleep(0.4)  # the request-log writer flushes every 100 ms
            log.recording = False
        finally:
            log.close()
        rows = stack.request_log(team.uid)
    assert len(rows) >= requests + 4  # every request was logged (in batches, off the hot path)

    per_table: dict[str, int] = {}
    for statement in log.statements:
        verb = statement.split(" ", 1)[0].upper()
        tables = _tables(statement)
        if verb == "INSERT":
            assert tables <= _LOG_WRITES, f"a write on the hot path: {statement[:200]}"
        elif verb in ("UPDATE", "DELETE"):
            assert tables <= _BACKGROUND, f"a write on the hot path: {statement[:200]}"
        for table in tables:
            per_table[table] = per_table.get(table, 0) + 1
    # a cache refresh is bounded by time, never by traffic: at most one per team and refresh interval for the
    # policy version (2 s), the credit total (5 s) and the token (10 s), each statement counted per table
    windows = math.ceil((elapsed + 0.4) / POLICY_TTL_S) + 1
    refresh_reads = sum(n for table, n in per_table.items() if table in _REFRESH_READS - _LOG_WRITES)
    assert refresh_reads <= 3 * windows, (refresh_reads, windows, per_table)
    assert refresh_reads < requests // 4, per_table  # a per-request query would make this >= requests
    queries = [s for s in log.statements if s.split(" ", 1)[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK")]
    assert len(queries) < requests // 4, per_table  # background timers included, nothing scales with traffic
    log_inserts = sum(1 for s in log.statements if s.upper().startswith("INSERT"))
    assert log_inserts <= 2 * math.ceil((elapsed + 0.4) / 0.1) + 2  # batches, not one per request


def test_concurrent_requests_with_a_cold_token_share_one_lookup(stack: Stack) -> None:
    """When the authentication cache misses (cold start, or every cache period for a busy token), the
    requests that arrive together wait for one lookup instead of each querying the database."""
    team = stack.new_team({MODEL: {"bedrock": False, "direct": True}})
    concurrent = 24

    async def burst(url: str) -> list[int]:
        async with httpx.AsyncClient(base_url=url, timeout=60,
                                     headers={"authorization": f"Bearer {team.token}"}) as client:
            answers = await asyncio.gather(*(client.post("/v1/messages", json={
                "model": MODEL, "max_tokens": 5, "messages": [PROMPT]}) for _ in range(concurrent)))
        return [r.status_code for r in answers]

    with replica(stack) as (url, services):
        log = StatementLog(services)
        try:
            log.recording = True
            statuses = asyncio.run(burst(url))
            log.recording = False
        finally:
            log.close()
    assert statuses == [200] * concurrent
    token_lookups = [s for s in log.statements if s.upper().startswith("SELECT") and "api_tokens" in _tables(s)]
    assert len(token_lookups) == 1, len(token_lookups)


def test_a_policy_change_on_one_replica_reaches_another_within_the_cache_bound(stack: Stack) -> None:
    team = stack.new_team({MODEL: {"bedrock": False, "direct": True}})
    body = {"model": MODEL, "max_tokens": 5, "messages": [PROMPT]}
    with replica(stack) as (url_b, services_b), \
            httpx.Client(base_url=stack.url, timeout=30, headers={"authorization": f"Bearer {team.token}"}) as a, \
            httpx.Client(base_url=url_b, timeout=30, headers={"authorization": f"Bearer {team.token}"}) as b:
        assert services_b.policies.ttl_s == POLICY_TTL_S
        for client in (a, b):  # both replicas have the policy cached
            r = client.post("/v1/messages", json=body)
            assert r.status_code == 200 and r.headers["x-byollm-route"].startswith("anthropic:"), r.text

        team.policy(models={MODEL: {"bedrock": False, "direct": False}})  # through replica A's admin API
        changed = time.monotonic()
        refused_a = a.post("/v1/messages", json=body)
        assert refused_a.status_code >= 400, refused_a.text  # the replica that made the change: at once

        refused_after: float | None = None
        while time.monotonic() - changed < POLICY_TTL_S + 3.0:
            r = b.post("/v1/messages", json=body)
            if r.status_code >= 400:
                refused_after = time.monotonic() - changed
                assert r.json()["error"]["byollm"]["code"] == refused_a.json()["error"]["byollm"]["code"]
                break
            time.sleep(0.05)
        assert refused_after is not None, "replica B kept serving a model the team disabled"
        assert refused_after <= POLICY_TTL_S + 1.0, refused_after  # the documented bound, plus scheduling slack

        team.policy(models={MODEL: {"bedrock": False, "direct": True}})  # and back: re-enabled on B as well
        changed = time.monotonic()
        while time.monotonic() - changed < POLICY_TTL_S + 3.0:
            if b.post("/v1/messages", json=body).status_code == 200:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("replica B never saw the model re-enabled")
        assert time.monotonic() - changed <= POLICY_TTL_S + 1.0


# --- the lean replacements agree with botocore ----------------------------------------------------------------


def test_crt_sigv4_headers_are_botocore_sigv4_headers() -> None:
    """``sigv4_headers`` (awscrt) signs exactly as botocore's ``SigV4Auth``: same canonical request, so the
    same signature for the timestamp it chose."""
    auth = AwsAuth("ASIAEXAMPLEEXAMPLE", "c2VjcmV0LXNlY3JldC1zZWNyZXQ", "session/token+with=odd&chars")
    body = b'{"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
    for raw_url in ("http://127.0.0.1:5555/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke",
                    "https://bedrock-runtime.eu-west-1.amazonaws.com/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A1"
                    "%3Aapplication-inference-profile%2Fabc/invoke-with-response-stream"):
        url = URL(raw_url, encoded=True)
        headers = {"content-type": "application/json", "accept": "application/json",
                   "x-amzn-bedrock-request-metadata": '{"byollm_request_id": "req_1"}', "user-agent": "byollm"}
        signed = sigv4_headers(auth, "eu-west-1", url, headers, body)

        request = AWSRequest(method="POST", url=raw_url, data=body, headers=headers)
        signer = SigV4Auth(Credentials(auth.access_key_id, auth.secret_access_key, auth.session_token),
                           "bedrock", "eu-west-1")
        request.context["timestamp"] = signed["X-Amz-Date"]
        request.headers["X-Amz-Date"] = signed["X-Amz-Date"]
        request.headers["X-Amz-Security-Token"] = auth.session_token
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        assert signed["Authorization"].endswith("Signature=" + expected), (raw_url, canonical)
        assert "user-agent" not in signed["Authorization"]  # botocore never signs it
        assert signed["host"] == ("127.0.0.1:5555" if "127.0.0.1" in raw_url
                                  else "bedrock-runtime.eu-west-1.amazonaws.com")
