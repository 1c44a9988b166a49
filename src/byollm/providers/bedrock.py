"""Amazon Bedrock Runtime: InvokeModel and InvokeModelWithResponseStream with the Anthropic body.

The canonical body goes to Bedrock almost verbatim: ``model`` and ``stream`` are removed (real Bedrock
rejects them), ``anthropic_version`` becomes ``bedrock-2023-05-31``, and the ``anthropic-beta`` values
Bedrock accepts move into the body's ``anthropic_beta`` list while the rest are dropped, as are tool fields
Bedrock refuses (``byollm.providers.bedrock_betas`` says which and why: an unknown beta fails the whole
request on Bedrock, and clients such as Claude Code send many). Requests are signed with SigV4 by the AWS Common Runtime
(``awscrt``, installed with ``botocore[crt]``), which produces exactly the headers botocore's ``SigV4Auth``
does at a fraction of its cost (signing was the largest single item in a Bedrock request's own time);
responses stream as AWS event-stream frames decoded by botocore's own decoder (``EventStreamBuffer``,
which checks lengths and both CRC32s), each chunk carrying one Anthropic streaming event whose JSON is
passed through untouched. A damaged frame, or a stream that ends before its ``message_stop`` event (mid-frame
or between frames), is an unreadable upstream answer, never a silently short one.

Every failure is classified in ``_upstream_errors`` (one context manager around the request and the stream
iteration). Bedrock's error type decides, not the HTTP status: a ``ServiceUnavailableException`` that
arrives with status 400 is still an outage, and Bedrock's setup errors that arrive as
``ValidationException`` (a model that needs an inference profile, a model id not valid in the region) are
region/model mismatches that fail over, while a genuinely malformed request does not.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import quote

import aiohttp
import orjson
from awscrt import auth as crt_auth
from awscrt import http as crt_http
from botocore.auth import SIGNED_HEADERS_BLACKLIST
from botocore.eventstream import EventStreamBuffer, EventStreamMessage, ParserError
from yarl import URL

from byollm.errors import ByollmError, ErrorClass
from byollm.policy.types import CredentialSource
from byollm.providers.base import AwsAuth, CanonicalRequest, CompletedMessage, StreamEvent, UpstreamCall, Usage
from byollm.providers.bedrock_betas import bedrock_tools, loggable_betas, split_betas
from byollm.providers.classify import upstream_explanation
from byollm.providers.http import HttpPool

__all__ = ["BedrockProvider", "bedrock_body", "classify_bedrock_error", "default_endpoint", "sigv4_headers"]

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
_STREAM_READ_SIZE = 64 * 1024
log = logging.getLogger("byollm.providers.bedrock")


def default_endpoint(region: str, service: str = "bedrock-runtime") -> str:
    """The regional endpoint of Bedrock's runtime (or, with ``service="bedrock"``, its control plane)."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{service}.{region}.{suffix}"


def bedrock_body(call: UpstreamCall) -> bytes:
    """The InvokeModel body for this call: the canonical body, adjusted as Bedrock requires."""
    request = call.request
    body = {k: v for k, v in request.body.items() if k not in ("model", "stream")}
    body["anthropic_version"] = BEDROCK_ANTHROPIC_VERSION
    betas, _hints, unsupported = split_betas([*_body_betas(body), *request.anthropic_beta])
    if unsupported:
        log.warning("request %s: betas Bedrock does not offer were dropped: %s", request.request_id,
                    loggable_betas(unsupported))
    if betas:
        body["anthropic_beta"] = betas
    else:
        body.pop("anthropic_beta", None)
    if "tools" in body:
        body["tools"] = bedrock_tools(body["tools"])
    return orjson.dumps(body)


def _body_betas(body: Mapping[str, Any]) -> list[str]:
    in_body = body.get("anthropic_beta")
    return [b for b in in_body if isinstance(b, str)] if isinstance(in_body, list) else []


# --- signing ---------------------------------------------------------------------------------------------

_UNSIGNED_HEADERS = frozenset(SIGNED_HEADERS_BLACKLIST)  # what botocore leaves out of the signature


def _should_sign(name: str) -> bool:
    return name.lower() not in _UNSIGNED_HEADERS


def sigv4_headers(auth: AwsAuth, region: str, url: URL, headers: Mapping[str, str], body: bytes,
                  method: str = "POST") -> dict[str, str]:
    """``headers`` plus ``host`` and the SigV4 headers (``X-Amz-Date``, ``X-Amz-Security-Token``,
    ``Authorization``) for a POST of ``body`` to ``url`` (already percent-encoded), as botocore's
    ``SigV4Auth`` computes them: double URI encoding, normalised path, the payload's SHA-256 signed but not
    sent as a header. The payload hash is computed here (one C call) so the signer need not read a stream."""
    host = url.raw_host or ""
    if ":" in host:
        host = f"[{host}]"
    if url.explicit_port is not None and not url.is_default_port():
        host = f"{host}:{url.explicit_port}"
    provider = crt_auth.AwsCredentialsProvider.new_static(auth.access_key_id, auth.secret_access_key,
                                                          auth.session_token)
    config = crt_auth.AwsSigningConfig(
        algorithm=crt_auth.AwsSigningAlgorithm.V4,
        signature_type=crt_auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
        credentials_provider=provider,
        region=region,
        service="bedrock",
        date=datetime.now(UTC),
        should_sign_header=_should_sign,
        use_double_uri_encode=True,
        should_normalize_uri_path=True,
        signed_body_value=hashlib.sha256(body).hexdigest(),
        signed_body_header_type=crt_auth.AwsSignedBodyHeaderType.NONE,
    )
    path = url.raw_path_qs or "/"
    request = crt_http.HttpRequest(method, path, crt_http.HttpHeaders([*headers.items(), ("host", host)]))
    crt_auth.aws_sign_request(request, config).result()  # static credentials: completes synchronously
    return dict(request.headers)


# --- classification ------------------------------------------------------------------------------------

_MISMATCH_HINTS = (
    "on-demand throughput",
    "inference profile",
    "model identifier is invalid",
    "model id is invalid",
    "isn't supported in this region",
    "is not supported in this region",
    "not available in this region",
    "end of its life",
    "is not supported for",
)


def classify_bedrock_error(error_type: str, status: int, message: str, source: CredentialSource,
                           sent_betas: Sequence[str] = ()) -> ByollmError:
    """Map one Bedrock error to the taxonomy. ``message`` is consulted for hints, and a refusal of the request
    as invalid carries it (scrubbed and capped, ``upstream_explanation``) first in the detail: the caller
    must see what to fix. ``sent_betas`` (the listed betas byollm forwarded) are named when Bedrock refuses
    one as "invalid beta flag": AWS lists them for the API, but a given model may not offer every one, and
    Bedrock's message does not say which the caller should drop."""
    name = error_type.rsplit("#", 1)[-1].split(":", 1)[0]
    lowered = message.lower()
    delegated = source is CredentialSource.DELEGATED_SESSION
    detail = f"Bedrock answered {name or 'an error'} (HTTP {status})"
    expired = "security token included in the request is expired" in lowered
    if name in ("ExpiredTokenException", "ExpiredToken") or expired:
        if delegated:
            return ByollmError(ErrorClass.LOCAL_CREDENTIALS_EXPIRED, "AWS says your session credentials expired")
        return ByollmError(ErrorClass.ROLE_ASSUMPTION_FAILED, f"{detail}: the run's temporary credentials expired")
    if name in ("UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignatureException",
                "InvalidClientTokenId", "MissingAuthenticationTokenException"):
        if delegated:
            return ByollmError(ErrorClass.LOCAL_CREDENTIALS_EXPIRED,
                               f"AWS refused your session credentials ({name}); sign in again")
        return ByollmError(ErrorClass.ROLE_ASSUMPTION_FAILED, f"{detail}: the run's credentials were refused")
    if name == "AccessDeniedException" or (status == 403 and not name):
        return ByollmError(ErrorClass.INSUFFICIENT_PERMISSIONS, detail)
    if name in ("ThrottlingException", "ServiceQuotaExceededException", "TooManyRequestsException"):
        return ByollmError(ErrorClass.QUOTA_EXCEEDED, detail)
    if name in ("ServiceUnavailableException", "InternalServerException", "ModelNotReadyException",
                "ModelTimeoutException", "ModelErrorException", "ModelStreamErrorException",
                "InternalFailure", "ServiceUnavailable"):
        return ByollmError(ErrorClass.UPSTREAM_UNAVAILABLE, detail)
    if "serviceunavailable" in lowered.replace(" ", "").replace("_", "") or "service unavailable" in lowered:
        return ByollmError(ErrorClass.UPSTREAM_UNAVAILABLE, detail + " reporting an outage")
    if name == "ResourceNotFoundException":
        return ByollmError(ErrorClass.REGION_MODEL_MISMATCH, detail)
    if name == "ValidationException":
        if any(hint in lowered for hint in _MISMATCH_HINTS):
            return ByollmError(ErrorClass.REGION_MODEL_MISMATCH, detail + ": the model id or profile does not suit"
                               " this region or throughput")
        explanation = upstream_explanation(message)
        if explanation and sent_betas and "invalid beta flag" in lowered:
            return ByollmError(ErrorClass.INVALID_REQUEST,
                               f"{explanation}: this Bedrock model does not offer one of the beta features sent "
                               f"({', '.join(sent_betas)}); drop it from the anthropic-beta header or choose a "
                               f"model that offers it ({detail})", upstream_message=explanation)
        if explanation:
            return ByollmError(ErrorClass.INVALID_REQUEST, f"{explanation} ({detail})", upstream_message=explanation)
        return ByollmError(ErrorClass.INVALID_REQUEST, detail + ": the request was refused as invalid")
    if status == 429:
        return ByollmError(ErrorClass.QUOTA_EXCEEDED, detail)
    if status >= 500 or status in (408, 424):
        return ByollmError(ErrorClass.UPSTREAM_UNAVAILABLE, detail)
    if status == 404:
        return ByollmError(ErrorClass.REGION_MODEL_MISMATCH, detail)
    return ByollmError(ErrorClass.INVALID_REQUEST, detail)


def _error_type_of(headers: Mapping[str, str], payload: Mapping[str, Any]) -> str:
    return str(headers.get("x-amzn-ErrorType") or payload.get("__type") or payload.get("code") or "")


def _message_of(payload: Mapping[str, Any]) -> str:
    return str(payload.get("message") or payload.get("Message") or "")


class _HttpFailure(Exception):
    def __init__(self, status: int, error_type: str, message: str) -> None:
        self.status, self.error_type, self.message = status, error_type, message


@contextmanager
def _upstream_errors(call: UpstreamCall, phase: str) -> Iterator[None]:
    """The one place where anything raised while talking to Bedrock becomes a taxonomy error."""
    source = call.candidate.credential
    try:
        yield
    except ByollmError:
        raise
    except _HttpFailure as exc:
        sent = split_betas([*_body_betas(call.request.body), *call.request.anthropic_beta])[0]
        raise classify_bedrock_error(exc.error_type, exc.status, exc.message, source, sent) from None
    except TimeoutError as exc:
        raise ByollmError(ErrorClass.UPSTREAM_UNAVAILABLE, f"Bedrock did not answer in time ({phase})") from exc
    except aiohttp.ClientError as exc:
        raise ByollmError(ErrorClass.UPSTREAM_UNAVAILABLE,
                          f"connection to Bedrock failed ({type(exc).__name__}, {phase})") from exc
    except (ParserError, ValueError, KeyError, TypeError) as exc:  # ParserError: a damaged event-stream frame
        raise ByollmError(ErrorClass.UPSTREAM_UNAVAILABLE,
                          f"Bedrock sent a response byollm could not read ({phase})") from exc


class BedrockProvider:
    """Bedrock Runtime for Anthropic models. One instance serves every team; state lives per call."""

    def __init__(self, pool: HttpPool) -> None:
        self._pool = pool

    def _signed(self, call: UpstreamCall, operation: str, body: bytes, accept: str) -> tuple[URL, dict[str, str]]:
        auth = call.auth
        if not isinstance(auth, AwsAuth):
            raise ByollmError(ErrorClass.INTERNAL_ERROR, "a Bedrock route was given a non-AWS credential")
        region = call.candidate.region or "us-east-1"
        base = call.base_url.rstrip("/") if call.base_url else default_endpoint(region)
        model = quote(call.candidate.upstream_model_id, safe="")
        url = f"{base}/model/{model}/{operation}"
        headers = {"content-type": "application/json", "accept": accept}
        if call.request.request_id or call.request.team_uid:
            headers["x-amzn-bedrock-request-metadata"] = orjson.dumps(
                {"byollm_request_id": call.request.request_id, "byollm_team": call.request.team_uid}
            ).decode()
        headers.update(call.extra_headers)
        target = URL(url, encoded=True)
        return target, sigv4_headers(auth, region, target, headers, body)

    async def _post(self, call: UpstreamCall, operation: str, body: bytes, accept: str,
                    client_timeout: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
        url, headers = self._signed(call, operation, body, accept)
        began = time.perf_counter()
        try:
            # the endpoint may be a team admin's choice: the guarded session refuses internal destinations
            response = await self._pool.guarded_session.post(url, data=body, headers=headers, timeout=client_timeout)
            if response.status >= 300:
                raw = await response.read()
        finally:
            call.wire.seconds += time.perf_counter() - began
        if response.status >= 300:
            response.release()
            try:
                payload = orjson.loads(raw) if raw else {}
            except orjson.JSONDecodeError:
                payload = {}
            if not isinstance(payload, dict):
                payload = {}
            raise _HttpFailure(response.status, _error_type_of(response.headers, payload), _message_of(payload))
        return response

    async def complete(self, call: UpstreamCall) -> CompletedMessage:
        body = bedrock_body(call)
        with _upstream_errors(call, "invoke"):
            response = await self._post(call, "invoke", body, "application/json",
                                        aiohttp.ClientTimeout(total=call.timeout_s))
            began = time.perf_counter()
            raw = await response.read()
            call.wire.seconds += time.perf_counter() - began
            message = orjson.loads(raw)
            if not isinstance(message, dict):
                raise ValueError("not an object")
            return CompletedMessage(message=message, usage=Usage.from_anthropic(message.get("usage")), raw=raw)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[StreamEvent]:
        body = bedrock_body(call)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=call.timeout_s, sock_read=call.read_timeout_s)
        response: aiohttp.ClientResponse | None = None
        try:
            with _upstream_errors(call, "stream start"):
                response = await asyncio.wait_for(
                    self._post(call, "invoke-with-response-stream", body, "application/vnd.amazon.eventstream",
                               timeout),
                    call.timeout_s,
                )
            decoder = EventStreamBuffer()
            finished = False
            while True:
                with _upstream_errors(call, "stream"):
                    began = time.perf_counter()
                    chunk = await response.content.read(_STREAM_READ_SIZE)
                    call.wire.seconds += time.perf_counter() - began
                if not chunk:
                    if not finished:  # cut off mid-frame or between frames: not a complete answer
                        with _upstream_errors(call, "stream"):
                            raise ValueError("the event stream ended before message_stop")
                    return
                with _upstream_errors(call, "stream"):
                    decoder.add_data(chunk)
                frames = iter(decoder)
                while True:
                    # frame by frame: events before an exception frame in the same chunk still go out
                    with _upstream_errors(call, "stream"):
                        frame = next(frames, None)
                        if frame is None:
                            break
                        event = _event_from_frame(frame)
                    finished = finished or event.type == "message_stop"
                    yield event
        finally:
            if response is not None:
                response.release()

    def passes_through(self, request: CanonicalRequest) -> bool:
        """Always served from the canonical body (for the Anthropic API that is the caller's own body)."""
        return False

    async def count_tokens(self, call: UpstreamCall) -> int:
        """CountTokens takes a foundation-model id, not a profile: the executor sends the catalog's."""
        invoke_body = bedrock_body(call)
        payload = orjson.dumps({"input": {"invokeModel": {"body": base64.b64encode(invoke_body).decode()}}})
        with _upstream_errors(call, "count-tokens"):
            response = await self._post(call, "count-tokens", payload, "application/json",
                                        aiohttp.ClientTimeout(total=call.timeout_s))
            began = time.perf_counter()
            raw = await response.read()
            call.wire.seconds += time.perf_counter() - began
            data = orjson.loads(raw)
            return int(data["inputTokens"])


def _event_from_frame(frame: EventStreamMessage) -> StreamEvent:
    headers = frame.headers
    message_type = headers.get(":message-type")
    if message_type == "event":
        if headers.get(":event-type") != "chunk":
            return StreamEvent(type="ping", data={"type": "ping"})
        envelope = orjson.loads(frame.payload)
        raw = base64.b64decode(envelope["bytes"])
        data = orjson.loads(raw)
        return StreamEvent(type=str(data.get("type", "")), data=data, raw=raw)
    if message_type in ("exception", "error"):
        kind = str(headers.get(":exception-type") or headers.get(":error-code") or "")
        try:
            payload = orjson.loads(frame.payload) if frame.payload else {}
        except orjson.JSONDecodeError:
            payload = {}
        _raise_stream_exception(kind, payload if isinstance(payload, dict) else {})
    raise ValueError("unknown event-stream message type")


def _raise_stream_exception(kind: str, payload: Mapping[str, Any]) -> NoReturn:
    # event-stream exception types are camelCase (throttlingException); the taxonomy keys on the class name
    name = kind[:1].upper() + kind[1:]
    status = 429 if "Throttling" in name else 500
    raise _HttpFailure(status, name, _message_of(payload))
