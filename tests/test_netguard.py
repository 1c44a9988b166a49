"""The egress guard (``byollm.netguard``) and its place in the HTTP pool (``providers.http``).

The pure part is checked address by address: every kind of internal address, their odd spellings, their
IPv6 wrappings, and public addresses that must pass. The connection part runs real aiohttp requests to a
real server on loopback: a hostname, an address literal, and a redirect from an allowed server to a refused
address, which a check made only before the request would miss.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import AsyncIterator, Sequence

import pytest
from aiohttp import web

from byollm.errors import ByollmError, ErrorClass
from byollm.netguard import DestinationRefused, EgressGuard, Resolve, internal_kind, literal_address, parse_networks
from byollm.providers.http import HttpPool, UpstreamRedirected
from byollm.settings import Settings

INTERNAL = [
    ("127.0.0.1", "loopback"), ("127.255.255.254", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"), ("192.168.0.1", "private"),
    ("fd00::1", "unique-local"), ("fc00::1", "unique-local"),
    ("169.254.169.254", "link-local"), ("fd00:ec2::254", "unique-local"), ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"), ("::7f00:1", "reserved"),
    ("100.64.0.1", "shared (carrier-grade NAT)"), ("100.127.255.254", "shared (carrier-grade NAT)"),
    ("fec0::1", "site-local"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "link-local"), ("::ffff:10.0.0.1", "private"),
    ("2002:7f00:1::", "loopback (embedded in an IPv6 address)"),
    ("64:ff9b::a9fe:a9fe", "link-local (embedded in an IPv6 address)"),
    ("192.0.2.1", "private"), ("198.18.0.1", "private"),
]
PUBLIC = ["52.94.133.131", "8.8.8.8", "100.63.255.255", "100.128.0.1", "172.32.0.1", "2600:1f18::1",
          "::ffff:52.94.133.131", "64:ff9b::808:808", "2002:808:808::1"]

SPELLINGS = [
    ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"), ("127.0.1", "127.0.0.1"), ("0x7F.0.0.0x1", "127.0.0.1"), ("017700000001", "127.0.0.1"),
    ("[::ffff:127.0.0.1]", "::ffff:7f00:1"), ("127.0.0.1.", "127.0.0.1"), ("2852039166", "169.254.169.254"),
    ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"), ("[fd00:ec2::254]", "fd00:ec2::254"), ("0", "0.0.0.0"),
]
NOT_LITERALS = ["localhost", "bedrock-runtime.us-east-1.amazonaws.com", "256.1", "1.2.3.4.5", "08.1", "0x1g",
                "127.0.0.256", "1.16777216", "", "[]", "a.1"]


@pytest.mark.parametrize(("address", "kind"), INTERNAL, ids=[a for a, _ in INTERNAL])
def test_internal_addresses_are_named_by_kind(address: str, kind: str) -> None:
    assert internal_kind(ipaddress.ip_address(address)) == kind
    assert EgressGuard().refusal(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert internal_kind(ipaddress.ip_address(address)) is None
    EgressGuard().check_address("host", address)


@pytest.mark.parametrize(("host", "address"), SPELLINGS, ids=[h for h, _ in SPELLINGS])
def test_odd_spellings_are_read_as_the_address_they_reach(host: str, address: str) -> None:
    assert literal_address(host) == ipaddress.ip_address(address)
    with pytest.raises(DestinationRefused, match=r"is an? [a-z-]+ address"):
        EgressGuard().check_literal(host)


@pytest.mark.parametrize("host", NOT_LITERALS)
def test_hostnames_and_malformed_numbers_are_not_literals(host: str) -> None:
    assert literal_address(host) is None
    assert EgressGuard().check_literal(host) is False


def test_the_allow_list_admits_its_networks_only() -> None:
    guard = EgressGuard(["127.0.0.0/8", "10.20.0.0/16", "fd00:ec2::/32"])
    for allowed in ("127.0.0.1", "127.9.9.9", "::ffff:127.0.0.1", "10.20.3.4", "fd00:ec2::254"):
        assert guard.refusal(ipaddress.ip_address(allowed)) is None, allowed
    for refused in ("::1", "10.21.0.1", "169.254.169.254", "fd00:ec3::1"):
        assert guard.refusal(ipaddress.ip_address(refused)) is not None, refused


def test_parse_networks_canonicalises_and_names_the_setting_on_error() -> None:
    assert [str(n) for n in parse_networks([" 127.0.0.1/8", "", "10.0.0.1", "fd00::/8 "])] == \
        ["127.0.0.0/8", "10.0.0.1/32", "fd00::/8"]
    with pytest.raises(ValueError, match=re.escape("BYOLLM_ALLOWED_INTERNAL_NETWORKS: '10.0.0.0/33' is not a network")):
        parse_networks(["10.0.0.0/33"])


def test_settings_read_the_allow_list_from_the_environment() -> None:
    env = {"BYOLLM_DATA_DIR": "/tmp/byollm-netguard", "BYOLLM_ALLOWED_INTERNAL_NETWORKS": "127.0.0.1/8, ::1/128"}
    assert Settings.from_env(env).allowed_internal_networks == ("127.0.0.0/8", "::1/128")
    assert Settings.from_env({"BYOLLM_DATA_DIR": "/tmp/byollm-netguard"}).allowed_internal_networks == ()
    with pytest.raises(ValueError, match="BYOLLM_ALLOWED_INTERNAL_NETWORKS: 'loopback'"):
        Settings.from_env({**env, "BYOLLM_ALLOWED_INTERNAL_NETWORKS": "loopback"})


def _resolver(answers: dict[str, Sequence[str]]) -> Resolve:
    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in answers:
            raise OSError(f"{host} does not resolve")
        return answers[host]
    return resolve


async def test_check_url_resolves_names_and_refuses_any_internal_answer() -> None:
    # public names do not resolve in the test environment: the resolver is injected at the module boundary
    guard = EgressGuard(resolve=_resolver({
        "bedrock.example.com": ["52.94.133.131", "2600:1f18::1"],
        "rebind.example.com": ["52.94.133.131", "169.254.169.254"],
    }))
    await guard.check_url("https://bedrock.example.com/prefix")
    with pytest.raises(DestinationRefused, match=r"rebind\.example\.com resolves to a link-local address") as info:
        await guard.check_url("https://rebind.example.com")
    assert "169.254" not in info.value.reason
    with pytest.raises(DestinationRefused, match="does not resolve") as missing:
        await guard.check_url("https://missing.example.com")
    assert missing.value.unresolved
    with pytest.raises(DestinationRefused, match="user info"):
        await guard.check_url("https://user@bedrock.example.com")


async def test_check_url_uses_the_system_resolver_by_default() -> None:
    with pytest.raises(DestinationRefused, match="localhost resolves to a loopback address"):
        await EgressGuard().check_url("http://localhost:9")
    await EgressGuard(["127.0.0.0/8", "::1/128"]).check_url("http://localhost:9")


# --- at connect time, through the pool -------------------------------------------------------------------


@pytest.fixture
async def origin() -> AsyncIterator[str]:
    """A real HTTP server on 127.0.0.1 that answers, or redirects to wherever ``?to=`` says."""
    async def handle(request: web.Request) -> web.StreamResponse:
        if "to" in request.query:
            raise web.HTTPTemporaryRedirect(request.query["to"])
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _fetch(pool: HttpPool, url: str) -> str:
    async with pool.guarded_session.post(url, data=b"{}") as response:
        return await response.text()


async def test_the_guarded_session_refuses_literals_and_names_and_the_plain_one_does_not(origin: str) -> None:
    pool = HttpPool()
    try:
        port = origin.rsplit(":", 1)[1]
        for url in (origin, f"http://localhost:{port}", f"http://0x7f.1:{port}", f"http://[::ffff:127.0.0.1]:{port}"):
            with pytest.raises(ByollmError) as info:
                await _fetch(pool, url)
            assert info.value.error_class is ErrorClass.ENDPOINT_NOT_ALLOWED, url
            assert "loopback" in info.value.detail
        async with pool.session.get(origin) as trusted:  # operator-configured destinations are not guarded
            assert trusted.status == 200
    finally:
        await pool.close()


async def test_an_allowed_server_cannot_redirect_to_a_refused_address(origin: str) -> None:
    pool = HttpPool(guard=EgressGuard(["127.0.0.1/32"]))
    try:
        port = origin.rsplit(":", 1)[1]
        assert await _fetch(pool, origin + "/model/x/invoke") == "ok"
        assert await _fetch(pool, f"http://localhost:{port}/") == "ok"
        for target in (f"http://127.0.0.2:{port}/", f"http://[::1]:{port}/", "http://169.254.169.254/latest/"):
            # no redirect is followed at all (tests/security/test_no_redirects.py), so a refused address is
            # never reached: the redirect itself is the failure
            with pytest.raises(UpstreamRedirected) as info:
                await _fetch(pool, f"{origin}/?to={target}")
            assert info.value.error_class is ErrorClass.UPSTREAM_UNAVAILABLE, target
    finally:
        await pool.close()


def test_the_class_is_admin_fixable_fails_over_and_is_never_retried() -> None:
    cls = ErrorClass.from_code("endpoint_not_allowed")
    assert cls is ErrorClass.ENDPOINT_NOT_ALLOWED
    assert cls.status in (400, 403, 422, 424) and cls.fails_over and not cls.retryable
    assert "BYOLLM_ALLOWED_INTERNAL_NETWORKS" in cls.remediation
