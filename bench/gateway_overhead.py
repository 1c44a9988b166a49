"""Gateway overhead and throughput: byollm in front of the zero-latency simulator, against the simulator alone.

What runs (one invocation, loopback only, bounded: about 75 s with the defaults on a quiet machine)
    - the simulator (``byollm.sim``, default world, behaviour forced to time_to_first_token 0 / per_token 0,
      quotas lifted) in a child process: uvicorn, one worker;
    - byollm in a second child process, built exactly as ``byollm serve`` builds it (``Settings.from_env``
      with ``BYOLLM_*`` variables pointing every upstream at the simulator, ``create_app(settings)``, uvicorn
      with its default uvloop + httptools, lifespan on, no access log, one worker, SQLite in a temporary
      data directory);
    - a bare relay in a third child process, pinned like byollm: the same uvicorn configuration and an aiohttp
      client pooled like byollm's, relaying each request to the simulator and nothing else (the floor of the
      serving stack; direct combinations only);
    - the load generator in this process: asyncio (uvloop when installed) with a minimal HTTP/1.1 client over
      keep-alive connections, so the client's own cost is small and identical on both paths.

Setup: the operator is bootstrapped (``bootstrap_operator``), a team is created through the admin API
(Bedrock endpoint = the simulator, region us-east-1, claude-haiku-4-5 enabled for Bedrock and direct, a large
AI-credit allowance), the operator's provider keys are the simulator world's ``direct`` keys, a member token
is issued, and delegated AWS session credentials come from ``/signin/_sim/session-credentials``.

What is measured, for the Bedrock route (delegated credentials) and the direct Anthropic route (no AWS
credentials, operator key), each non-streaming and streaming
    - concurrency 1: requests alternate between the gateway and the equivalent request sent straight to the
      simulator, so both series share the same time window. Gateway overhead is reported two ways:
      (a) the gateway's own ``x-byollm-overhead-ms`` header (p50/p99), and (b) p50/p99 of the client-observed
      latency through the gateway minus p50/p99 of the client-observed latency direct to the simulator
      (a difference of percentiles, not a percentile of differences). For streaming, (b) uses the time to
      the first body byte (TTFB) and, separately, the time to the end of the stream. On the direct route the
      bare relay's requests alternate too: bare relay - direct is the stack's floor on this machine, gateway -
      bare relay is what byollm adds above it.
    - concurrency C (default 8 and 64, each measured in the same run): after a warm-up on each path, N requests
      direct to the simulator and N through the gateway, in 4 alternating rounds of N/4 (so drift from other
      work on the machine hits both paths); throughput ratio = gateway requests/s divided by direct requests/s.
    - memory per concurrent stream (first, before the throughput phases grow the heap): the simulator is slowed
      to 0.5 s per token, S streams (default 200) are opened through the gateway and held past their first
      content event; (gateway RSS with them open - RSS just before) / S, from ``/proc/<pid>/status``. RSS
      only grows when the heap does, so memory freed earlier and reused is not counted: the first
      combination measured (Bedrock) is the fair figure, the second (direct) a lower bound.

Equivalent upstream requests for the baseline
    - Bedrock: InvokeModel / InvokeModelWithResponseStream on the profile id the gateway used (read from its
      ``x-byollm-route`` header), with the body and ``x-amzn-bedrock-request-metadata`` header the gateway
      sends, SigV4-signed with botocore's ``SigV4Auth`` using the same session credentials. The baseline is
      signed *before* its timer starts (pre-signed), so SigV4 signing (and the simulator's verification, which
      both paths pay) is not subtracted: the gateway's signing cost counts as gateway overhead. The baseline
      client does not decode the event stream (the gateway's translation to SSE is gateway work).
    - Direct: ``POST <sim>/anthropic/v1/messages`` with the world's Anthropic key and the gateway's upstream
      model id.

How the 2 cores are shared (the load generator, the simulator and the gateway share this 2-core machine)
    ``--cores split`` (default): byollm is pinned alone to CPU 1; the simulator and the load generator are both
    pinned to CPU 0. Why: the figure of interest is the gateway's own cost, so it gets a core no other process
    of the benchmark can preempt; the simulator + client pair is the same work on both paths (one request, one
    response per request), on the same core, so the direct baseline and the gateway path compete for CPU 0
    identically. At concurrency 1 nothing contends (each hop waits for the next). The throughput ratio under
    ``split`` therefore compares the gateway's per-request CPU cost against the simulator's + client's.
    ``--cores shared``: nothing pinned; the kernel spreads all three processes over both cores.

Targets (issue 4 item 10; issue 8 item 6 later): overhead p50 <= 1 ms (0.5), p99 <= 3 ms (2); throughput
ratio >= 0.25 (0.35). Each figure is printed with PASS/MISS against both, and a final SUMMARY table puts the
issue 8 figures side by side per combination. The exit status is non-zero only
when something errors (a failed request, an unexpected route or fallback, a process that does not start),
never for a missed target.

    .venv/bin/python bench/gateway_overhead.py [--requests 2000] [--concurrency 8,64] [--streams 200] [--quick]
                                               [--json] [--cores split|shared] [--profile OUT_PREFIX]

``--profile OUT_PREFIX`` runs ``py-spy record`` (non-blocking, 250 Hz, pinned with the simulator) on the
gateway during the concurrency-C gateway phases, writes ``OUT_PREFIX.<phase>.txt`` collapsed stacks and
prints the top frames by own time. The sampler costs CPU too, so a profiled run's figures are not the ones
to quote.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import multiprocessing as mp
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import stackproc  # this directory's shared process and team setup (the script's own directory is on sys.path)
from stackproc import MODEL

MAX_TOKENS = 64
HOST = "127.0.0.1"
CPU_SHARED = 0  # simulator + load generator (+ py-spy when profiling)
CPU_GATEWAY = 1  # byollm alone
ROUNDS = 4  # throughput: direct and gateway alternate in this many rounds

TARGETS_4 = {"overhead_p50_ms": 1.0, "overhead_p99_ms": 3.0, "throughput_ratio": 0.25}
TARGETS_8 = {"overhead_p50_ms": 0.5, "overhead_p99_ms": 2.0, "throughput_ratio": 0.35}

T = TypeVar("T")
_LINE = re.compile(r":\d+\)$")


class BenchError(RuntimeError):
    """Something went wrong (not a missed target): the benchmark exits non-zero."""


# --- processes --------------------------------------------------------------------------------------------


def _pin(cpus: set[int] | None, pid: int = 0) -> None:
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, cpus)


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(4096)
    return sock


def _serve_sim(conn: Connection, cpus: set[int] | None) -> None:
    """Child process: the simulator (default world), uvicorn, one worker."""
    import uvicorn

    from byollm.sim.app import build_app
    from byollm.sim.state import SimState
    from byollm.sim.world import load_world

    _pin(cpus)
    app = build_app(SimState(load_world(None)))
    sock = _listen()
    conn.send(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


def _serve_gateway(conn: Connection, cpus: set[int] | None, env: dict[str, str]) -> None:
    """Child process: byollm as ``byollm serve`` builds it (settings from the environment), one worker."""
    os.environ.update(env)
    _pin(cpus)
    import uvicorn

    from byollm.api.app import create_app
    from byollm.settings import Settings

    app = create_app(Settings.from_env())
    sock = _listen()
    conn.send(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", server_header=False)
    uvicorn.Server(config).run(sockets=[sock])


def _serve_relay(conn: Connection, cpus: set[int] | None, sim_port: int) -> None:
    """Child process: the floor of byollm's serving stack - uvicorn (configured as the gateway's) and an aiohttp
    client (pooled as byollm's ``HttpPool``) relaying each POST to the simulator as it came, the answer back as
    it arrives, and nothing else: no token, policy, route plan, request log or metric."""
    _pin(cpus)
    import aiohttp
    import uvicorn

    from byollm.api.serving import KEEP_ALIVE_S

    forwarded = (b"x-api-key", b"anthropic-version", b"content-type")
    pool: list[aiohttp.ClientSession] = []

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] == "lifespan.startup":
                pool.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512, limit_per_host=256)))
                await send({"type": "lifespan.startup.complete"})
            await pool[0].close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k in forwarded}
        async with pool[0].post(f"http://{HOST}:{sim_port}{scope['path']}", data=body, headers=headers) as upstream:
            await send({"type": "http.response.start", "status": upstream.status,
                        "headers": [(b"content-type", upstream.headers["content-type"].encode())]})
            async for chunk in upstream.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    sock = _listen()
    conn.send(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", server_header=False,
                            timeout_keep_alive=KEEP_ALIVE_S)
    uvicorn.Server(config).run(sockets=[sock])


def _serve_echo(conn: Connection, cpus: set[int] | None) -> None:
    """Child process: a bare TCP echo on one connection (the loopback hop calibration)."""
    _pin(cpus)
    sock = _listen()
    conn.send(sock.getsockname()[1])
    peer, _ = sock.accept()
    peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := peer.recv(256):
        peer.sendall(data)


def _hop_us(ctx: Any, server_cpus: set[int] | None, client_cpus: set[int] | None, count: int = 3000) -> float:
    """p50 of a 1-byte loopback TCP round trip from this process to an echo process, in microseconds."""
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_serve_echo, args=(child, server_cpus), daemon=True)
    process.start()
    try:
        if not parent.poll(30):
            raise BenchError("the echo process did not start")
        _pin(client_cpus)
        with socket.create_connection((HOST, int(parent.recv()))) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            times = []
            for _ in range(count):
                started = time.perf_counter()
                sock.sendall(b"x")
                sock.recv(256)
                times.append(time.perf_counter() - started)
        return _pct(times, 0.5) * 1e6
    finally:
        process.join(5)
        if process.is_alive():
            process.kill()


@dataclass
class Child:
    name: str
    process: mp.process.BaseProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def stop(self) -> None:
        if self.process.is_alive():
            pid = self.process.pid
            if pid is not None:
                os.kill(pid, signal.SIGTERM)  # uvicorn shuts down cleanly (byollm flushes its request log)
            self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


def _start(ctx: Any, name: str, target: Callable[..., None], *args: Any) -> Child:
    parent, child = ctx.Pipe()
    process = ctx.Process(target=target, args=(child, *args), name=name, daemon=True)
    process.start()
    if not parent.poll(60):
        process.kill()
        raise BenchError(f"{name} did not start")
    return Child(name, process, int(parent.recv()))


def _wait_ready(url: str, timeout_s: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise BenchError(f"{url} did not answer in {timeout_s:.0f} s")


# --- setup through the public APIs ---------------------------------------------------------------------------


@dataclass
class Setup:
    token: str
    aws: dict[str, str]  # delegated session credentials, credential_process shape
    anthropic_key: str
    direct_token: str = ""  # a member of a second team with MODEL on the direct API only (no AWS session sent)


def _configure(sim_url: str, gateway_url: str, operator_token: str) -> Setup:
    """The team every series uses (``stackproc.configure_team``, shared with ``soak.py``): MODEL on Bedrock
    (the simulator, delegated session credentials) and the direct Anthropic API, zero simulated latency,
    quotas lifted."""
    team = stackproc.configure_team(sim_url, gateway_url, operator_token, model=MODEL)
    direct = stackproc.configure_team(sim_url, gateway_url, operator_token, model=MODEL, bedrock=False)
    return Setup(token=team.token, direct_token=direct.token, aws=team.aws,
                 anthropic_key=team.provider_keys["anthropic"])


# --- requests as bytes -----------------------------------------------------------------------------------------


def _http(path: str, port: int, headers: dict[str, str], body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nhost: {HOST}:{port}\r\ncontent-length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items() if k.lower() not in ("host", "content-length"))
    return head.encode("latin-1") + b"\r\n" + body


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"benchmark request {i}: say something short"}]


@dataclass(frozen=True)
class Combo:
    route: str  # "bedrock" | "direct"
    stream: bool

    @property
    def label(self) -> str:
        return f"{self.route} {'stream' if self.stream else 'plain'}"


class Requests:
    """Builds the gateway request and the equivalent direct-to-simulator request for one combination."""

    def __init__(self, combo: Combo, setup: Setup, gateway_port: int, sim_port: int) -> None:
        self.combo = combo
        self.setup = setup
        self.gateway_port = gateway_port
        self.sim_port = sim_port
        self.upstream_id = ""  # learned from the gateway's x-byollm-route header (probe)

    def gateway(self, i: int) -> bytes:
        body: dict[str, Any] = {"model": MODEL, "max_tokens": MAX_TOKENS, "messages": _messages(i)}
        if self.combo.stream:
            body["stream"] = True
        token = self.setup.token if self.combo.route == "bedrock" else self.setup.direct_token
        headers = {"authorization": f"Bearer {token}", "anthropic-version": "2023-06-01",
                   "content-type": "application/json"}
        if self.combo.route == "bedrock":
            aws = self.setup.aws
            headers.update({
                "x-byollm-aws-access-key-id": aws["AccessKeyId"],
                "x-byollm-aws-secret-access-key": aws["SecretAccessKey"],
                "x-byollm-aws-session-token": aws["SessionToken"],
                "x-byollm-aws-expiration": aws["Expiration"],
            })
        return _http("/v1/messages", self.gateway_port, headers, json.dumps(body).encode())

    def direct(self, i: int) -> bytes:
        if self.combo.route == "bedrock":
            return self._bedrock(i)
        body: dict[str, Any] = {"model": self.upstream_id, "max_tokens": MAX_TOKENS, "messages": _messages(i)}
        if self.combo.stream:
            body["stream"] = True
        headers = {"x-api-key": self.setup.anthropic_key, "anthropic-version": "2023-06-01",
                   "content-type": "application/json"}
        return _http("/anthropic/v1/messages", self.sim_port, headers, json.dumps(body).encode())

    def _bedrock(self, i: int) -> bytes:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        operation = "invoke-with-response-stream" if self.combo.stream else "invoke"
        accept = "application/vnd.amazon.eventstream" if self.combo.stream else "application/json"
        path = f"/model/{quote(self.upstream_id, safe='')}/{operation}"
        body = json.dumps({"max_tokens": MAX_TOKENS, "messages": _messages(i),
                           "anthropic_version": "bedrock-2023-05-31"}).encode()
        headers = {"content-type": "application/json", "accept": accept,
                   "x-amzn-bedrock-request-metadata": json.dumps(
                       {"byollm_request_id": "req_" + secrets.token_hex(12), "byollm_team": "bench"})}
        aws = self.setup.aws
        request = AWSRequest(method="POST", url=f"http://{HOST}:{self.sim_port}{path}", data=body, headers=headers)
        credentials = Credentials(aws["AccessKeyId"], aws["SecretAccessKey"], aws["SessionToken"])
        SigV4Auth(credentials, "bedrock", "us-east-1").add_auth(request)
        return _http(path, self.sim_port, dict(request.headers.items()), body)


# --- a minimal HTTP/1.1 client -------------------------------------------------------------------------------


@dataclass(slots=True)
class Sample:
    total_s: float  # request written -> last body byte
    ttfb_s: float  # request written -> first body byte
    status: int
    overhead_ms: float | None = None
    route: str | None = None
    fallbacks: str | None = None
    body: bytes = b""


class Client:
    """One keep-alive HTTP/1.1 connection; handles Content-Length and chunked bodies."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(HOST, self.port)
            sock = self._writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._reader, self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def send(self, raw: bytes, keep_body: bool = False) -> Sample:
        reader, writer = await self._connect()
        started = time.perf_counter()
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        head_at = time.perf_counter()
        lines = head[:-4].split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        chunked = close = False
        overhead = route = fallbacks = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = value.lower() == b"close"
            elif name == b"x-byollm-overhead-ms":
                overhead = float(value)
            elif name == b"x-byollm-route":
                route = value.decode()
            elif name == b"x-byollm-fallbacks":
                fallbacks = value.decode()
        parts: list[bytes] = []
        first_at: float | None = None
        if chunked:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                if first_at is None:
                    first_at = time.perf_counter()
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, if any
                        pass
                    break
                chunk = await reader.readexactly(size + 2)
                if keep_body or len(parts) < 2:
                    parts.append(chunk[:-2])
                else:  # keep the last two chunks (the final event, then byollm's credits comment)
                    parts[0], parts[1] = parts[1], chunk[:-2]
        else:
            first_at = head_at
            if length:
                parts.append(await reader.readexactly(length))
        ended = time.perf_counter()
        if close:
            self.close()
        return Sample(total_s=ended - started, ttfb_s=(first_at or ended) - started, status=status,
                      overhead_ms=overhead, route=route, fallbacks=fallbacks, body=b"".join(parts))


# --- phases ------------------------------------------------------------------------------------------------------


@dataclass
class Errors:
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def note(self, kind: str, example: str) -> None:
        self.counts[kind] += 1
        self.examples.setdefault(kind, example[:300])


def _verify(sample: Sample, combo: Combo, via_gateway: bool, errors: Errors, where: str) -> None:
    if sample.status != 200:
        errors.note(f"{where}: HTTP {sample.status}", sample.body.decode(errors="replace"))
        return
    if not via_gateway:
        return
    expected = "bedrock:" if combo.route == "bedrock" else "anthropic:"
    if not (sample.route or "").startswith(expected) or sample.fallbacks != "0":
        errors.note(f"{where}: unexpected route/fallback", f"route={sample.route} fallbacks={sample.fallbacks}")
    if sample.overhead_ms is None:
        errors.note(f"{where}: no x-byollm-overhead-ms header", "")
    if combo.stream and b"message_stop" not in sample.body:
        errors.note(f"{where}: stream did not end with message_stop", sample.body.decode(errors="replace"))


async def _probe(requests: Requests, errors: Errors) -> None:
    client = Client(requests.gateway_port)
    try:
        sample = await client.send(requests.gateway(0), keep_body=True)
    finally:
        client.close()
    _verify(sample, requests.combo, True, errors, f"{requests.combo.label} probe")
    if sample.status != 200 or not sample.route:
        raise BenchError(f"{requests.combo.label}: probe through the gateway failed: HTTP {sample.status}"
                         f" {sample.body[:300]!r}")
    requests.upstream_id = sample.route.split(":", 1)[1]


async def _alternating(requests: Requests, count: int, warmup: int, errors: Errors, relay_port: int | None = None
                       ) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Concurrency 1: gateway and direct requests (and, given ``relay_port``, the bare relay's: the direct
    request sent through it) alternate on keep-alive connections, one per path."""
    gateway, direct = Client(requests.gateway_port), Client(requests.sim_port)
    relay = Client(relay_port) if relay_port is not None else None
    via: list[Sample] = []
    base: list[Sample] = []
    floor: list[Sample] = []
    try:
        for i in range(warmup + count):
            raw_direct = requests.direct(i)  # built (and, for Bedrock, signed) before the timer starts
            raw_gateway = requests.gateway(i)
            g = await gateway.send(raw_gateway)
            d = await direct.send(raw_direct)
            _verify(g, requests.combo, True, errors, f"{requests.combo.label} c=1 gateway")
            _verify(d, requests.combo, False, errors, f"{requests.combo.label} c=1 direct")
            r = await relay.send(raw_direct) if relay is not None else None
            if r is not None:
                _verify(r, requests.combo, False, errors, f"{requests.combo.label} c=1 bare relay")
            if i >= warmup:
                via.append(g)
                base.append(d)
                if r is not None:
                    floor.append(r)
    finally:
        gateway.close()
        direct.close()
        if relay is not None:
            relay.close()
    return via, base, floor


async def _concurrent(port: int, raws: Sequence[bytes], concurrency: int, check: Callable[[Sample], None]) -> float:
    """Send every request over ``concurrency`` keep-alive connections; answers the seconds it took."""
    indices = iter(range(len(raws)))

    async def worker() -> None:
        client = Client(port)
        try:
            for i in indices:
                check(await client.send(raws[i]))
        finally:
            client.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def _throughput(requests: Requests, concurrency: int, count: int, warmup: int, sim_port: int, gateway_port: int,
                      errors: Errors, profiler: Profiler, throughput: dict[str, dict[str, float]],
                      relay_port: int | None = None) -> list[Figure]:
    """Concurrency C: warm-up on each path, then ROUNDS alternating rounds per path (so drift from other work
    on the machine hits all alike); the ratio is gateway requests/s over direct requests/s. Given ``relay_port``
    the bare relay is a third path, and its own ratio (the stack's ceiling) is a figure too."""
    combo = requests.combo

    def checker(via_gateway: bool, path: str) -> Callable[[Sample], None]:
        def check(sample: Sample) -> None:
            _verify(sample, combo, via_gateway, errors, f"{combo.label} c={concurrency} {path}")
        return check

    direct_raws = [requests.direct(i) for i in range(warmup + count)]  # pre-signed
    gateway_raws = [requests.gateway(i) for i in range(warmup + count)]
    paths = [("direct", sim_port, direct_raws, checker(False, "direct")),
             ("gateway", gateway_port, gateway_raws, checker(True, "gateway"))]
    if relay_port is not None:
        paths.append(("bare relay", relay_port, direct_raws, checker(False, "bare relay")))
    for _, port, raws, check in paths:
        await _concurrent(port, raws[:warmup], concurrency, check)
    spent = dict.fromkeys((name for name, *_ in paths), 0.0)
    bounds = [warmup + count * r // ROUNDS for r in range(ROUNDS + 1)]
    profiler.start(f"{combo.label.replace(' ', '-')}-c{concurrency}")  # the gateway is idle in the other paths
    try:
        for low, high in itertools.pairwise(bounds):
            for name, port, raws, check in paths:
                spent[name] += await _concurrent(port, raws[low:high], concurrency, check)
    finally:
        profiler.stop()
    rps = {name: count / seconds for name, seconds in spent.items()}
    throughput[f"{combo.label} c={concurrency}"] = {"gateway_rps": rps["gateway"], "direct_rps": rps["direct"],
                                                    "concurrency": concurrency}
    figures = [Figure(combo.label, f"throughput ratio at c={concurrency} (gateway {rps['gateway']:,.0f} / direct"
                      f" {rps['direct']:,.0f} req/s)", rps["gateway"] / rps["direct"], "", "throughput_ratio",
                      concurrency)]
    if "bare relay" in rps:
        throughput[f"{combo.label} c={concurrency}"]["bare_relay_rps"] = rps["bare relay"]
        figures.append(Figure(combo.label, f"stack ceiling: bare relay throughput ratio at c={concurrency} (bare"
                              f" relay {rps['bare relay']:,.0f} / direct {rps['direct']:,.0f} req/s)",
                              rps["bare relay"] / rps["direct"], "", "info", concurrency))
    return figures


# --- memory per concurrent stream -----------------------------------------------------------------------------


@dataclass
class StreamMemory:
    combo: str
    streams: int
    opened: int
    rss_idle_kib: int | None
    rss_open_kib: int | None

    @property
    def per_stream_kib(self) -> float:
        if self.rss_idle_kib is None or self.rss_open_kib is None or not self.opened:
            return float("nan")
        return (self.rss_open_kib - self.rss_idle_kib) / self.opened

    def as_json(self) -> dict[str, Any]:
        return {"combination": self.combo, "streams": self.streams, "opened": self.opened,
                "rss_idle_kib": self.rss_idle_kib, "rss_open_kib": self.rss_open_kib,
                "per_stream_kib": round(self.per_stream_kib, 1)}


async def _held_stream(port: int, raw: bytes, opened: asyncio.Queue[bool], release: asyncio.Event) -> None:
    """Open one gateway stream, read its head and first chunk, then hold it (unread) until ``release``."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        ok = head.split(b" ", 2)[1] == b"200"
        if ok:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            await reader.readexactly(size + 2)
        await opened.put(ok)
        await release.wait()
    finally:
        writer.close()  # a client disconnect: the gateway cancels the upstream stream


async def _stream_memory(requests: Requests, sim_url: str, gateway_pid: int, streams: int,
                         errors: Errors) -> StreamMemory:
    """RSS of the gateway process with ``streams`` slow streams open (each past its first content event, so
    the gateway holds the upstream connection, the relay generator and the client connection) against its
    RSS just before, after a warm-up of the same shape. The simulator is slowed to 0.5 s per token for this
    phase only, so the streams stay open while RSS is read."""
    import httpx

    label = requests.combo.label
    async with httpx.AsyncClient(base_url=sim_url, timeout=30) as sim:
        await sim.put("/_sim/behaviour", json={"time_to_first_token_s": 0, "per_token_s": 0.5})
        try:
            release = asyncio.Event()
            opened: asyncio.Queue[bool] = asyncio.Queue()
            warm = [asyncio.create_task(_held_stream(requests.gateway_port, requests.gateway(i), opened, release))
                    for i in range(min(10, streams))]
            for _ in warm:
                await asyncio.wait_for(opened.get(), 30)
            release.set()
            await asyncio.gather(*warm, return_exceptions=True)
            await asyncio.sleep(1.0)  # the gateway finishes its cancelled streams
            idle = stackproc.rss_kb(gateway_pid)
            release = asyncio.Event()
            held = [asyncio.create_task(_held_stream(requests.gateway_port, requests.gateway(i), opened, release))
                    for i in range(streams)]
            ok = 0
            try:
                for _ in held:
                    ok += await asyncio.wait_for(opened.get(), 60)
                await asyncio.sleep(0.3)
                rss_open = max(stackproc.rss_kb(gateway_pid) or 0 for _ in range(3))
            except TimeoutError:
                errors.note(f"{label} memory: streams did not open", f"{ok} of {streams} opened in 60 s")
                rss_open = None
            finally:
                release.set()
                await asyncio.gather(*held, return_exceptions=True)
        finally:
            await sim.put("/_sim/behaviour", json={"time_to_first_token_s": 0, "per_token_s": 0})
            await asyncio.sleep(1.0)
    if ok < streams:
        errors.note(f"{label} memory: a stream did not answer 200", f"{streams - ok} of {streams}")
    return StreamMemory(label, streams, ok, idle, rss_open or None)


class Profiler:
    """``py-spy record`` on the gateway during the concurrency-C gateway phases (collapsed stacks)."""

    def __init__(self, prefix: str | None, gateway_pid: int, cpus: set[int] | None) -> None:
        self.prefix = prefix
        self.pid = gateway_pid
        self.cpus = cpus
        self.files: list[Path] = []
        self._proc: subprocess.Popen[bytes] | None = None
        exe = Path(sys.executable).with_name("py-spy")
        self.exe = str(exe) if exe.exists() else shutil.which("py-spy")
        if prefix and not self.exe:
            raise BenchError("--profile needs py-spy (.venv/bin/pip install py-spy)")

    def start(self, phase: str) -> None:
        if not self.prefix or not self.exe:
            return
        out = Path(f"{self.prefix}.{phase}.txt")
        self.files.append(out)
        self._proc = subprocess.Popen(
            [self.exe, "record", "--pid", str(self.pid), "--rate", "250", "--nonblocking", "--format", "raw",
             "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _pin(self.cpus, self._proc.pid)
        time.sleep(0.5)  # let it attach

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.send_signal(signal.SIGINT)
        try:
            self._proc.wait(20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        self._proc = None

    def top(self, n: int = 15) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Top frames by own time (aggregated per function, line numbers dropped), and byollm's own functions
        by inclusive time."""
        own: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        total = 0
        for path in self.files:
            if not path.exists():
                continue
            for line in path.read_text().splitlines():
                stack, _, count_text = line.rpartition(" ")
                if not stack or not count_text.isdigit():
                    continue
                count = int(count_text)
                frames = [_LINE.sub(")", f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
                if not frames:
                    continue
                total += count
                own[frames[-1] or "(native)"] += count
                for frame in set(frames):
                    inclusive[frame] += count
        if not total:
            return [], []

        def row(frame: str, c: int) -> dict[str, Any]:
            return {"frame": frame, "own_pct": round(100 * own[frame] / total, 2),
                    "inclusive_pct": round(100 * c / total, 2)}

        top_own = [row(frame, inclusive[frame]) for frame, _ in own.most_common(n)]
        ours = [row(frame, c) for frame, c in inclusive.most_common() if "byollm/" in frame][:n]
        return top_own, ours


class CpuUse:
    """CPU time used on the whole machine vs by the benchmark's own processes (``/proc``), so a run disturbed
    by other work on the machine says so."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._start = self._read()

    def _read(self) -> tuple[float, float, float] | None:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
            values = [int(v) for v in fields[:8]]
            busy = sum(values) - values[3] - values[4]  # minus idle and iowait
            ours = 0
            for pid in self.pids:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ours += int(stat[11]) + int(stat[12])  # utime + stime, all threads
        except (OSError, ValueError, IndexError):
            return None
        return busy / self.tick, ours / self.tick, time.monotonic()

    def summary(self) -> str:
        end = self._read()
        if self._start is None or end is None:
            return "machine load: unknown (no /proc)"
        busy, ours, wall = (e - s for e, s in zip(end, self._start, strict=True))
        others = max(busy - ours, 0.0)
        cores = os.cpu_count() or 1
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        return (f"machine load during the measurements: benchmark processes {ours:.1f} CPU-s, other processes"
                f" {others:.1f} CPU-s, over {wall:.0f} s x {cores} cores ({100 * others / (wall * cores):.0f}%"
                f" of the machine taken by others); 1-min load average at the end {load:.2f}")


# --- statistics and the report -----------------------------------------------------------------------------------


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Figure:
    combo: str
    name: str
    value: float
    unit: str
    kind: str  # "overhead_p50_ms" | "overhead_p99_ms" | "throughput_ratio" | "info"
    concurrency: int | None = None  # throughput figures only

    def verdict(self, targets: dict[str, float]) -> tuple[str, str]:
        if self.kind not in targets:
            return "", ""
        target = targets[self.kind]
        if self.kind == "throughput_ratio":
            return f">= {target:g}", "PASS" if self.value >= target else "MISS"
        return f"<= {target:g} ms", "PASS" if self.value <= target else "MISS"


def _latency_figures(combo: Combo, via: list[Sample], base: list[Sample]) -> list[Figure]:
    label = combo.label
    header = [s.overhead_ms for s in via if s.overhead_ms is not None]
    figures = [Figure(label, f"overhead {q} (x-byollm-overhead-ms)", _pct(header, p), "ms", f"overhead_{q}_ms")
               for q, p in (("p50", 0.5), ("p99", 0.99))]
    ms = 1000.0
    series = [("latency", [s.total_s * ms for s in via], [s.total_s * ms for s in base])]
    if combo.stream:
        series.insert(0, ("TTFB", [s.ttfb_s * ms for s in via], [s.ttfb_s * ms for s in base]))
    for what, gw, direct in series:
        for q, p in (("p50", 0.5), ("p99", 0.99)):
            whole = combo.stream and what == "latency"
            kind = "info" if whole else f"overhead_{q}_ms"
            prefix = "TTFB " if what == "TTFB" else ""
            suffix = ", whole stream" if whole else ""
            name = f"{prefix}overhead {q} (gateway - direct{suffix})"
            figures.append(Figure(label, name, _pct(gw, p) - _pct(direct, p), "ms", kind))
        for q, p in (("p50", 0.5), ("p99", 0.99)):
            figures.append(Figure(label, f"  {what} {q}: gateway {_pct(gw, p):.3f} / direct {_pct(direct, p):.3f}",
                                  _pct(gw, p), "ms", "info"))
    return figures


def _floor_figures(combo: Combo, via: list[Sample], base: list[Sample], floor: list[Sample]) -> list[Figure]:
    """What the serving stack alone costs (bare relay - direct) and what byollm adds on top of it (gateway -
    bare relay), at p50 and p99 of the same alternating series. For a stream, the time to first byte."""
    def ms(samples: list[Sample]) -> list[float]:
        return [(s.ttfb_s if combo.stream else s.total_s) * 1000.0 for s in samples]

    what = "TTFB " if combo.stream else ""
    figures: list[Figure] = []
    for q, p in (("p50", 0.5), ("p99", 0.99)):
        gw, direct, relay = _pct(ms(via), p), _pct(ms(base), p), _pct(ms(floor), p)
        figures.append(Figure(combo.label, f"{what}stack floor {q} (bare relay - direct)", relay - direct, "ms",
                              f"floor_{q}_ms"))
        figures.append(Figure(combo.label, f"{what}byollm above the floor {q} (gateway - bare relay)", gw - relay,
                              "ms", f"above_floor_{q}_ms"))
    return figures


def _print_table(figures: list[Figure], notes: list[str]) -> None:
    rows = [("combination", "figure", "value", "target #4", "", "target #8", "")]
    for f in figures:
        t4, v4 = f.verdict(TARGETS_4)
        t8, v8 = f.verdict(TARGETS_8)
        value = f"{f.value:.3f} {f.unit}" if f.unit == "ms" else f"{f.value:.3f}"
        if f.kind == "info" and f.name.startswith("  "):
            rows.append((f.combo, f.name, "", "", "", "", ""))
            continue
        rows.append((f.combo, f.name, value, t4, v4, t8, v8))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    for note in notes:
        print(note)


def _summary_rows(figures: list[Figure], memory: list[StreamMemory], concurrencies: Sequence[int]
                  ) -> list[dict[str, Any]]:
    """The issue 8 item 6 figures, one row per figure, one value per combination."""
    combos = [Combo(r, st).label for r in ("bedrock", "direct") for st in (False, True)]

    def pick(combo: str, name_start: str, concurrency: int | None = None) -> float | None:
        for f in figures:
            if f.combo == combo and f.name.startswith(name_start) and f.concurrency == concurrency:
                return f.value
        return None

    rows: list[dict[str, Any]] = []
    for what, start, target in (
        ("overhead p50, own (x-byollm-overhead-ms)", "overhead p50 (x-byollm", 0.5),
        ("overhead p99, own (x-byollm-overhead-ms)", "overhead p99 (x-byollm", 2.0),
        ("overhead p50, gateway - direct (plain: latency)", "overhead p50 (gateway - direct)", 0.5),
        ("overhead p99, gateway - direct (plain: latency)", "overhead p99 (gateway - direct)", 2.0),
        ("TTFB overhead p50, gateway - direct", "TTFB overhead p50", 0.5),
        ("TTFB overhead p99, gateway - direct", "TTFB overhead p99", 2.0),
    ):
        values = {c: pick(c, start) for c in combos}
        rows.append({"figure": what, "unit": "ms", "values": values, "target": f"<= {target:g}",
                     "result": _verdict(values, _at_most(target))})
    for what, start in (
        ("stack floor p50, bare relay - direct", "stack floor p50"),
        ("stack floor p99, bare relay - direct", "stack floor p99"),
        ("byollm above the floor p50, gateway - bare relay", "byollm above the floor p50"),
        ("byollm above the floor p99, gateway - bare relay", "byollm above the floor p99"),
    ):
        values = {c: pick(c, start) if not c.endswith("stream") else pick(c, "TTFB " + start) for c in combos}
        rows.append({"figure": what + " (streams: TTFB)", "unit": "ms", "values": values, "target": "",
                     "result": ""})
    for c in concurrencies:
        values = {combo: pick(combo, "throughput ratio", c) for combo in combos}
        rows.append({"figure": f"throughput ratio, c={c}", "unit": "", "values": values, "target": ">= 0.35",
                     "result": _verdict(values, lambda v: v >= 0.35)})
    for c in concurrencies:
        values = {combo: pick(combo, "stack ceiling", c) for combo in combos}
        rows.append({"figure": f"bare relay throughput ratio, c={c}", "unit": "", "values": values, "target": "",
                     "result": ""})
    per_stream = {m.combo: round(m.per_stream_kib, 1) for m in memory}
    rows.append({"figure": "memory per concurrent stream", "unit": "KiB",
                 "values": {c: per_stream.get(c) for c in combos}, "target": "", "result": ""})
    return rows


def _at_most(target: float) -> Callable[[float], bool]:
    return lambda value: value <= target


def _verdict(values: dict[str, float | None], ok: Callable[[float], bool]) -> str:
    measured = {c: v for c, v in values.items() if v is not None and v == v}  # NaN is unmeasured
    if not measured:
        return ""
    missed = [c for c, v in measured.items() if not ok(v)]
    return "PASS" if not missed else "MISS: " + ", ".join(missed)


def _print_summary(figures: list[Figure], memory: list[StreamMemory], concurrencies: Sequence[int],
                   cores_note: str) -> None:
    rows = _summary_rows(figures, memory, concurrencies)
    combos = list(rows[0]["values"]) if rows else []
    print("SUMMARY: issue 8 item 6 targets (all ratios measured in this run; " + cores_note + ")")
    table = [("figure", *combos, "target", "result")]
    for row in rows:
        cells = []
        for c in combos:
            v = row["values"].get(c)
            cells.append("-" if v is None or v != v else f"{v:.3f}" if row["unit"] != "KiB" else f"{v:.1f}")
        unit = f" ({row['unit']})" if row["unit"] else ""
        table.append((row["figure"] + unit, *cells, row["target"], row["result"]))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for n, line in enumerate(table):
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    for m in memory:
        print(f"memory, {m.combo}: gateway RSS {m.rss_idle_kib} KiB before, {m.rss_open_kib} KiB with {m.opened}"
              f" slow streams open -> {m.per_stream_kib:.1f} KiB per stream (upstream + client connection, relay)")
    if len(memory) > 1:
        print(f"memory: {memory[0].combo} was measured first; later combinations reuse heap freed by it, so their"
              " figure is a lower bound")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


# --- main --------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000,
                        help="requests per path for each concurrency-1 series and each throughput run")
    parser.add_argument("--concurrency", default="8,64",
                        help="comma-separated concurrencies of the throughput runs (default 8,64)")
    parser.add_argument("--streams", type=int, default=None,
                        help="concurrent slow streams held open for the memory figure (default 200, quick 50)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up requests per phase (default N/10)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 requests, 50 warm-up")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    parser.add_argument("--cores", choices=("split", "shared"), default="split",
                        help="split: gateway alone on CPU 1, simulator + load generator on CPU 0; shared: unpinned")
    parser.add_argument("--profile", metavar="OUT_PREFIX", default=None,
                        help="py-spy the gateway during the concurrency-C gateway phases")
    args = parser.parse_args(argv)
    try:
        concurrencies = [int(c) for c in str(args.concurrency).split(",") if c.strip()]
    except ValueError:
        parser.error("--concurrency takes integers separated by commas")
    if (args.requests < ROUNDS or not concurrencies or min(concurrencies) < 1
            or (args.warmup is not None and args.warmup < 0) or (args.streams is not None and args.streams < 1)):
        parser.error(f"need --requests >= {ROUNDS}, concurrencies >= 1, --warmup >= 0 and --streams >= 1")
    streams = args.streams if args.streams is not None else (50 if args.quick else 200)
    count = 200 if args.quick else args.requests
    warmup = args.warmup if args.warmup is not None else (50 if args.quick else max(count // 10, 50))
    cpus = os.cpu_count() or 1
    split = args.cores == "split" and cpus >= 2 and hasattr(os, "sched_setaffinity")
    shared_cpus = {CPU_SHARED} if split else None
    gateway_cpus = {CPU_GATEWAY} if split else None
    cores_note = (f"cores: {cpus} online; gateway pinned alone to CPU {CPU_GATEWAY}; simulator and load generator"
                  f" (this process{', py-spy' if args.profile else ''}) pinned together to CPU {CPU_SHARED}"
                  if split else f"cores: {cpus} online; nothing pinned: gateway, simulator and load generator"
                  " share all cores as the kernel schedules them")

    started = time.monotonic()
    ctx = mp.get_context("spawn")
    children: list[Child] = []
    data_dir = Path(tempfile.mkdtemp(prefix="byollm-bench-"))
    errors = Errors()
    figures: list[Figure] = []
    throughput: dict[str, dict[str, float]] = {}
    memory: list[StreamMemory] = []
    profile: list[dict[str, Any]] = []
    profile_ours: list[dict[str, Any]] = []
    load_note = "machine load: not measured (the run stopped early)"
    hop_note = "loopback round trip: not measured (the run stopped early)"
    try:
        sim = _start(ctx, "simulator", _serve_sim, shared_cpus)
        children.append(sim)
        _wait_ready(sim.url + "/_sim/world")
        env = {
            "BYOLLM_DATA_DIR": str(data_dir),
            "BYOLLM_KEK": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "BYOLLM_ALLOW_HTTP_ENDPOINTS": "1",
            "BYOLLM_ANTHROPIC_BASE_URL": f"{sim.url}/anthropic",
            "BYOLLM_OPENAI_BASE_URL": f"{sim.url}/openai/v1",
            "BYOLLM_GOOGLE_BASE_URL": f"{sim.url}/google",
            "BYOLLM_STS_ENDPOINT_URL": sim.url,
            "BYOLLM_ALLOWED_INTERNAL_NETWORKS": "127.0.0.0/8",  # the team's Bedrock endpoint is the loopback sim
        }
        from byollm.control.bootstrap import bootstrap_operator
        from byollm.settings import Settings

        settings = Settings.from_env(env)
        boot = asyncio.run(bootstrap_operator(settings, email="operator@bench.test"))
        gateway = _start(ctx, "gateway", _serve_gateway, gateway_cpus, env)
        children.append(gateway)
        _wait_ready(gateway.url + "/healthz")
        relay = _start(ctx, "bare relay", _serve_relay, gateway_cpus, sim.port)
        children.append(relay)
        setup = _configure(sim.url, gateway.url, boot.token)
        _pin(shared_cpus)
        profiler = Profiler(args.profile, gateway.process.pid or 0, shared_cpus)
        cpu = CpuUse([os.getpid(), sim.process.pid or 0, gateway.process.pid or 0])

        async def measure() -> None:
            # memory first: later phases (c=64) grow the heap, and memory freed then would be reused by the
            # streams here, hiding what they cost
            for combo in (Combo("bedrock", True), Combo("direct", True)):
                memory.append(await _stream_memory(Requests(combo, setup, gateway.port, sim.port), sim.url,
                                                   gateway.process.pid or 0, streams, errors))
            for combo in (Combo("bedrock", False), Combo("bedrock", True), Combo("direct", False),
                          Combo("direct", True)):
                requests = Requests(combo, setup, gateway.port, sim.port)
                await _probe(requests, errors)
                # the bare relay speaks the direct Anthropic API only; Bedrock's signing and event streams are
                # byollm's own work, so they have no floor to compare with
                relay_port = relay.port if combo.route == "direct" else None
                via, base, floor = await _alternating(requests, count, warmup, errors, relay_port)
                figures.extend(_latency_figures(combo, via, base))
                if floor:
                    figures.extend(_floor_figures(combo, via, base, floor))

                for concurrency in concurrencies:
                    figures.extend(await _throughput(requests, concurrency, count, warmup, sim.port, gateway.port,
                                                     errors, profiler, throughput, relay_port))

        _run(measure())
        if split:
            same = _hop_us(ctx, shared_cpus, shared_cpus)
            cross = _hop_us(ctx, gateway_cpus, shared_cpus)
            hop_note = (f"loopback TCP round trip (1 byte, p50): same core {same:.0f} us, across cores {cross:.0f} us;"
                        " the gateway path adds two cross-core round trips that the direct path (same core) does"
                        " not make")
        else:
            hop_note = f"loopback TCP round trip (1 byte, p50, unpinned): {_hop_us(ctx, None, None):.0f} us"
        load_note = cpu.summary()
        profile, profile_ours = profiler.top(15) if args.profile else ([], [])
    except BenchError as exc:
        errors.note("fatal", str(exc))
    except Exception as exc:  # any other failure: report it, clean up, exit non-zero
        errors.note("fatal", f"{type(exc).__name__}: {exc}")
    finally:
        for child in reversed(children):
            child.stop()
        shutil.rmtree(data_dir, ignore_errors=True)

    elapsed = time.monotonic() - started
    notes = [
        cores_note,
        f"requests: {count} per series at c=1 (gateway and direct alternating) and {count} per throughput run at"
        f" c={'/'.join(map(str, concurrencies))} ({ROUNDS} alternating rounds per path); {warmup} warm-up per"
        f" phase; {streams} concurrent slow streams for memory; {elapsed:.0f} s in all",
        "overhead (gateway - direct) is a difference of percentiles; the Bedrock baseline is pre-signed with"
        " botocore SigV4Auth before its timer starts, so the gateway's signing counts as its overhead",
        "streaming: x-byollm-overhead-ms is taken when the stream opens; TTFB = first body byte",
        load_note,
        hop_note,
    ]
    if args.profile:
        notes.append("PROFILED RUN: py-spy sampled the gateway during the throughput phases; figures are perturbed")
    if args.json:
        print(json.dumps({
            "cores": cores_note, "requests": count, "warmup": warmup, "concurrency": concurrencies,
            "streams": streams, "memory": [m.as_json() for m in memory],
            "summary": _summary_rows(figures, memory, concurrencies),
            "elapsed_s": round(elapsed, 1),
            "figures": [{"combination": f.combo, "figure": f.name.strip(), "value": round(f.value, 4),
                         "unit": f.unit, "kind": f.kind,
                         "target_4": f.verdict(TARGETS_4)[0], "result_4": f.verdict(TARGETS_4)[1],
                         "target_8": f.verdict(TARGETS_8)[0], "result_8": f.verdict(TARGETS_8)[1]}
                        for f in figures],
            "throughput": throughput, "machine_load": load_note, "loopback": hop_note, "profile_top_own": profile,
            "profile_byollm_inclusive": profile_ours,
            "errors": dict(errors.counts), "error_examples": errors.examples,
        }, indent=2))
    else:
        _print_table(figures, notes)
        print()
        _print_summary(figures, memory, concurrencies, cores_note)
        if profile:
            print("\npy-spy, gateway process during the throughput phases: top functions by own time")
            for row in profile:
                print(f"  {row['own_pct']:6.2f}% own {row['inclusive_pct']:6.2f}% incl  {row['frame']}")
            print("byollm's own functions by inclusive time")
            for row in profile_ours:
                print(f"  {row['own_pct']:6.2f}% own {row['inclusive_pct']:6.2f}% incl  {row['frame']}")
        if errors.counts:
            print("\nERRORS:")
            for kind, n in errors.counts.items():
                print(f"  {n} x {kind}: {errors.examples.get(kind, '')}")
    return 1 if errors.counts else 0


if __name__ == "__main__":
    sys.exit(main())
