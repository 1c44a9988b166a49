"""SSRF guard on the team's Bedrock endpoint URL, through the real admin API and the real gateway.

Two byollm servers share one database: ``stack`` allows loopback (``127.0.0.0/8``, as every test stack
does, because teams point at the simulator) and ``strict`` is the same product with the default empty
allow-list. Set time: each internal spelling is refused with ``invalid_request`` naming the field and the
way out; loopback is accepted only where the operator allowed it. Request time: a team whose endpoint was
stored while loopback was allowed is served by ``strict`` without Bedrock ever being called, the attempt
recorded as ``endpoint_not_allowed``, and the request fails over to the direct route.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import MessageParam

from byollm.api.app import create_app
from byollm.api.serving import ServerThread
from byollm.errors import ErrorClass
from support.stack import Stack, running_stack

PROMPT: MessageParam = {"role": "user", "content": "Tell me something"}

# spellings of internal addresses, none inside 127.0.0.0/8: refused even where loopback is allowed
INTERNAL_ELSEWHERE = [
    ("metadata", "http://169.254.169.254", "link-local"),
    ("metadata-decimal", "http://2852039166", "link-local"),
    ("metadata-hex", "http://0xa9fea9fe", "link-local"),
    ("metadata-dotted-hex", "http://0xa9.0xfe.0xa9.0xfe", "link-local"),
    ("metadata-ipv6-ec2", "http://[fd00:ec2::254]", "unique-local"),
    ("metadata-mapped", "http://[::ffff:169.254.169.254]", "link-local"),
    ("rfc1918", "https://10.0.0.1", "private"),
    ("rfc1918-octal", "https://012.0.0.1:8443", "private"),
    ("rfc1918-192", "https://192.168.1.20/bedrock", "private"),
    ("cgnat", "https://100.64.0.1", "carrier-grade NAT"),
    ("unspecified", "http://0.0.0.0:80", "unspecified"),
    ("multicast", "http://224.0.0.1", "multicast"),
    ("reserved", "http://240.0.0.1", "reserved"),
    ("ipv6-loopback", "http://[::1]:8080", "loopback"),
    ("nat64-metadata", "http://[64:ff9b::a9fe:a9fe]", "link-local"),
]

# spellings of loopback: refused by the strict server, accepted by the stack that allows 127.0.0.0/8
LOOPBACK_SPELLINGS = [
    ("dotted", "http://127.0.0.1:9"),
    ("decimal", "http://2130706433"),
    ("hex-short", "http://0x7f.1"),
    ("octal", "http://0177.0.0.1"),
    ("short", "http://127.1"),
    ("mapped-ipv6", "http://[::ffff:127.0.0.1]"),
    ("name", "http://localhost:9"),
]


@dataclass
class Pair:
    stack: Stack  # allows 127.0.0.0/8
    strict_url: str  # same database, no internal network allowed
    strict_admin: httpx.Client


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with running_stack(Path(tmp_path_factory.mktemp("ssrf"))) as stack:
        strict = replace(stack.settings, allowed_internal_networks=(), run_worker_embedded=False)
        with ServerThread(create_app(strict)) as server, \
                httpx.Client(base_url=server.url + "/api/v1", timeout=30,
                             headers={"authorization": f"Bearer {stack.operator}"}) as admin:
            yield Pair(stack=stack, strict_url=server.url, strict_admin=admin)


@pytest.fixture(scope="module")
def team_uid(pair: Pair) -> str:
    return pair.stack.new_team().uid


def _set_endpoint(admin: httpx.Client, team_uid: str, url: str | None) -> httpx.Response:
    return admin.patch(f"/teams/{team_uid}/bedrock", json={"endpoint_url": url})


def _assert_refused(r: httpx.Response, *fragments: str) -> str:
    assert r.status_code == ErrorClass.INVALID_REQUEST.status, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["context"]["field"] == "endpoint_url"
    message = str(error["message"])
    assert message.startswith("endpoint_url: ")
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize(("url", "kind"), [(u, k) for _, u, k in INTERNAL_ELSEWHERE],
                         ids=[n for n, _, _ in INTERNAL_ELSEWHERE])
def test_internal_addresses_outside_the_allow_list_are_refused(pair: Pair, team_uid: str, url: str,
                                                               kind: str) -> None:
    message = _assert_refused(_set_endpoint(pair.stack.admin, team_uid, url), kind,
                              "BYOLLM_ALLOWED_INTERNAL_NETWORKS", "public endpoint hostname")
    assert "127.0.0.0/8" not in message  # the operator's allow-list is not shown to team admins
    assert pair.stack.admin.get(f"/teams/{team_uid}/bedrock").json()["endpoint_url"] != url


@pytest.mark.parametrize("url", [u for _, u in LOOPBACK_SPELLINGS], ids=[n for n, _ in LOOPBACK_SPELLINGS])
def test_loopback_in_any_spelling_is_refused_unless_the_operator_allows_it(pair: Pair, team_uid: str,
                                                                          url: str) -> None:
    _assert_refused(_set_endpoint(pair.strict_admin, team_uid, url), "loopback", "BYOLLM_ALLOWED_INTERNAL_NETWORKS")
    allowed = _set_endpoint(pair.stack.admin, team_uid, url)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["endpoint_url"] == url


def test_odd_spellings_name_the_address_they_reach(pair: Pair, team_uid: str) -> None:
    message = _assert_refused(_set_endpoint(pair.strict_admin, team_uid, "http://2130706433"))
    assert "2130706433 (that is 127.0.0.1) is a loopback address" in message


def test_a_hostname_is_refused_by_what_it_resolves_to_without_revealing_the_address(pair: Pair,
                                                                                   team_uid: str) -> None:
    message = _assert_refused(_set_endpoint(pair.strict_admin, team_uid, "http://localhost:9"),
                              "localhost resolves to a loopback address")
    assert "127.0.0.1" not in message


def test_a_hostname_that_does_not_resolve_is_refused(pair: Pair, team_uid: str) -> None:
    message = _assert_refused(_set_endpoint(pair.stack.admin, team_uid, "https://bedrock.byollm-test.invalid"),
                              "bedrock.byollm-test.invalid does not resolve")
    assert "BYOLLM_ALLOWED_INTERNAL_NETWORKS" not in message  # not an internal address: a different fix


def test_user_info_in_the_url_is_refused(pair: Pair, team_uid: str) -> None:
    _assert_refused(_set_endpoint(pair.stack.admin, team_uid, "https://user@bedrock-runtime.us-east-1.amazonaws.com"),
                    "credentials are not allowed")


def test_public_addresses_and_clearing_the_endpoint_are_accepted(pair: Pair, team_uid: str) -> None:
    for url in ("https://52.94.133.131", "https://[2600:1f18::1]:8443/prefix"):
        r = _set_endpoint(pair.strict_admin, team_uid, url)
        assert r.status_code == 200, r.text
        assert r.json()["endpoint_url"] == url
    cleared = _set_endpoint(pair.strict_admin, team_uid, None)
    assert cleared.status_code == 200 and cleared.json()["endpoint_url"] is None


def _wait_for_row(stack: Stack, team_uid: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        rows = stack.request_log(team_uid)
        if rows or time.monotonic() > deadline:
            assert len(rows) == 1, rows
            return rows[0]
        time.sleep(0.1)


def test_a_stored_internal_endpoint_is_refused_at_connect_time_and_fails_over(pair: Pair) -> None:
    stack = pair.stack
    team = stack.new_team()  # its endpoint (the simulator on loopback) was stored where loopback is allowed
    stack.clear_journal()
    sdk = anthropic.Anthropic(base_url=pair.strict_url, api_key=team.token, max_retries=0,
                              default_headers=stack.delegated_headers())
    raw = sdk.messages.with_raw_response.create(model="claude-opus-4-7", max_tokens=50, messages=[PROMPT])
    assert raw.headers["x-byollm-route"] == "anthropic:claude-opus-4-7"
    assert raw.headers["x-byollm-fallbacks"] == "1"
    assert stack.journal("bedrock-runtime") == []  # Bedrock was never called
    row = _wait_for_row(stack, team.uid)
    assert [a.error_code for a in row["attempts"]] == ["endpoint_not_allowed", None]

    # the same team through the server that allows loopback is served by Bedrock
    allowed = anthropic.Anthropic(base_url=stack.url, api_key=team.token, max_retries=0,
                                  default_headers=stack.delegated_headers())
    served = allowed.messages.with_raw_response.create(model="claude-opus-4-7", max_tokens=50, messages=[PROMPT])
    assert served.headers["x-byollm-route"].startswith("bedrock:")


@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
def test_without_a_fallback_the_caller_sees_the_class_and_its_remediation(pair: Pair, streaming: bool) -> None:
    stack = pair.stack
    team = stack.new_team({"claude-sonnet-4-6": {"bedrock": True}})
    stack.clear_journal()
    r = httpx.post(pair.strict_url + "/v1/messages", timeout=30,
                   headers={"authorization": f"Bearer {team.token}", **stack.delegated_headers()},
                   json={"model": "claude-sonnet-4-6", "max_tokens": 20, "stream": streaming, "messages": [PROMPT]})
    assert 400 <= r.status_code < 500 and r.status_code != 429, r.text  # admin-fixable: SDKs must not retry
    (attempt,) = r.json()["error"]["byollm"]["context"]["attempts"]
    assert attempt["code"] == "endpoint_not_allowed"
    assert attempt["remediation"] == ErrorClass.ENDPOINT_NOT_ALLOWED.remediation
    assert "127.0.0.1 is a loopback address" in attempt["detail"]
    assert stack.journal("bedrock-runtime") == []
