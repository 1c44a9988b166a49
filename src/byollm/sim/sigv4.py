"""SigV4 verification, by recomputing the signature with botocore's own signer.

No maintained SigV4 verifier exists, and the simulator must accept exactly what botocore produces, so the
canonical request and string-to-sign come from ``botocore.auth.SigV4Auth`` fed with an ``AWSRequest`` built
from the raw (still percent-encoded) path, the raw query, the signed headers only, and the body. The final
HMAC uses a cached derived signing key (four HMACs saved per request) and ``hmac.compare_digest``.

Failures carry a protocol-neutral kind; ``SigV4Error.code(protocol)`` gives the name AWS uses on the wire
for rest-json services (Bedrock: ``InvalidSignatureException``, ``UnrecognizedClientException``, …) and for
query services (STS/IAM: ``SignatureDoesNotMatch``, ``InvalidClientTokenId``, …).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from byollm.sim.state import Principal, SigningIdentity, SimState

__all__ = ["BEDROCK_MAX_SKEW_S", "STS_MAX_SKEW_S", "SigV4Error", "SigV4Verifier", "Verified"]

# How far X-Amz-Date may be from the server's clock: Bedrock (like most services) allows 5 minutes, STS 15
# (the 403 message says which: "... (now - 5 min.)").
BEDROCK_MAX_SKEW_S = 5 * 60
STS_MAX_SKEW_S = 15 * 60

_CODES: dict[str, tuple[str, str, int]] = {
    # kind: (rest-json code, query code, http status)
    "missing": ("MissingAuthenticationTokenException", "MissingAuthenticationToken", 403),
    "incomplete": ("IncompleteSignatureException", "IncompleteSignature", 400),
    "unknown_key": ("UnrecognizedClientException", "InvalidClientTokenId", 403),
    "signature": ("InvalidSignatureException", "SignatureDoesNotMatch", 403),
    "expired": ("ExpiredTokenException", "ExpiredToken", 403),
}

_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)


class SigV4Error(Exception):
    """Authentication failed; ``kind`` is one of the keys of ``_CODES``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def code(self, protocol: str) -> str:
        rest, query, _ = _CODES[self.kind]
        return query if protocol == "query" else rest

    @property
    def status(self) -> int:
        return _CODES[self.kind][2]


@dataclass(frozen=True, slots=True)
class Verified:
    principal: Principal
    identity: SigningIdentity
    access_key_id: str
    region: str
    service: str
    source_ip: str | None = None  # the TCP peer, as aws:SourceIp
    secure_transport: bool = False  # whether the request came over TLS, as aws:SecureTransport


class SigV4Verifier:
    """Verifies requests against the credentials known to a ``SimState``."""

    def __init__(self, state: SimState) -> None:
        self._state = state
        self._keys: dict[tuple[str, str, str, str], bytes] = {}

    def _signing_key(self, secret: str, date: str, region: str, service: str) -> bytes:
        cache_key = (secret, date, region, service)
        key = self._keys.get(cache_key)
        if key is None:
            if len(self._keys) > 4096:
                self._keys.clear()
            k = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
            k = hmac.new(k, region.encode(), hashlib.sha256).digest()
            k = hmac.new(k, service.encode(), hashlib.sha256).digest()
            key = hmac.new(k, b"aws4_request", hashlib.sha256).digest()
            self._keys[cache_key] = key
        return key

    def verify(
        self,
        *,
        method: str,
        raw_path: str,
        query: str,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        max_skew_s: int = STS_MAX_SKEW_S,
        scope: Mapping[str, Any] | None = None,
    ) -> Verified:
        """Check the Authorization header; return the caller, region and service or raise SigV4Error.

        ``max_skew_s`` is the service's clock-skew allowance (``BEDROCK_MAX_SKEW_S`` for Bedrock)."""
        hmap: dict[str, str] = {}
        for k, v in headers:
            name = k.decode("latin-1").lower()
            value = v.decode("latin-1")
            hmap[name] = f"{hmap[name]},{value}" if name in hmap else value
        auth = hmap.get("authorization")
        if not auth:
            raise SigV4Error("missing", "Missing Authentication Token")
        algorithm, _, rest = auth.partition(" ")
        if algorithm != "AWS4-HMAC-SHA256":
            raise SigV4Error("incomplete", f"Unsupported authorization type: {algorithm}")
        fields: dict[str, str] = {}
        for part in rest.split(","):
            name, _, value = part.strip().partition("=")
            fields[name] = value
        try:
            credential = fields["Credential"]
            signed_headers = fields["SignedHeaders"].split(";")
            signature = fields["Signature"]
            access_key_id, date, region, service, terminator = credential.split("/")
        except (KeyError, ValueError) as exc:
            raise SigV4Error(
                "incomplete",
                f"Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'. ({exc})",
            ) from None
        if terminator != "aws4_request":
            raise SigV4Error("incomplete", "Credential should be scoped with a valid terminator: 'aws4_request'")

        identity = self._state.signing_identity(access_key_id)
        if identity is None:
            raise SigV4Error("unknown_key", "The security token included in the request is invalid.")
        if identity.session_token is not None:
            token = hmap.get("x-amz-security-token")
            if token is None or not hmac.compare_digest(token.encode(), identity.session_token.encode()):
                raise SigV4Error("unknown_key", "The security token included in the request is invalid.")

        amz_date = hmap.get("x-amz-date", "")
        self._check_time(amz_date, date, max_skew_s)

        request = AWSRequest(
            method=method,
            url=f"http://{hmap.get('host', 'localhost')}{raw_path}" + (f"?{query}" if query else ""),
            headers={h: hmap.get(h, "") for h in signed_headers},
            data=body,
        )
        request.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(access_key_id, identity.secret_access_key), service, region)
        content_sha = hmap.get("x-amz-content-sha256")
        if content_sha not in (None, "UNSIGNED-PAYLOAD") and content_sha != hashlib.sha256(body).hexdigest():
            raise SigV4Error(
                "signature",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
        canonical = signer.canonical_request(request)
        string_to_sign = signer.string_to_sign(request, canonical)
        key = self._signing_key(identity.secret_access_key, date, region, service)
        expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise SigV4Error("signature", _BAD_SIGNATURE)

        if identity.expiration is not None and identity.expiration <= self._state.clock():
            raise SigV4Error("expired", "The security token included in the request is expired")
        client = (scope or {}).get("client")
        return Verified(
            identity.principal,
            identity,
            access_key_id,
            region,
            service,
            source_ip=str(client[0]) if client else None,
            secure_transport=(scope or {}).get("scheme") == "https",
        )

    def _check_time(self, amz_date: str, scope_date: str, max_skew_s: int) -> None:
        try:
            when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise SigV4Error(
                "incomplete",
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            ) from None
        if amz_date[:8] != scope_date:
            raise SigV4Error(
                "signature",
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP",
            )
        now = self._state.clock()
        skew = when.timestamp() - now
        if abs(skew) > max_skew_s:
            now_s = datetime.fromtimestamp(now, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
            minutes = max_skew_s // 60
            if skew < 0:
                bound = datetime.fromtimestamp(now - max_skew_s, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
                msg = f"Signature expired: {amz_date} is now earlier than {bound} ({now_s} - {minutes} min.)"
            else:
                bound = datetime.fromtimestamp(now + max_skew_s, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
                msg = f"Signature not yet current: {amz_date} is still later than {bound} ({now_s} + {minutes} min.)"
            raise SigV4Error("signature", msg)
