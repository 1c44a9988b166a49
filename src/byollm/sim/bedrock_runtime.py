"""Bedrock Runtime (rest-json): InvokeModel, InvokeModelWithResponseStream, Converse, ConverseStream,
CountTokens, as a raw ASGI app mounted at ``/model``.

Each call, in this order (the order real Bedrock's answers imply):

1. SigV4 (``byollm.sim.sigv4``) against the still percent-encoded path; the region is the credential
   scope's. Errors: UnrecognizedClientException, InvalidSignatureException, ExpiredTokenException (403).
2. Fault injection (``state.faults.take("bedrock", …)``).
3. Model resolution: foundation-model id or ARN, system inference profile (``us.``/``eu.``/``apac.``/
   ``global.``) id or ARN, application inference profile ARN. Unknown, not offered in the region, or
   not invocable on demand → ValidationException with Bedrock's wording.
4. IAM: the caller's identity policies (and session policy, ``byollm.sim.authorize``) must allow the
   action on every resource the model id implies → AccessDeniedException. For a geographic profile
   (``us.``/``eu.``/``apac.``): the profile ARN, and the foundation model in the source Region and in every
   destination Region. For a ``global.`` profile: the profile ARN, the foundation model in the source
   Region, and the region-less ``arn:aws:bedrock:::foundation-model/MODEL``, for which
   ``aws:RequestedRegion`` is ``unspecified`` (so a Region allow-list must admit ``unspecified``).
5. Account model access (never granted → AccessDeniedException even when IAM allows).
6. Body validation (``anthropic_version``, no ``model``/``stream`` keys …) → ValidationException.
7. Quotas (requests and tokens per minute per account and model) → ThrottlingException.
8. The reply from ``byollm.sim.engine``; latency shaping for streams; an invocation-log record.

Steps 3-5 are cached per (principal, session policy, source IP, transport, model id, region, action) and
world version, unless a policy tests the time keys, so the hot path is SigV4 + a dict lookup + the engine.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson
from starlette.types import Receive, Scope, Send

from byollm.sim import engine
from byollm.sim.authorize import TIME_KEYS, authorise, policy_sets, request_context
from byollm.sim.eventstream import chunk_frame, event_frame, exception_frame
from byollm.sim.faults import Fault, apply_transport_fault, break_off_stream
from byollm.sim.iam_policy import ALLOWED
from byollm.sim.sigv4 import BEDROCK_MAX_SKEW_S, SigV4Error, SigV4Verifier, Verified
from byollm.sim.state import SimState
from byollm.sim.world import Account, FoundationModel, World

__all__ = ["BedrockError", "BedrockRuntime", "Resolution", "json_error", "resolve_model"]

ANTHROPIC_VERSION = "bedrock-2023-05-31"
# What Bedrock accepts in ``anthropic_version``: the value AWS documents, and the value the official
# AnthropicBedrock client (anthropic SDK 2.x, ``anthropic._constants.ANTHROPIC_API_VERSION``) sends on its
# own; an unknown value is refused with Bedrock's enum wording.
ACCEPTED_ANTHROPIC_VERSIONS = frozenset({ANTHROPIC_VERSION, "2026-10-21"})
_REJECTED_KEYS = ("model", "stream")
# The ``anthropic_beta`` values Bedrock's InvokeModel / InvokeModelWithResponseStream accept for Claude: the
# list in the Bedrock User Guide, "Anthropic Claude Messages API > Request and Response"
# (https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages-request-response.html,
# parameter ``anthropic_beta``), the same list BerriAI/litellm PR 19877 checked against it. Anything else is
# refused with 400 ValidationException "invalid beta flag", the wording users of Claude Code, Cline, Continue
# and LiteLLM quote (anthropics/claude-code issues 49370, 49648, 56595, 82549). The page does not say which
# model accepts which value (real Bedrock refuses some listed values on some models, e.g. Opus 4.7 in issue
# 49370); the simulator accepts every listed value on every Claude model, so it is strict only by the list.
BEDROCK_ANTHROPIC_BETAS = frozenset({
    "computer-use-2024-10-22",
    "computer-use-2025-01-24",
    "token-efficient-tools-2025-02-19",
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "dev-full-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "effort-2025-11-24",
    "tool-search-tool-2025-10-19",
    "tool-examples-2025-10-29",
})
INVALID_BETA = "invalid beta flag"
# Tool fields Bedrock is reported to refuse on a custom tool, with its wording "tools.N.custom.FIELD: Extra
# inputs are not permitted" (anthropics/claude-code issue 82549, ``defer_loading``). Only this field is
# confirmed; other unknown tool fields are not refused here (docs/aws-conformance.md says so).
_REFUSED_CUSTOM_TOOL_FIELDS = ("defer_loading",)

_STATUS = {
    "AccessDeniedException": 403,
    "ThrottlingException": 429,
    "ValidationException": 400,
    "ResourceNotFoundException": 404,
    "ModelNotReadyException": 429,
    "ServiceQuotaExceededException": 400,
    "ModelTimeoutException": 408,
    "ServiceUnavailableException": 503,
    "InternalServerException": 500,
    "ModelErrorException": 424,
    "ModelStreamErrorException": 424,
    "UnknownOperationException": 404,
}
INVALID_MODEL = "The provided model identifier is invalid."
NO_ACCESS = "You don't have access to the model with the specified model ID."
_THROTTLED = "Too many requests, please wait before trying again."
_TOO_MANY_TOKENS = "Too many tokens, please wait before trying again."


class BedrockError(Exception):
    """An error rendered as Bedrock's rest-json error (``x-amzn-ErrorType`` + ``{"message": …}``)."""

    def __init__(self, name: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.message = message
        self.status = status if status is not None else _STATUS.get(name, 400)

    @classmethod
    def from_sigv4(cls, err: SigV4Error) -> BedrockError:
        return cls(err.code("rest-json"), err.message, err.status)


def json_error(err: BedrockError, request_id: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = orjson.dumps({"message": err.message})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-amzn-requestid", request_id.encode()),
        (b"x-amzn-errortype", f"{err.name}:http://internal.amazon.com/coral/com.amazon.bedrock/".encode()),
    ]
    return err.status, headers, body


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a model identifier means in a region: the model, the ARN invoked, the ARNs IAM must allow."""

    model: FoundationModel
    invoked_arn: str
    resources: tuple[str, ...]
    regions: tuple[str, ...]


def _profile_resolution(world: World, account_id: str, region: str, profile_id: str) -> Resolution | None:
    found = world.system_profile(profile_id)
    if found is None:
        return None
    geo, model = found
    regions = world.profile_regions(geo, model)
    if region not in regions:
        return None
    arn = f"arn:aws:bedrock:{region}:{account_id}:inference-profile/{profile_id}"
    if geo == "global":
        resources = [arn, model.arn(region), f"arn:aws:bedrock:::foundation-model/{model.model_id}"]
    else:
        resources = [arn, model.arn(region), *(model.arn(r) for r in regions if r != region)]
    return Resolution(model, arn, tuple(resources), regions)


def resolve_model(world: World, account: Account, region: str, model_id: str, *, invoking: bool = True) -> Resolution:
    """Interpret ``model_id`` for a caller in ``account`` calling ``region``; raises BedrockError.

    ``invoking`` is False for CountTokens, which accepts a foundation-model id even for models that can only
    be invoked through an inference profile (it runs no inference)."""
    acct = account.account_id
    if model_id.startswith("arn:"):
        parts = model_id.split(":", 5)
        if len(parts) != 6 or parts[2] != "bedrock":
            raise BedrockError("ValidationException", INVALID_MODEL)
        _, _, _, arn_region, arn_account, resource = parts
        kind, _, ident = resource.partition("/")
        if kind == "foundation-model" and arn_region == region and not arn_account:
            return _foundation_resolution(world, region, ident, invoking=invoking)
        if kind == "inference-profile" and arn_region == region and arn_account == acct:
            res = _profile_resolution(world, acct, region, ident)
            if res is None:
                raise BedrockError("ValidationException", INVALID_MODEL)
            return res
        if kind == "application-inference-profile" and arn_region == region:
            owner = world.accounts.get(arn_account)
            profile = owner.application_profiles.get(ident) if owner else None
            if profile is None or profile.region != region:
                raise BedrockError(
                    "ResourceNotFoundException", f"The specified inference profile {model_id} was not found."
                )
            if arn_account != acct:
                raise BedrockError("AccessDeniedException", NO_ACCESS)
            inner = resolve_model(world, account, region, profile.source_arn)
            return Resolution(inner.model, model_id, (model_id, *inner.resources), inner.regions)
        raise BedrockError("ValidationException", INVALID_MODEL)
    if model_id.split(".", 1)[0] in ("global", "us", "eu", "apac"):
        res = _profile_resolution(world, acct, region, model_id)
        if res is None:
            raise BedrockError("ValidationException", INVALID_MODEL)
        return res
    return _foundation_resolution(world, region, model_id, invoking=invoking)


def _foundation_resolution(world: World, region: str, model_id: str, *, invoking: bool = True) -> Resolution:
    model = world.models.get(model_id)
    if model is None or region not in model.regions:
        raise BedrockError("ValidationException", INVALID_MODEL)
    if invoking and not model.on_demand:
        raise BedrockError(
            "ValidationException",
            f"Invocation of model ID {model_id} with on-demand throughput isn\u2019t supported. Retry your "
            "request with the ID or ARN of an inference profile that contains this model.",
        )
    arn = model.arn(region)
    return Resolution(model, arn, (arn,), (region,))


# ------------------------------------------------------------------------------------ Converse shapes


def _from_converse_block(block: Mapping[str, Any]) -> dict[str, Any] | None:
    if "text" in block:
        return {"type": "text", "text": block["text"]}
    if "toolUse" in block:
        tu = block["toolUse"]
        return {
            "type": "tool_use",
            "id": tu.get("toolUseId"),
            "name": tu.get("name"),
            "input": tu.get("input", {}),
        }
    if "toolResult" in block:
        tr = block["toolResult"]
        content = []
        for part in tr.get("content", []):
            if "text" in part:
                content.append({"type": "text", "text": part["text"]})
            elif "json" in part:
                content.append({"type": "text", "text": orjson.dumps(part["json"]).decode()})
        out: dict[str, Any] = {"type": "tool_result", "tool_use_id": tr.get("toolUseId"), "content": content}
        if tr.get("status") == "error":
            out["is_error"] = True
        return out
    if "image" in block:
        img = block["image"]
        data = img.get("source", {}).get("bytes", "")
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": f"image/{img.get('format', 'png')}", "data": data},
        }
    return None


def converse_to_anthropic(req: Mapping[str, Any]) -> dict[str, Any]:
    """Translate a Converse request body to an Anthropic Messages body (what Bedrock does for Claude)."""
    messages = []
    for msg in req.get("messages") or []:
        blocks = [b for b in (_from_converse_block(c) for c in msg.get("content", [])) if b is not None]
        messages.append({"role": msg.get("role"), "content": blocks})
    cfg = req.get("inferenceConfig") or {}
    body: dict[str, Any] = {
        "anthropic_version": ANTHROPIC_VERSION,
        "messages": messages,
        "max_tokens": cfg.get("maxTokens", 4096),
    }
    system = [s["text"] for s in req.get("system") or [] if "text" in s]
    if system:
        body["system"] = "\n".join(system)
    for src, dst in (("temperature", "temperature"), ("topP", "top_p"), ("stopSequences", "stop_sequences")):
        if src in cfg:
            body[dst] = cfg[src]
    tool_cfg = req.get("toolConfig")
    if tool_cfg:
        body["tools"] = [
            {
                "name": t["toolSpec"]["name"],
                "description": t["toolSpec"].get("description", ""),
                "input_schema": t["toolSpec"].get("inputSchema", {}).get("json", {}),
            }
            for t in tool_cfg.get("tools", [])
            if "toolSpec" in t
        ]
        choice = tool_cfg.get("toolChoice") or {}
        if "any" in choice:
            body["tool_choice"] = {"type": "any"}
        elif "tool" in choice:
            body["tool_choice"] = {"type": "tool", "name": choice["tool"].get("name")}
        elif "auto" in choice:
            body["tool_choice"] = {"type": "auto"}
    extra = req.get("additionalModelRequestFields")
    if isinstance(extra, dict):
        body.update(extra)
    return body


def _to_converse_block(block: Mapping[str, Any]) -> dict[str, Any]:
    if block.get("type") == "tool_use":
        return {"toolUse": {"toolUseId": block["id"], "name": block["name"], "input": block.get("input", {})}}
    return {"text": block.get("text", "")}


def _usage(reply: engine.ModelReply) -> dict[str, int]:
    return {
        "inputTokens": reply.input_tokens,
        "outputTokens": reply.output_tokens,
        "totalTokens": reply.input_tokens + reply.output_tokens,
    }


def converse_response(reply: engine.ModelReply, latency_ms: int) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [_to_converse_block(b) for b in reply.content]}},
        "stopReason": reply.stop_reason,
        "usage": _usage(reply),
        "metrics": {"latencyMs": latency_ms},
    }


def converse_stream_events(reply: engine.ModelReply, events: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Map Anthropic streaming events to ConverseStream (event type, payload) pairs."""
    out: list[tuple[str, dict[str, Any]]] = []
    for ev in events:
        kind = ev["type"]
        if kind == "message_start":
            out.append(("messageStart", {"role": "assistant"}))
        elif kind == "content_block_start" and ev["content_block"].get("type") == "tool_use":
            cb = ev["content_block"]
            start = {"toolUse": {"toolUseId": cb["id"], "name": cb["name"]}}
            out.append(("contentBlockStart", {"start": start, "contentBlockIndex": ev["index"]}))
        elif kind == "content_block_delta":
            delta = ev["delta"]
            if delta.get("type") == "input_json_delta":
                payload: dict[str, Any] = {"toolUse": {"input": delta.get("partial_json", "")}}
            else:
                payload = {"text": delta.get("text", "")}
            out.append(("contentBlockDelta", {"delta": payload, "contentBlockIndex": ev["index"]}))
        elif kind == "content_block_stop":
            out.append(("contentBlockStop", {"contentBlockIndex": ev["index"]}))
        elif kind == "message_delta":
            out.append(("messageStop", {"stopReason": reply.stop_reason}))
        elif kind == "message_stop":
            out.append(("metadata", {"usage": _usage(reply), "metrics": {"latencyMs": 1}}))
    return out


# ------------------------------------------------------------------------------------ the ASGI app

_OPERATIONS = {
    "invoke": ("InvokeModel", "bedrock:InvokeModel", False),
    "invoke-with-response-stream": (
        "InvokeModelWithResponseStream",
        "bedrock:InvokeModelWithResponseStream",
        True,
    ),
    "converse": ("Converse", "bedrock:InvokeModel", False),
    "converse-stream": ("ConverseStream", "bedrock:InvokeModelWithResponseStream", True),
    "count-tokens": ("CountTokens", "bedrock:CountTokens", False),
}


@dataclass(slots=True)
class _Call:
    """Per-request context shared by the steps of one invocation."""

    operation: str
    action: str
    streaming: bool
    model_id: str
    verified: Verified
    account: Account
    resolution: Resolution
    headers: dict[str, str]
    request_id: str
    started: float


class BedrockRuntime:
    """Raw ASGI handler for ``/model/{modelId}/{operation}``."""

    def __init__(self, state: SimState, verifier: SigV4Verifier) -> None:
        self._state = state
        self._verifier = verifier
        self._authz: dict[tuple[str, str, str, str], Resolution | BedrockError] = {}
        self._authz_version = -1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = str(uuid.uuid4())
        body = scope.get("sim.body")
        if body is None:
            body = await _read_body(receive)
        try:
            call = self._prepare(scope, body, request_id)
            fault = self._state.faults.take(
                "bedrock",
                model=call.resolution.model.model_id,
                principal=call.verified.principal.arn,
                streaming=call.streaming,
            )
            if fault is not None:
                if await apply_transport_fault(fault, scope, receive, send):
                    return
                if fault.error is not None and (fault.after_events is None or not call.streaming):
                    raise BedrockError(fault.error, fault.message or "Injected fault", fault.status)
            await self._dispatch(call, body, fault, send)
        except BedrockError as err:
            status, headers, payload = json_error(err, request_id)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})

    # ------------------------------------------------------------------ preparation

    def _prepare(self, scope: Scope, body: bytes, request_id: str) -> _Call:
        raw_path: str = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        rest = raw_path.split("?", 1)[0][len("/model/") :]
        encoded_id, _, op = rest.rpartition("/")
        spec = _OPERATIONS.get(op)
        if spec is None or not encoded_id or scope["method"] != "POST":
            raise BedrockError("UnknownOperationException", "Unknown operation", 404)
        operation, action, streaming = spec
        try:
            verified = self._verifier.verify(
                method=scope["method"],
                raw_path=raw_path,
                query=scope.get("query_string", b"").decode("latin-1"),
                headers=scope["headers"],
                body=body,
                max_skew_s=BEDROCK_MAX_SKEW_S,
                scope=scope,
            )
        except SigV4Error as err:
            raise BedrockError.from_sigv4(err) from None
        if verified.service != "bedrock":
            raise BedrockError(
                "InvalidSignatureException",
                "Credential should be scoped to correct service: 'bedrock'. ",
                403,
            )
        account = self._state.account(verified.principal.account_id)
        if account is None or verified.region not in account.regions:
            raise BedrockError(
                "UnrecognizedClientException", "The security token included in the request is invalid.", 403
            )
        model_id = unquote(encoded_id)
        resolution = self._authorise(verified, account, model_id, action)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        return _Call(
            operation,
            action,
            streaming,
            model_id,
            verified,
            account,
            resolution,
            headers,
            request_id,
            time.monotonic(),
        )

    def _authorise(self, verified: Verified, account: Account, model_id: str, action: str) -> Resolution:
        if self._authz_version != self._state.version:
            self._authz.clear()
            self._authz_version = self._state.version
        ident = verified.identity
        key = (
            f"{verified.principal.arn}#{id(ident.session_policy) if ident.session_policy else 0}"
            f"#{verified.source_ip}#{verified.secure_transport}",
            model_id,
            verified.region,
            action,
        )
        cached = self._authz.get(key)
        if cached is None:
            timed = any(TIME_KEYS & s.condition_keys for s in policy_sets(self._state, verified))
            try:
                cached = self._authorise_uncached(verified, account, model_id, action)
            except BedrockError as err:
                cached = err
            if not timed:
                if len(self._authz) > 50_000:
                    self._authz.clear()
                self._authz[key] = cached
        if isinstance(cached, BedrockError):
            raise cached
        return cached

    def _authorise_uncached(self, verified: Verified, account: Account, model_id: str, action: str) -> Resolution:
        counting = action == "bedrock:CountTokens"
        resolution = resolve_model(self._state.world, account, verified.region, model_id, invoking=not counting)
        if counting and resolution.invoked_arn != resolution.model.arn(verified.region):
            raise BedrockError("ValidationException", INVALID_MODEL)
        sets = policy_sets(self._state, verified)
        now = self._state.clock()
        for resource in resolution.resources:
            context = _request_context(verified, resolution, resource, now)
            decision, why = authorise(sets, action, resource, context)
            if decision != ALLOWED:
                raise BedrockError(
                    "AccessDeniedException",
                    f"User: {verified.principal.arn} is not authorized to perform: {action} on resource: "
                    f"{resource} {why}",
                )
        if not account.has_model_access(resolution.model.model_id):
            raise BedrockError("AccessDeniedException", NO_ACCESS)
        return resolution

    # ------------------------------------------------------------------ operations

    async def _dispatch(self, call: _Call, body: bytes, fault: Fault | None, send: Send) -> None:
        if call.operation == "CountTokens":
            await self._count_tokens(call, body, send)
            return
        if call.operation in ("Converse", "ConverseStream"):
            request = _json_body(body)
            anthropic_body = converse_to_anthropic(request)
            metadata = request.get("requestMetadata") if isinstance(request.get("requestMetadata"), dict) else None
        else:
            anthropic_body = _invoke_body(body)
            metadata = _request_metadata(call.headers)
        reply = self._reply(call, anthropic_body)
        message_id = "msg_bdrk_" + uuid.uuid4().hex[:24]
        model_id = call.resolution.model.model_id
        if call.operation == "InvokeModel":
            payload = orjson.dumps(engine.anthropic_message(reply, model=model_id, message_id=message_id))
            latency = int((time.monotonic() - call.started) * 1000)
            await _send_json(
                send,
                payload,
                call.request_id,
                [
                    (b"x-amzn-bedrock-input-token-count", str(reply.input_tokens).encode()),
                    (b"x-amzn-bedrock-output-token-count", str(reply.output_tokens).encode()),
                    (b"x-amzn-bedrock-invocation-latency", str(latency).encode()),
                ],
            )
        elif call.operation == "Converse":
            latency = int((time.monotonic() - call.started) * 1000)
            await _send_json(send, orjson.dumps(converse_response(reply, latency)), call.request_id, [])
        else:
            events = engine.anthropic_stream_events(reply, model=model_id, message_id=message_id)
            await self._stream(call, reply, events, fault, send)
        self._log(call, reply, metadata)

    def _reply(self, call: _Call, body: dict[str, Any]) -> engine.ModelReply:
        model = call.resolution.model.model_id
        try:
            engine.validate_messages_body(body)
            input_tokens = engine.count_input_tokens(body)
        except engine.InvalidRequestError as exc:
            raise BedrockError("ValidationException", f"Malformed input request: {exc}") from None
        quota = call.account.quota_for(model)
        if quota is not None:
            exhausted = self._state.quotas.check(
                call.account.account_id,
                model,
                rpm=quota.requests_per_minute,
                tpm=quota.tokens_per_minute,
                tokens=input_tokens,
            )
            if exhausted is not None:
                raise BedrockError("ThrottlingException", _THROTTLED if exhausted == "requests" else _TOO_MANY_TOKENS)
        try:
            reply = engine.reply_to(body, service="bedrock", model=model)
        except engine.PromptTooLongError:
            raise BedrockError("ValidationException", "Input is too long for requested model.") from None
        except engine.InvalidRequestError as exc:
            raise BedrockError("ValidationException", f"Malformed input request: {exc}") from None
        self._state.quotas.add(call.account.account_id, model, reply.input_tokens + reply.output_tokens)
        return reply

    async def _count_tokens(self, call: _Call, body: bytes, send: Send) -> None:
        request = _json_body(body)
        inp = request.get("input") or {}
        if "invokeModel" in inp:
            try:
                raw = base64.b64decode(inp["invokeModel"].get("body", ""))
            except ValueError:
                raise BedrockError(
                    "ValidationException",
                    "Malformed input request, please reformat your input and try again.",
                ) from None
            anthropic_body = _invoke_body(raw)
        elif "converse" in inp:
            anthropic_body = converse_to_anthropic(inp["converse"])
        else:
            raise BedrockError("ValidationException", "The input must contain either invokeModel or converse.")
        tokens = engine.count_input_tokens(anthropic_body)
        await _send_json(send, orjson.dumps({"inputTokens": tokens}), call.request_id, [])

    async def _stream(
        self,
        call: _Call,
        reply: engine.ModelReply,
        events: list[dict[str, Any]],
        fault: Fault | None,
        send: Send,
    ) -> None:
        ttft, per_token = self._state.latency("bedrock", call.resolution.model.model_id)
        converse = call.operation == "ConverseStream"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/vnd.amazon.eventstream"),
                    (b"x-amzn-bedrock-content-type", b"application/json"),
                    (b"x-amzn-requestid", call.request_id.encode()),
                ],
            }
        )
        if events and events[-1]["type"] == "message_stop":
            latency = int((time.monotonic() - call.started) * 1000)
            events[-1] = {
                **events[-1],
                "amazon-bedrock-invocationMetrics": {
                    "inputTokenCount": reply.input_tokens,
                    "outputTokenCount": reply.output_tokens,
                    "invocationLatency": latency + int(1000 * (ttft + per_token * reply.output_tokens)),
                    "firstByteLatency": latency + int(1000 * ttft),
                },
            }
        frames: list[tuple[bytes, int]] = []
        if converse:
            for event_type, payload in converse_stream_events(reply, events):
                tokens = (
                    engine.count_text_tokens(payload.get("delta", {}).get("text", ""))
                    if event_type == "contentBlockDelta"
                    else 0
                )
                frames.append((event_frame(event_type, payload), tokens))
        else:
            for ev in events:
                tokens = 0
                if ev["type"] == "content_block_delta":
                    delta = ev["delta"]
                    tokens = max(1, engine.count_text_tokens(delta.get("text") or delta.get("partial_json") or ""))
                frames.append((chunk_frame(ev), tokens))
        if ttft:
            await asyncio.sleep(ttft)
        for index, (frame, tokens) in enumerate(frames):
            if fault is not None and fault.after_events is not None and index >= fault.after_events:
                if await break_off_stream(fault):  # it hung until the client left
                    return
                name = fault.error or "InternalServerException"
                exc_type = name[0].lower() + name[1:]
                await send(
                    {
                        "type": "http.response.body",
                        "body": exception_frame(exc_type, fault.message or _THROTTLED),
                        "more_body": False,
                    }
                )
                return
            if per_token and tokens:
                await asyncio.sleep(per_token * tokens)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _log(self, call: _Call, reply: engine.ModelReply, metadata: dict[str, Any] | None) -> None:
        self._state.invocations.record(
            {
                "schemaType": "ModelInvocationLog",
                "schemaVersion": "1.0",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._state.clock())),
                "accountId": call.account.account_id,
                "region": call.verified.region,
                "requestId": call.request_id,
                "operation": call.operation,
                "modelId": call.resolution.invoked_arn,
                "foundationModelId": call.resolution.model.model_id,
                "identity": {"arn": call.verified.principal.arn},
                "requestMetadata": metadata or {},
                "input": {"inputTokenCount": reply.input_tokens},
                "output": {"outputTokenCount": reply.output_tokens},
                "loggingConfigured": call.account.invocation_logging,
            }
        )


def _request_context(
    verified: Verified, resolution: Resolution, resource: str, now: float
) -> dict[str, list[str]]:
    """Condition keys for one resource check: the global keys (``byollm.sim.authorize``) with
    ``aws:RequestedRegion`` the Region of the resource being authorised (each destination Region of a
    profile; ``unspecified`` for the region-less ARN of global cross-Region inference), and
    ``bedrock:InferenceProfileArn`` naming the profile invoked."""
    region = resource.split(":", 4)[3] or "unspecified"
    context = request_context(verified, now, requested_region=region)
    if "inference-profile/" in resolution.invoked_arn:
        context["bedrock:inferenceprofilearn"] = [resolution.invoked_arn]
    return context


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_json(send: Send, payload: bytes, request_id: str, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"x-amzn-requestid", request_id.encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        raise BedrockError(
            "ValidationException", "Malformed input request, please reformat your input and try again."
        ) from None
    if not isinstance(data, dict):
        raise BedrockError("ValidationException", "Malformed input request, please reformat your input and try again.")
    return data


def _malformed(detail: str) -> BedrockError:
    return BedrockError(
        "ValidationException", f"Malformed input request: {detail}, please reformat your input and try again."
    )


def _invoke_body(body: bytes) -> dict[str, Any]:
    """Validate an InvokeModel body for an Anthropic model the way Bedrock does."""
    data = _json_body(body)
    if "anthropic_version" not in data:
        raise _malformed("#: required key [anthropic_version] not found")
    if data["anthropic_version"] not in ACCEPTED_ANTHROPIC_VERSIONS:
        raise _malformed(f"#/anthropic_version: {data['anthropic_version']} is not a valid enum value")
    for key in _REJECTED_KEYS:
        if key in data:
            raise _malformed(f"#: extraneous key [{key}] is not permitted")
    if "max_tokens" not in data:
        raise _malformed("#: required key [max_tokens] not found")
    if "anthropic_beta" in data and not isinstance(data["anthropic_beta"], list):
        raise _malformed("#/anthropic_beta: expected type: JSONArray, found: String")
    for beta in data.get("anthropic_beta") or ():
        if not isinstance(beta, str) or beta not in BEDROCK_ANTHROPIC_BETAS:
            raise BedrockError("ValidationException", INVALID_BETA)
    _check_tools(data.get("tools"))
    return data


def _check_tools(tools: Any) -> None:
    """Refuse the tool fields Bedrock is known to refuse on a custom tool (a tool with no ``type``, or type
    ``custom``), naming the tool's index as Bedrock does."""
    if not isinstance(tools, list):
        return
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "custom") != "custom":
            continue
        for field in _REFUSED_CUSTOM_TOOL_FIELDS:
            if field in tool:
                raise BedrockError(
                    "ValidationException", f"tools.{index}.custom.{field}: Extra inputs are not permitted"
                )


def _request_metadata(headers: Mapping[str, str]) -> dict[str, Any] | None:
    raw = headers.get("x-amzn-bedrock-request-metadata")
    if raw is None:
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BedrockError("ValidationException", "The request metadata is not valid JSON.") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise BedrockError("ValidationException", "The request metadata must be a JSON object of strings.")
    return data
