"""The egress guard: may byollm connect to a destination a team admin chose?

Why it exists: a team admin can set the team's Bedrock endpoint URL, and byollm's server then sends signed
requests there from inside the operator's network. Without a guard, that is a server-side request forgery
(SSRF) primitive: an admin could point the endpoint at the cloud metadata service (``169.254.169.254``,
``fd00:ec2::254``), at a database on loopback, or at anything else only the server can reach, and read parts
of the answers back through error messages. So destinations an admin chose are refused when they are
*internal* (loopback, private RFC 1918 and IPv6 unique-local, link-local, unspecified, multicast, reserved,
carrier-grade NAT ``100.64.0.0/10``, and the IPv4-mapped, 6to4 and NAT64 forms of any of these), unless the
operator lists the network in ``BYOLLM_ALLOWED_INTERNAL_NETWORKS`` (a VPC interface endpoint resolves to the
VPC's private addresses, so operators using one allow the VPC's CIDR; the demo and tests allow loopback).

Two checks, because one is not enough:

- at set time (``ControlService.update_bedrock``), :meth:`EgressGuard.check_url` refuses the URL before it is
  stored, resolving a hostname through the event loop's ``getaddrinfo``; a hostname that does not resolve is
  refused too (an endpoint byollm cannot reach is useless, and "fix it later" would store a URL nobody
  checked);
- at connect time (``providers.http.HttpPool.guarded_session``), the same decision is applied to the
  addresses aiohttp is about to connect to, so DNS rebinding, rows stored before this guard existed, and an
  operator narrowing the allow-list later are all covered.

Odd spellings of addresses are recognised as literals the way the C resolver reads them (``2130706433``,
``0x7f.1``, ``0177.0.0.1``, ``127.1``, ``[::ffff:127.0.0.1]``), so they are classified as the address they
reach rather than looked up as names. Operator-configured URLs (direct-provider base URLs, the STS endpoint)
are trusted and never pass through this module.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import lru_cache
from urllib.parse import urlsplit

__all__ = [
    "ALLOW_SETTING",
    "DestinationRefused",
    "EgressGuard",
    "IPAddress",
    "IPNetwork",
    "Resolve",
    "internal_kind",
    "literal_address",
    "parse_networks",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolve = Callable[[str, int], Awaitable[Sequence[str]]]
"""``resolve(host, port)`` -> the addresses ``host`` resolves to (text); raises ``OSError`` when it doesn't."""

ALLOW_SETTING = "BYOLLM_ALLOWED_INTERNAL_NETWORKS"

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the well-known prefix: the low 32 bits are the IPv4 target
_ULA = ipaddress.IPv6Network("fc00::/7")
_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")
_RESOLVE_TIMEOUT_S = 5.0


def parse_networks(values: Iterable[str], *, source: str = ALLOW_SETTING) -> tuple[IPNetwork, ...]:
    """CIDRs (or single addresses) as networks; host bits are dropped (``10.1.2.3/8`` is ``10.0.0.0/8``).

    Raises ``ValueError`` naming ``source`` and the bad entry, so a typo stops the server at start instead
    of silently allowing nothing (or everything)."""
    networks: list[IPNetwork] = []
    for raw in values:
        text = raw.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{source}: {text!r} is not a network in CIDR notation (for example 10.0.0.0/8 or"
                             f" fd00::/8); separate several with commas") from None
    return tuple(networks)


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` denotes if it is written as one, in any spelling the C resolver accepts.

    Brackets and one trailing dot are ignored. Besides the canonical forms this reads the BSD ``inet_aton``
    forms: one to four parts, each decimal, octal (leading ``0``) or hex (``0x``), the last part filling the
    remaining bytes (``127.1`` is ``127.0.0.1``; ``2130706433`` is ``127.0.0.1``). None for a hostname.
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1]
    if not text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    parts = text.split(".")
    if len(parts) > 4 or not all(_PART.fullmatch(p) for p in parts):
        return None
    values = [int(p[2:] or "0", 16) if p[:2].lower() == "0x" else int(p, 8) if p.startswith("0") else int(p)
              for p in parts]
    *head, last = values
    if any(v > 0xFF for v in head) or last >= 1 << (8 * (5 - len(parts))):
        return None
    number = 0
    for v in head:
        number = number << 8 | v
    number = number << (8 * (5 - len(parts))) | last
    return ipaddress.IPv4Address(number)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 destination an IPv6 address stands for (mapped, 6to4, NAT64), if it stands for one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@lru_cache(maxsize=4096)
def internal_kind(address: IPAddress) -> str | None:
    """Why ``address`` is internal (``"loopback"``, ``"link-local"``...), or None for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if address.ipv4_mapped is not None and embedded is not None:
            return internal_kind(embedded)  # the same destination as the IPv4 address
        if embedded is not None and (kind := internal_kind(embedded)) is not None:
            return f"{kind} (embedded in an IPv6 address)"
        if address in _NAT64:  # DNS64 answers for public names on IPv6-only networks: the IPv4 target decides
            return None
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "shared (carrier-grade NAT)"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "unique-local" if isinstance(address, ipaddress.IPv6Address) and address in _ULA else "private"
    if not address.is_global:
        return "non-public"
    return None


class DestinationRefused(Exception):
    """A destination the guard refuses. ``address`` is the refused address (None when there was none).

    ``reason`` is a sentence fragment safe to show an admin: for a hostname it names the kind of address
    (never the resolved internal address itself, so the guard is not a way to map the internal DNS)."""

    def __init__(self, host: str, reason: str, address: str | None = None, *, unresolved: bool = False) -> None:
        super().__init__(reason)
        self.host = host
        self.reason = reason
        self.address = address
        self.unresolved = unresolved


async def _loop_resolve(host: str, port: int) -> Sequence[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class EgressGuard:
    """The decision for one server: internal destinations are refused unless inside an allowed network."""

    def __init__(self, allowed: Iterable[str | IPNetwork] = (), *, resolve: Resolve | None = None) -> None:
        """``allowed`` is the operator's allow-list (``Settings.allowed_internal_networks``); ``resolve``
        exists for tests of names that do not resolve here (default: the event loop's ``getaddrinfo``)."""
        self._allowed = tuple(a if not isinstance(a, str) else parse_networks([a])[0] for a in allowed)
        self._resolve = resolve or _loop_resolve

    @property
    def allowed(self) -> tuple[IPNetwork, ...]:
        return self._allowed

    def _in_allowed(self, address: IPAddress) -> bool:
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(a.version == n.version and a in n for a in candidates for n in self._allowed)

    def refusal(self, address: IPAddress) -> str | None:
        """Why connecting to ``address`` is refused (its kind of internal address), or None when allowed."""
        kind = internal_kind(address)
        if kind is None or self._in_allowed(address):
            return None
        return kind

    def check_address(self, host: str, address: str | IPAddress) -> None:
        """Raise ``DestinationRefused`` if ``host``'s resolved ``address`` may not be connected to."""
        parsed = address if not isinstance(address, str) else _parse_resolved(address)
        if parsed is None:
            raise DestinationRefused(host, f"{host} resolved to something that is not an IP address")
        kind = self.refusal(parsed)
        if kind is None:
            return
        literal = literal_address(host)
        if literal is not None:
            shown = str(literal) if str(literal) == host.strip("[]") else f"{host} (that is {literal})"
            raise DestinationRefused(host, f"{shown} is a {kind} address", str(parsed))
        raise DestinationRefused(host, f"{host} resolves to a {kind} address", str(parsed))

    def check_literal(self, host: str) -> bool:
        """For a host written as an address: raise if refused, return True. For a hostname: False."""
        literal = literal_address(host)
        if literal is None:
            return False
        self.check_address(host, literal)
        return True

    async def check_host(self, host: str, port: int) -> None:
        """Refuse ``host`` if it is, or resolves to, any internal address outside the allow-list.

        Every address counts, not just the first: a client may connect to any of them (happy eyeballs), and
        a name with one public and one internal address is exactly what a rebinding attack looks like."""
        if self.check_literal(host):
            return
        try:
            async with asyncio.timeout(_RESOLVE_TIMEOUT_S):
                addresses = await self._resolve(host, port)
        except (OSError, TimeoutError) as exc:
            why = "did not resolve in time" if isinstance(exc, TimeoutError) else "does not resolve"
            raise DestinationRefused(host, f"{host} {why} from the byollm server", unresolved=True) from None
        if not addresses:
            raise DestinationRefused(host, f"{host} does not resolve from the byollm server", unresolved=True)
        for address in addresses:
            self.check_address(host, address)

    async def check_url(self, url: str) -> None:
        """Refuse a URL whose host is (or resolves to) a refused address, or that carries user info."""
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise DestinationRefused(parts.hostname or "", "credentials (user info) are not allowed in the URL")
        host = parts.hostname
        if not host:
            raise DestinationRefused("", "the URL has no host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise DestinationRefused(host, "the URL's port is not a number between 0 and 65535") from None
        await self.check_host(host, port)


def _parse_resolved(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return literal_address(text)
