"""The simulator's ASGI app: every simulated service on one port, routed by path and by query ``Action``.

Routing:
- ``POST|GET /`` with ``Action=…`` (query protocol): STS (Version 2011-06-15) or IAM (2010-05-08).
- ``/model/{modelId}/…``: Bedrock Runtime (a raw ASGI handler that parses the still-encoded path).
- ``/foundation-models``, ``/inference-profiles/…``, ``/logging/modelinvocations``: Bedrock control plane.
- ``/anthropic/…``, ``/openai/…``, ``/google/…``: the direct provider APIs; sign-in routes at the root.
- ``/_sim/…``: the admin API (see ``byollm.sim.admin``).

Every request passes through ``JournalMiddleware`` first, which records method, path, headers, body and the
service name in ``state.journal`` (read at ``GET /_sim/requests``) before the request is handled.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from byollm.sim.admin import admin_routes
from byollm.sim.bedrock_control import bedrock_control_routes
from byollm.sim.bedrock_runtime import BedrockRuntime
from byollm.sim.direct_anthropic import anthropic_routes
from byollm.sim.direct_google import google_routes
from byollm.sim.direct_openai import openai_routes
from byollm.sim.iam import IAM_NAMESPACE, IamService
from byollm.sim.signin import signin_routes
from byollm.sim.sigv4 import SigV4Error, SigV4Verifier, Verified
from byollm.sim.state import SimState
from byollm.sim.sts import STS_NAMESPACE, QueryError, StsService, xml_error

__all__ = ["JournalMiddleware", "build_app", "service_for"]

_PREFIX_SERVICES = (
    ("/model/", "bedrock-runtime"),
    ("/_sim", "sim-admin"),
    ("/anthropic", "anthropic"),
    ("/openai", "openai"),
    ("/google", "google"),
    ("/foundation-models", "bedrock"),
    ("/inference-profiles", "bedrock"),
    ("/logging/", "bedrock"),
)


def service_for(path: str, body: bytes) -> str:
    """Which simulated service a request is for (journal label)."""
    for prefix, service in _PREFIX_SERVICES:
        if path.startswith(prefix):
            return service
    if path == "/":
        return "iam" if b"Version=2010-05-08" in body else "sts"
    return "signin"


class JournalMiddleware:
    """Buffers each HTTP request body, records the request in the journal, then replays it downstream."""

    def __init__(self, app: ASGIApp, state: SimState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        path: str = scope["path"]
        self.state.journal.record(
            method=scope["method"],
            path=scope.get("raw_path", path.encode()).decode("latin-1"),
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=scope["headers"],
            body=body,
            service=service_for(path, body),
        )
        scope["sim.body"] = body
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class QueryApi:
    """``/`` for the query-protocol services: STS and IAM, told apart by Action and Version."""

    def __init__(self, state: SimState, verifier: SigV4Verifier) -> None:
        self._verifier = verifier
        self._sts = StsService(state)
        self._iam = IamService(state)

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        raw = body.decode("utf-8", "replace") if request.method == "POST" else request.url.query
        params = dict(parse_qsl(raw, keep_blank_values=True))
        action = params.get("Action", "")
        version = params.get("Version", "")
        is_iam = version == "2010-05-08" or (action in IamService.ACTIONS and version != "2011-06-15")
        namespace = IAM_NAMESPACE if is_iam else STS_NAMESPACE
        request_id = str(uuid.uuid4())
        try:
            if is_iam and action in IamService.ACTIONS:
                return self._iam.call(action, params, self._verify(request, body, "iam"), request_id)
            if not is_iam and action in StsService.ACTIONS:
                signer = None if action in StsService.UNSIGNED else self._verify(request, body, "sts")
                return await self._sts.call(action, params, signer, request_id)
            raise QueryError("InvalidAction", f"Could not find operation {action} for version {version}")
        except QueryError as err:
            return xml_error(namespace, err, request_id)

    def _verify(self, request: Request, body: bytes, service: str) -> Verified:
        scope = request.scope
        try:
            verified = self._verifier.verify(
                method=request.method,
                raw_path=scope.get("raw_path", b"/").decode("latin-1"),
                query=scope.get("query_string", b"").decode("latin-1"),
                headers=scope["headers"],
                body=body,
                scope=scope,
            )
        except SigV4Error as err:
            raise QueryError.from_sigv4(err) from None
        if verified.service != service:
            raise QueryError(
                "SignatureDoesNotMatch", f"Credential should be scoped to correct service: '{service}'.", 403
            )
        return verified


def build_app(state: SimState) -> Starlette:
    """The whole simulator as one Starlette app bound to ``state``."""
    verifier = SigV4Verifier(state)
    query = QueryApi(state, verifier)
    routes: list[BaseRoute] = [
        Route("/", query.endpoint, methods=["GET", "POST"]),
        Mount("/model", app=BedrockRuntime(state, verifier)),
        *bedrock_control_routes(state, verifier),
        Mount("/_sim", routes=admin_routes(state)),
        Mount("/anthropic", routes=anthropic_routes(state)),
        Mount("/openai", routes=openai_routes(state)),
        Mount("/google", routes=google_routes(state)),
        *signin_routes(state),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(JournalMiddleware, state=state)])
    app.state.sim = state
    return app
