"""A synchronous client for the byollm gateway: the member's view of the admin API and the inference API.

Why one small client: ``chat``, ``ask``, ``doctor`` and the proxy's route hints all need the same few calls
(who am I, the team's policy, settings and Bedrock region, the model list, a streamed answer), and errors
must come back as taxonomy classes with their remediation, whichever command made the call.

The token goes as ``Authorization: Bearer``; nothing here logs a header.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from byollm.errors import ErrorClass

__all__ = ["GatewayClient", "GatewayError", "RouteFailure", "StreamedAnswer", "error_from_response", "route_failures"]


class GatewayError(Exception):
    """An error answer from the gateway (or no answer), as its taxonomy code and remediation."""

    def __init__(self, status: int, code: str, message: str, remediation: str = "",
                 attempts: tuple[RouteFailure, ...] = ()) -> None:
        super().__init__(f"{message} ({code})")
        self.status = status
        self.code = code
        self.message = message
        self.remediation = remediation
        self.attempts = attempts  # each route tried before the answer, with its class and fix

    @classmethod
    def unreachable(cls, url: str, exc: BaseException) -> GatewayError:
        return cls(0, "gateway_unreachable", f"cannot reach the byollm gateway at {url} ({type(exc).__name__})",
                   "Check the gateway URL (`byollm config get gateway_url`; `byollm login` sets it) and that the"
                   " gateway is running.")


@dataclass(frozen=True, slots=True)
class RouteFailure:
    """One route that failed (or was skipped) while serving a request: its class and the fix for it."""

    route: str
    code: str
    remediation: str = ""

    @classmethod
    def of(cls, route: str, code: str, remediation: str = "") -> RouteFailure:
        if not remediation:
            try:
                remediation = ErrorClass.from_code(code).remediation
            except KeyError:
                remediation = ""
        return cls(route, code, remediation)


def route_failures(header: str | None) -> tuple[RouteFailure, ...]:
    """``x-byollm-fallback-reasons`` (``route=class, route=class``) as route failures with their fixes."""
    failures = []
    for item in (header or "").split(","):
        route, sep, code = item.strip().rpartition("=")
        if sep and route:
            failures.append(RouteFailure.of(route, code))
    return tuple(failures)


def _attempts_of(context: Mapping[str, Any]) -> tuple[RouteFailure, ...]:
    listed = context.get("attempts") or context.get("earlier_attempts") or []
    return tuple(RouteFailure.of(str(a.get("route") or "?"), str(a.get("code") or "?"), str(a.get("remediation") or ""))
                 for a in listed if isinstance(a, dict))


def error_from_response(status: int, body: bytes) -> GatewayError:
    """Read any of the three error shapes (Anthropic, OpenAI, byollm) the gateway answers with."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = {}
    error = data.get("error") if isinstance(data, dict) else None
    info: Mapping[str, Any] = error if isinstance(error, dict) else {}
    nested = info.get("byollm")
    extra: Mapping[str, Any] = nested if isinstance(nested, dict) else info
    code = str(extra.get("code") or info.get("code") or f"http_{status}")
    message = str(extra.get("message") or info.get("message") or f"HTTP {status}")
    remediation = str(extra.get("remediation") or "")
    if not remediation:
        try:
            remediation = ErrorClass.from_code(code).remediation
        except KeyError:
            remediation = ""
    context = extra.get("context")
    attempts = _attempts_of(context) if isinstance(context, dict) else ()
    return GatewayError(status, code, message, remediation, attempts)


@dataclass
class StreamedAnswer:
    """What one streamed Messages answer produced, filled in as the stream is consumed."""

    route: str = ""
    model: str = ""
    fallbacks: int = 0
    auto_reason: str | None = None
    request_id: str = ""
    text: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str | None = None
    errors: list[str] = field(default_factory=list)
    failures: tuple[RouteFailure, ...] = ()  # the routes that failed or were skipped before this one served
    billing: str = ""  # who paid: customer_cloud, ai_credits or user_key
    credits: str | None = None  # AI credits charged, once the stream has ended


class GatewayClient:
    def __init__(self, base_url: str, token: str, *, team: str | None = None, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"authorization": f"Bearer {token}", "user-agent": "byollm-client"}
        if team:
            headers["x-byollm-team"] = team
        self._http = httpx.Client(base_url=self.base_url, headers=headers, transport=transport,
                                  timeout=httpx.Timeout(timeout, read=600.0))
        self._team = team

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
                 json: Any = None) -> Any:
        try:
            response = self._http.request(method, path, headers=dict(headers or {}), json=json)
        except httpx.HTTPError as exc:
            raise GatewayError.unreachable(self.base_url, exc) from None
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.content)
        return response.json() if response.content else None

    # --- the member's view of the admin API ----------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        return dict(self._request("GET", "/api/v1/me"))

    def team_uid(self) -> str:
        """The configured team, else the token's team, else the only team; ``GatewayError`` otherwise."""
        if self._team:
            return self._team
        me = self.me()
        if me.get("token_team_uid"):
            return str(me["token_team_uid"])
        teams = [str(t["uid"]) for t in me.get("teams") or []]
        if len(teams) == 1:
            return teams[0]
        raise GatewayError(400, "invalid_request", "your token can act in several teams (or none)",
                           "Choose one with `byollm config set team <team-uid>`.")

    def team_settings(self, team: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/api/v1/teams/{team}/settings"))

    def team_bedrock(self, team: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/api/v1/teams/{team}/bedrock"))

    def team_policy(self, team: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/api/v1/teams/{team}/policy"))

    def own_requests(self, team: str, limit: int = 50) -> list[dict[str, Any]]:
        return list(self._request("GET", f"/api/v1/teams/{team}/requests?limit={limit}"))

    # --- inference ---------------------------------------------------------------------------------------------

    def models(self, headers: Mapping[str, str]) -> list[dict[str, Any]]:
        return list(self._request("GET", "/v1/models", headers=headers)["data"])

    def message(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> tuple[dict[str, Any], httpx.Headers]:
        try:
            response = self._http.post("/v1/messages", json=dict(body), headers=dict(headers))
        except httpx.HTTPError as exc:
            raise GatewayError.unreachable(self.base_url, exc) from None
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.content)
        return dict(response.json()), response.headers

    @contextmanager
    def stream_message(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> Iterator[
            tuple[StreamedAnswer, Iterator[str]]]:
        """Open a streamed Messages call: the answer's route fields at once, then an iterator of text deltas
        (which also fills in the answer's usage and stop reason)."""
        request = self._http.build_request("POST", "/v1/messages", json={**body, "stream": True},
                                           headers=dict(headers))
        try:
            response = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise GatewayError.unreachable(self.base_url, exc) from None
        try:
            if response.status_code >= 400:
                raise error_from_response(response.status_code, response.read())
            answer = StreamedAnswer(
                route=response.headers.get("x-byollm-route", ""), model=response.headers.get("x-byollm-model", ""),
                fallbacks=int(response.headers.get("x-byollm-fallbacks", "0") or 0),
                auto_reason=response.headers.get("x-byollm-auto-reason"),
                request_id=response.headers.get("x-request-id", ""),
                failures=route_failures(response.headers.get("x-byollm-fallback-reasons")),
                billing=response.headers.get("x-byollm-billing", ""),
                credits=response.headers.get("x-byollm-credits"),
            )
            yield answer, _text_deltas(response, answer)
        finally:
            response.close()


def _sse_events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    event, data = "", list[str]()
    for line in response.iter_lines():
        if not line:
            if data:
                try:
                    payload = orjson.loads("\n".join(data))
                except orjson.JSONDecodeError:
                    payload = {}
                yield event, payload if isinstance(payload, dict) else {}
            event, data = "", list[str]()
        elif line.startswith(": x-byollm-credits="):  # what the answer cost, after its last event
            yield "x-byollm-credits", {"credits": line.split("=", 1)[1].strip()}
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def _text_deltas(response: httpx.Response, answer: StreamedAnswer) -> Iterator[str]:
    try:
        for event, payload in _sse_events(response):
            kind = payload.get("type", event)
            if event == "x-byollm-credits":
                answer.credits = str(payload.get("credits"))
            elif kind == "message_start":
                usage = (payload.get("message") or {}).get("usage") or {}
                answer.input_tokens = int(usage.get("input_tokens") or 0)
            elif kind == "content_block_delta":
                delta = payload.get("delta") or {}
                if delta.get("type") == "text_delta":
                    text = str(delta.get("text") or "")
                    answer.text += text
                    yield text
            elif kind == "message_delta":
                answer.stop_reason = (payload.get("delta") or {}).get("stop_reason")
                answer.output_tokens = int((payload.get("usage") or {}).get("output_tokens") or 0)
            elif kind == "error":
                error = payload.get("error") or {}
                answer.errors.append(str(error.get("message") or error.get("type") or "stream error"))
    except httpx.HTTPError as exc:
        answer.errors.append(f"the stream broke off ({type(exc).__name__})")
