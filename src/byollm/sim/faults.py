"""Fault injection: rules that make the next calls to a service fail, stall or drop, deterministically.

A ``FaultRule`` matches calls by service (``bedrock``, ``sts``, ``anthropic``, ``openai``, ``google`` or
``*``), optionally by model id and principal (``fnmatch`` globs). It fires for the next ``count`` matching
calls (None: forever), with probability ``rate`` drawn from a generator seeded by the world's seed, so a
run is reproducible. Firing yields a ``Fault``: an error to answer with (service-specific name such as
``ThrottlingException``, ``overloaded_error``, ``rate_limit_exceeded``, ``RESOURCE_EXHAUSTED``), optionally
only after ``after_events`` stream events, or a transport behaviour (``delay_s``, ``timeout``, ``reset``).

Services render the error in their own wire shape; the transport behaviours are shared here
(``apply_transport_fault``, ``TransportFaultResponse``, ``with_transport_fault`` before an answer,
``break_off_stream`` in the middle of one) so every service stalls and drops the same way.

Rule data (world file ``faults:`` list, or ``POST /_sim/faults``)::

    {"service": "bedrock", "model": "anthropic.claude-opus-4-7*", "error": "ThrottlingException",
     "count": 2, "after_events": 3, "rate": 1.0, "delay_s": 0, "timeout": false, "reset": false}
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import random
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

__all__ = [
    "Fault",
    "FaultBook",
    "FaultRule",
    "TransportFaultResponse",
    "apply_transport_fault",
    "break_off_stream",
    "parse_rule",
    "wait_for_disconnect",
    "with_transport_fault",
]

_SERVICES = ("bedrock", "sts", "iam", "anthropic", "openai", "google", "*")
_HANG_MAX_S = 600.0


@dataclass(frozen=True, slots=True)
class Fault:
    """What one faulty call should do. ``error`` is None for pure transport faults (delay/timeout/reset)."""

    error: str | None
    status: int | None = None
    message: str | None = None
    after_events: int | None = None
    delay_s: float = 0.0
    timeout: bool = False
    reset: bool = False

    @property
    def is_transport_only(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class FaultRule:
    """A matching rule; see the module docstring for the data shape."""

    rule_id: str
    service: str
    error: str | None = None
    status: int | None = None
    message: str | None = None
    model: str | None = None
    principal: str | None = None
    count: int | None = None
    rate: float = 1.0
    after_events: int | None = None
    delay_s: float = 0.0
    timeout: bool = False
    reset: bool = False

    def matches(self, service: str, model: str | None, principal: str | None, streaming: bool | None) -> bool:
        if self.service not in ("*", service):
            return False
        if self.model is not None and (model is None or not fnmatch.fnmatchcase(model, self.model)):
            return False
        if self.principal is not None and (principal is None or not fnmatch.fnmatchcase(principal, self.principal)):
            return False
        # A mid-stream rule only makes sense for streaming calls; don't let it fail plain ones.
        return not (self.after_events is not None and streaming is False)

    def fault(self) -> Fault:
        return Fault(
            error=self.error,
            status=self.status,
            message=self.message,
            after_events=self.after_events,
            delay_s=self.delay_s,
            timeout=self.timeout,
            reset=self.reset,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_rule(data: Mapping[str, Any], rule_id: str) -> FaultRule:
    """Validate rule data; raises ValueError naming the bad field."""
    known = {f for f in FaultRule.__dataclass_fields__ if f != "rule_id"}
    unknown = set(data) - known - {"id"}
    if unknown:
        raise ValueError(f"fault: unknown field(s) {sorted(unknown)}; expected some of {sorted(known)}")
    service = data.get("service", "*")
    if service not in _SERVICES:
        raise ValueError(f"fault.service: expected one of {_SERVICES}, got {service!r}")
    rule = FaultRule(rule_id=str(data.get("id") or rule_id), service=service)
    for name in ("error", "message", "model", "principal"):
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"fault.{name}: expected a string")
        setattr(rule, name, value)
    for name in ("status", "count", "after_events"):
        value = data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"fault.{name}: expected a non-negative integer")
        setattr(rule, name, value)
    for name in ("rate", "delay_s"):
        value = data.get(name, 1.0 if name == "rate" else 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"fault.{name}: expected a non-negative number")
        setattr(rule, name, float(value))
    if rule.rate > 1:
        raise ValueError("fault.rate: expected a probability between 0 and 1")
    for name in ("timeout", "reset"):
        value = data.get(name, False)
        if not isinstance(value, bool):
            raise ValueError(f"fault.{name}: expected true or false")
        setattr(rule, name, value)
    if rule.error is None and not (rule.timeout or rule.reset or rule.delay_s):
        raise ValueError("fault: give an error, or one of delay_s, timeout, reset")
    return rule


class FaultBook:
    """The live set of fault rules. Thread-safe: tests may add rules from outside the server's loop."""

    def __init__(self, rules: Sequence[Mapping[str, Any]] | None = None, *, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self._rng = random.Random(seed)
        for data in rules or []:
            self.add(data)

    def add(self, data: Mapping[str, Any]) -> FaultRule:
        with self._lock:
            rule = parse_rule(data, f"f{next(self._ids)}")
            self._rules.append(rule)
            return rule

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.rule_id != rule_id]
            return len(self._rules) != before

    def clear(self, *, seed: int | None = None) -> None:
        with self._lock:
            self._rules.clear()
            if seed is not None:
                self._rng.seed(seed)

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(
        self,
        service: str,
        *,
        model: str | None = None,
        principal: str | None = None,
        streaming: bool | None = None,
    ) -> Fault | None:
        """The fault for this call, consuming one use of the first matching rule that fires, or None."""
        if not self._rules:  # the hot path: no lock, no work
            return None
        with self._lock:
            for rule in self._rules:
                if not rule.matches(service, model, principal, streaming):
                    continue
                if rule.rate < 1.0 and self._rng.random() >= rule.rate:
                    continue
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count <= 0:
                        self._rules.remove(rule)
                return rule.fault()
        return None


async def wait_for_disconnect(receive: Receive, max_s: float = _HANG_MAX_S) -> None:
    """Block until the client goes away (or ``max_s``), draining any unread request body first."""

    async def _drain() -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                return

    try:
        await asyncio.wait_for(_drain(), timeout=max_s)
    except TimeoutError:
        return


async def apply_transport_fault(fault: Fault | None, scope: Scope, receive: Receive, send: Send) -> bool:
    """Apply a fault's delay, hang or reset. Returns True when the request is finished (hung or dropped).

    ``reset`` starts a response that promises a body and then aborts, which makes the server close the
    connection mid-response: to the client it is a dropped connection, like a real reset.

    A fault with ``after_events`` is a mid-stream fault: it is not applied here, before the answer, but by
    the service's stream once that many events went out (``break_off_stream``), as ``with_transport_fault``
    already does for the direct providers.
    """
    if fault is None or fault.after_events is not None:
        return False
    if fault.delay_s:
        await asyncio.sleep(fault.delay_s)
    if fault.timeout:
        await wait_for_disconnect(receive)
        return True
    if fault.reset:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1048576")],
            }
        )
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        raise ConnectionResetError("simulated connection reset (fault injection)")
    return False


class TransportFaultResponse:
    """An ASGI response that applies a transport-only fault; return it from a Starlette endpoint.

    After a pure delay it answers ``after`` (an ASGI app, e.g. the normal response) if given.
    """

    def __init__(self, fault: Fault, after: Any = None) -> None:
        self.fault = fault
        self.after = after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await apply_transport_fault(self.fault, scope, receive, send):
            return
        if self.after is not None:
            await self.after(scope, receive, send)


def with_transport_fault(fault: Fault | None, response: Response) -> Response:
    """``response``, or, when the fault asks for a delay, hang or drop before the answer (not mid-stream),
    a ``TransportFaultResponse`` that applies it and then answers ``response`` (after a pure delay)."""
    if fault is not None and fault.after_events is None and (fault.delay_s or fault.timeout or fault.reset):
        return TransportFaultResponse(fault, after=response)  # type: ignore[return-value]
    return response


async def break_off_stream(fault: Fault) -> bool:
    """Apply a mid-stream fault (its ``after_events`` reached): delay, then hang or drop the connection.

    Returns True when the stream is over (it hung until ``_HANG_MAX_S``); raises ``ConnectionResetError``
    for a reset; returns False when the service should now send its own error frame and end the stream.
    """
    if fault.delay_s:
        await asyncio.sleep(fault.delay_s)
    if fault.timeout:
        await asyncio.sleep(_HANG_MAX_S)
        return True
    if fault.reset:
        raise ConnectionResetError("simulated connection reset (fault injection)")
    return False
