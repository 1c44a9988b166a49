"""The simulated AWS Sign-In service, for the interactive flow's local credentials.

Three doors, all under ``/signin`` so botocore reaches them with ``AWS_ENDPOINT_URL_SIGNIN=<sim>/signin``
(botocore appends the operation's ``requestUri`` to a service-specific endpoint):

- ``POST /signin/v1/token`` is the real ``signin:CreateOAuth2Token`` operation (rest-json, unsigned, a
  DPoP proof in the ``DPoP`` header). botocore's ``login`` credential provider (profile key
  ``login_session``, the ``aws login`` path) calls it with ``grantType=refresh_token`` when its cached
  credentials near expiry. The proof is verified as the real service does: an ES256 JWT of type
  ``dpop+jwt`` signed by the key in its own ``jwk`` header, whose thumbprint must be the key the session
  was bound to at login, with ``htm``/``htu`` matching this request, a fresh ``iat`` and an unused
  ``jti``. A session that has ended (its lifetime ran out, or a test ended it) answers
  ``AccessDeniedException`` with ``error: TOKEN_EXPIRED``, which botocore turns into its own
  ``LoginRefreshRequired``.
- ``POST /signin/_sim/login`` stands in for the browser half of ``aws login``: it starts a session for
  an IAM user of the world, bound to the caller's DPoP public key, and returns what the AWS CLI would
  write to the login cache (minus the private key, which never leaves the caller).
- ``POST /signin/_sim/end-sessions`` ends a user's sessions; ``POST /signin/_sim/session-credentials``
  hands out short-lived session credentials for a user (what a ``credential_process`` helper returns).

The sessions live in one :class:`LoginSessions` owned by the routes, never in module state.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

if TYPE_CHECKING:
    from byollm.sim.state import SimState

__all__ = [
    "DEFAULT_CLIENT_ID",
    "SIGNIN_PATH_PREFIX",
    "DpopError",
    "LoginSessions",
    "jwk_thumbprint",
    "signin_routes",
    "verify_dpop_proof",
]

SIGNIN_PATH_PREFIX = "/signin"
DEFAULT_CLIENT_ID = "arn:aws:signin:::devtools/same-device"
_DPOP_MAX_AGE_S = 300
_MAX_CREDENTIAL_S = 3600


class DpopError(ValueError):
    """A DPoP proof failed verification; the message says which check failed."""


class _SigninError(Exception):
    """A modelled Sign-In exception: botocore reads the code from ``x-amzn-ErrorType``."""

    def __init__(self, code: str, error: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code, self.error, self.message, self.status = code, error, message, status

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.error, "message": self.message},
            status_code=self.status,
            headers={"x-amzn-ErrorType": self.code, "x-amzn-RequestId": _request_id()},
        )


def _invalid(message: str, error: str = "INVALID_REQUEST") -> _SigninError:
    """A ``ValidationException``: the request is malformed (bad body, bad proof, unknown token)."""
    return _SigninError("ValidationException", error, message, 400)


@dataclass
class _Session:
    account_id: str
    principal_arn: str
    client_id: str
    jkt: str
    ends_at: float
    credential_duration_s: int
    ended: bool = False


@dataclass
class LoginSessions:
    """Live ``aws login`` sessions keyed by their current refresh token (rotated on every refresh)."""

    clock: Callable[[], float] = time.time
    by_refresh_token: dict[str, _Session] = field(default_factory=dict)
    seen_jtis: dict[str, float] = field(default_factory=dict)

    def start(self, session: _Session) -> str:
        token = _refresh_token()
        self.by_refresh_token[token] = session
        return token

    def rotate(self, token: str) -> tuple[_Session, str]:
        session = self.by_refresh_token.pop(token)
        return session, self.start(session)

    def end_for(self, principal_arn: str) -> int:
        ended = 0
        for session in self.by_refresh_token.values():
            if session.principal_arn == principal_arn and not session.ended:
                session.ended = True
                ended += 1
        return ended

    def remember_jti(self, jti: str) -> bool:
        """Record a proof id; False when it was already used (a replay)."""
        now = self.clock()
        for old, seen_at in list(self.seen_jtis.items()):
            if now - seen_at > 2 * _DPOP_MAX_AGE_S:
                del self.seen_jtis[old]
        if jti in self.seen_jtis:
            return False
        self.seen_jtis[jti] = now
        return True


def signin_routes(state: SimState) -> list[BaseRoute]:
    """Routes to mount at the root of the simulator (they carry the ``/signin`` prefix themselves)."""
    service = _SigninService(state, LoginSessions(clock=state.clock))
    return [
        Route(f"{SIGNIN_PATH_PREFIX}/v1/token", service.create_oauth2_token, methods=["POST"]),
        Route(f"{SIGNIN_PATH_PREFIX}/_sim/login", service.login, methods=["POST"]),
        Route(f"{SIGNIN_PATH_PREFIX}/_sim/end-sessions", service.end_sessions, methods=["POST"]),
        Route(f"{SIGNIN_PATH_PREFIX}/_sim/session-credentials", service.session_credentials, methods=["POST"]),
    ]


# --------------------------------------------------------------------------------------------- DPoP


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint of an EC public JWK: the identity a session is bound to."""
    canonical = json.dumps(
        {"crv": jwk.get("crv"), "kty": jwk.get("kty"), "x": jwk.get("x"), "y": jwk.get("y")},
        separators=(",", ":"),
        sort_keys=True,
    )
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def _public_key(jwk: Mapping[str, Any]) -> ec.EllipticCurvePublicKey:
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256" or "d" in jwk:
        raise DpopError("the jwk header must be a public P-256 EC key")
    try:
        x = int.from_bytes(_b64url_decode(str(jwk["x"])), "big")
        y = int.from_bytes(_b64url_decode(str(jwk["y"])), "big")
        return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    except (KeyError, ValueError) as exc:
        raise DpopError("the jwk header is not a valid P-256 point") from exc


def verify_dpop_proof(proof: str, *, method: str, url: str, now: float) -> tuple[str, str]:
    """Verify a DPoP proof JWT (RFC 9449) for one request; return (key thumbprint, jti).

    Raises :class:`DpopError` naming the failed check.
    """
    try:
        header_b64, payload_b64, signature_b64 = proof.split(".")
        header = json.loads(_b64url_decode(header_b64))
        payload = json.loads(_b64url_decode(payload_b64))
        signature = _b64url_decode(signature_b64)
    except ValueError as exc:
        raise DpopError("the proof is not a compact JWS") from exc
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise DpopError("the proof header and payload must be JSON objects")
    if header.get("typ") != "dpop+jwt":
        raise DpopError("typ must be dpop+jwt")
    if header.get("alg") != "ES256":
        raise DpopError("alg must be ES256")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise DpopError("the proof carries no jwk header")
    if len(signature) != 64:
        raise DpopError("an ES256 signature is 64 bytes")
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        _public_key(jwk).verify(der, f"{header_b64}.{payload_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise DpopError("the signature does not verify with the jwk in the header") from exc
    if payload.get("htm") != method:
        raise DpopError("htm does not match the request method")
    if payload.get("htu") != url:
        raise DpopError("htu does not match the request URL")
    iat = payload.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int) or abs(now - iat) > _DPOP_MAX_AGE_S:
        raise DpopError("iat is missing or not within 5 minutes of now")
    jti = payload.get("jti")
    if not isinstance(jti, str) or not jti:
        raise DpopError("jti is missing")
    return jwk_thumbprint(jwk), jti


# ------------------------------------------------------------------------------------------ service


def _request_id() -> str:
    return secrets.token_hex(16)


def _refresh_token() -> str:
    return "ASOR" + secrets.token_urlsafe(48)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _request_url(request: Request) -> str:
    """The URL the client addressed, without the query (what botocore puts in ``htu``)."""
    return str(request.url.replace(query=""))


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise _invalid("The body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise _invalid("The body must be a JSON object")
    return body


def _seconds(body: Mapping[str, Any], name: str, default: int) -> int:
    """A positive whole number of seconds from a sim-only request body."""
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _invalid(f"{name} must be a positive integer")
    return value


class _SigninService:
    """Handlers; one instance per mounted app, holding the login sessions."""

    def __init__(self, state: SimState, sessions: LoginSessions) -> None:
        self._state = state
        self._sessions = sessions

    def _user(self, ref: object) -> tuple[str, str]:
        """Resolve a user given as ``name``, ``ACCOUNT/name`` or an ARN to (account id, user ARN)."""
        wanted = str(ref or "")
        for account in self._state.world.accounts.values():
            for user in account.users.values():
                arn = user.arn(account.account_id)
                if wanted in (user.name, f"{account.account_id}/{user.name}", arn):
                    return account.account_id, arn
        raise _SigninError("ResourceNotFoundException", "RESOURCE_NOT_FOUND", f"No IAM user {wanted!r}", 404)

    def _issue(self, session: _Session, refresh_token: str) -> dict[str, Any]:
        remaining = int(session.ends_at - self._sessions.clock())
        expires_in = max(1, min(session.credential_duration_s, remaining))
        creds = self._state.issue_session_credentials(
            account_id=session.account_id, principal_arn=session.principal_arn, duration_s=expires_in
        )
        return {
            "accessToken": {
                "accessKeyId": creds.access_key_id,
                "secretAccessKey": creds.secret_access_key,
                "sessionToken": creds.session_token,
            },
            "tokenType": "aws_sigv4",
            "expiresIn": expires_in,
            "refreshToken": refresh_token,
        }

    async def create_oauth2_token(self, request: Request) -> Response:
        try:
            body = await _json_object(request)
            if body.get("grantType") != "refresh_token":
                raise _invalid("Only refresh_token is simulated", "unsupported_grant_type")
            token = str(body.get("refreshToken") or "")
            session = self._sessions.by_refresh_token.get(token)
            if session is None or session.client_id != body.get("clientId"):
                raise _invalid("The refresh token is invalid", "invalid_grant")
            self._check_proof(request, session)
            if session.ended or self._sessions.clock() >= session.ends_at:
                raise _SigninError(
                    "AccessDeniedException", "TOKEN_EXPIRED", "Your session has expired. Sign in again.", 400
                )
            session, new_token = self._sessions.rotate(token)
            return JSONResponse(self._issue(session, new_token), headers={"x-amzn-RequestId": _request_id()})
        except _SigninError as exc:
            return exc.response()

    def _check_proof(self, request: Request, session: _Session) -> None:
        proof = request.headers.get("dpop")
        if not proof:
            raise _invalid("The DPoP header is required")
        try:
            jkt, jti = verify_dpop_proof(
                proof, method=request.method, url=_request_url(request), now=self._sessions.clock()
            )
        except DpopError as exc:
            raise _invalid(f"Invalid DPoP proof: {exc}") from exc
        if jkt != session.jkt:
            raise _invalid("The DPoP key is not the one the session is bound to")
        if not self._sessions.remember_jti(jti):
            raise _invalid("The DPoP proof was already used")

    async def login(self, request: Request) -> Response:
        """Start a session (the browser half of ``aws login``) and return the cache entry to write."""
        try:
            body = await _json_object(request)
            account_id, principal_arn = self._user(body.get("user"))
            jwk = body.get("dpop_jwk")
            if not isinstance(jwk, dict):
                raise _invalid("dpop_jwk is required")
            try:
                _public_key(jwk)
            except DpopError as exc:
                raise _SigninError("ValidationException", "INVALID_REQUEST", str(exc), 400) from exc
            session = _Session(
                account_id=account_id,
                principal_arn=principal_arn,
                client_id=str(body.get("client_id") or DEFAULT_CLIENT_ID),
                jkt=jwk_thumbprint(jwk),
                ends_at=self._sessions.clock() + _seconds(body, "session_duration_s", 12 * 3600),
                credential_duration_s=min(_seconds(body, "credential_duration_s", 900), _MAX_CREDENTIAL_S),
            )
            output = self._issue(session, self._sessions.start(session))
        except _SigninError as exc:
            return exc.response()
        expires_at = datetime.fromtimestamp(self._sessions.clock() + output["expiresIn"], UTC)
        return JSONResponse(
            {
                "accessToken": {
                    **output["accessToken"],
                    "accountId": account_id,
                    "expiresAt": _iso(expires_at),
                },
                "tokenType": output["tokenType"],
                "refreshToken": output["refreshToken"],
                "clientId": session.client_id,
                "principalArn": principal_arn,
            }
        )

    async def end_sessions(self, request: Request) -> Response:
        """End every live session of a user, so the next refresh is refused."""
        try:
            _, principal_arn = self._user((await _json_object(request)).get("user"))
        except _SigninError as exc:
            return exc.response()
        return JSONResponse({"ended": self._sessions.end_for(principal_arn)})

    async def session_credentials(self, request: Request) -> Response:
        """Fresh session credentials for a user, shaped like ``credential_process`` output."""
        try:
            body = await _json_object(request)
            account_id, principal_arn = self._user(body.get("user"))
            duration = _seconds(body, "duration_s", 900)
        except _SigninError as exc:
            return exc.response()
        creds = self._state.issue_session_credentials(
            account_id=account_id, principal_arn=principal_arn, duration_s=duration
        )
        return JSONResponse(
            {
                "Version": 1,
                "AccessKeyId": creds.access_key_id,
                "SecretAccessKey": creds.secret_access_key,
                "SessionToken": creds.session_token,
                "Expiration": _iso(creds.expiration),
            }
        )
