"""Load and soak: a real ``byollm serve`` under sustained faulty load, then under many concurrent long streams.

Bounded in count and time, loopback only (issue 8, item 2). One invocation:

1. starts ``byollm sim`` (default world) and ``byollm serve`` (configured only through ``BYOLLM_*``
   variables; SQLite in a temporary directory, or ``--database-url`` for PostgreSQL, where a fresh database is
   created beside the given one and dropped at the end) as child processes;
2. bootstraps an operator and configures a team through the admin API: ``claude-haiku-4-5`` on Bedrock (the
   simulator, delegated AWS session credentials from the simulated ``aws login``) with the direct Anthropic
   API (the operator's key) as the fallback, so an upstream fault on Bedrock fails over;
3. **load phase**: sets fault rules in the simulator so about ``--fault-rate`` (5%) of requests meet a
   Bedrock fault - ThrottlingException (429), ServiceUnavailableException (503), a connection reset before
   the answer, and for streams a break mid-stream (an exception frame) either before the first content
   (fails over) or after it (too late to fail over: the client gets an in-stream error) - plus
   ``--fallback-fault-rate`` (2%) of the failed-over direct-Anthropic calls (overloaded_error 529, connection
   reset), so a few requests find no route left; then drives ``--requests`` (50,000) at ``--concurrency``
   (64) over keep-alive connections (aiohttp), a quarter each of Anthropic Messages plain / streaming and
   OpenAI Chat Completions plain / streaming;
4. **stream phase**: faults cleared, the simulator slowed so one answer streams for ``--stream-seconds``
   (30 s), and ``--streams`` (200) streaming requests opened at once (half per API shape);
5. checks every answer, the request log and the gateway's resident memory, prints a summary and exits
   non-zero when a requirement fails.

What counts as an answer, and what is unexpected (precisely)
    Every request must get a complete HTTP answer: a transport error, a timeout or an unreadable body is
    unexpected. A 200 must carry ``x-request-id``, and ``x-byollm-route`` / ``x-byollm-fallbacks`` must be
    ``bedrock:*`` / ``0`` (served first time) or ``anthropic:*`` / ``1`` (failed over); a stream must end
    intact (``message_stop``, or a ``finish_reason`` and ``[DONE]``) unless it carries byollm's in-stream
    error, which is expected only on the Bedrock route, with a transient class (``upstream_unavailable`` or
    ``quota_exceeded``): that is the late mid-stream fault. A non-200 is expected only when it is
    ``no_fallback_available`` (424) listing exactly one Bedrock and one direct-Anthropic attempt, both failed
    with a transient class, and fallback faults are on: a fault with no fallback left. Any other status - every
    5xx among them, since with a fallback configured no transient failure should surface as one - is
    unexpected. The load-phase requirement is zero unexpected answers.

Request log
    After each phase the script waits for the request-log writer (it flushes every 100 ms; allowed up to
    ``FLUSH_WAIT_S``), then counts the team's rows through the admin API (``/usage``) and reads them from the
    store. Requirement: rows == requests sent, every answered ``x-request-id`` has its row, and each row agrees
    with its answer (status, error code, number of attempts; a stream that failed after its 200 went out is
    logged with its error class's status, 429 or 503).

Memory
    ``VmRSS`` of the ``byollm serve`` process is sampled from ``/proc/<pid>/status`` every 0.25 s. Load phase:
    the warm-up value is the sample when 10% of the requests have been answered, final is the sample when the
    last one has; requirement: final < warm-up x 1.10 (checked only from 10,000 requests up: a shorter run is
    still warming). Stream phase: before (idle), during (peak while all streams are open), after (all done,
    log flushed); memory per concurrent stream = (during - before) / streams (reported, not a requirement).

Cores: the machine has 2 cores and nothing is pinned: the load generator, the simulator and the gateway
share them as the kernel schedules, so requests/s says how the whole loopback stack copes, not the gateway's
own capacity (``gateway_overhead.py`` measures that). Other work on the machine shows in the CPU line.

    .venv/bin/python bench/soak.py [--requests 50000] [--concurrency 64] [--fault-rate 0.05]
                                   [--fallback-fault-rate 0.02] [--streams 200] [--stream-seconds 30]
                                   [--database-url URL] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:  # run as a script or loaded by a test
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import httpx
import stackproc
from stackproc import MODEL, Proc, StackError, TeamSetup

TRANSIENT = frozenset({"upstream_unavailable", "quota_exceeded"})
FLUSH_WAIT_S = 20.0
RSS_EVERY_S = 0.25
RSS_GROWTH_LIMIT = 0.10
RSS_MIN_REQUESTS = 10_000  # below this the warm-up is not over: growth is reported, not judged
WARMUP_FRACTION = 0.10
MAX_TOKENS = 64
KINDS = ("anthropic", "anthropic-stream", "openai", "openai-stream")

OK = "ok: Bedrock"
FAILOVER = "ok: failed over to direct Anthropic"
STREAM_ERROR = "expected: in-stream error (fault after the first content)"
NO_ROUTE = "expected: 424 no_fallback_available (every route faulted)"


@dataclass(frozen=True)
class Config:
    requests: int = 50_000
    concurrency: int = 64
    fault_rate: float = 0.05
    fallback_fault_rate: float = 0.02
    streams: int = 200
    stream_seconds: float = 30.0
    database_url: str | None = None
    enforce_rss: bool = True


def fault_rules(fault_rate: float, fallback_fault_rate: float) -> list[dict[str, Any]]:
    """Simulator fault rules hitting about ``fault_rate`` of the gateway's requests on Bedrock.

    The simulator tries rules in order, each firing with its own rate. Three rules (429, 503, reset before
    the answer) match every Bedrock call at ``a = f/4`` each; two mid-stream breaks (an exception frame
    before the first content, which fails over, and one after it, which cannot) match only streaming calls
    at ``a`` each. With half the requests streaming: ``3a + 2a/2 = 4a = f`` (to first order).
    """
    rules: list[dict[str, Any]] = []
    if fault_rate > 0:
        a = fault_rate / 4
        rules += [
            {"service": "bedrock", "error": "ThrottlingException", "rate": a},
            {"service": "bedrock", "error": "ServiceUnavailableException", "rate": a},
            {"service": "bedrock", "reset": True, "rate": a},
            # mid-stream breaks as exception frames: the simulator's Bedrock applies a ``reset`` before the
            # answer even when ``after_events`` is set (the direct-provider services honour it)
            {"service": "bedrock", "error": "ThrottlingException", "after_events": 2, "rate": a},  # fails over
            {"service": "bedrock", "error": "ServiceUnavailableException", "after_events": 3, "rate": a},
        ]
    if fallback_fault_rate > 0:
        b = fallback_fault_rate / 2
        rules += [
            {"service": "anthropic", "error": "overloaded_error", "rate": b},
            {"service": "anthropic", "reset": True, "rate": b},
        ]
    return rules


# --- one request -----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Answer:
    """One request's outcome as the client saw it."""

    kind: str
    status: int  # 0: no HTTP answer
    request_id: str | None
    route: str | None
    fallbacks: int | None
    outcome: str
    code: str | None = None  # byollm error code (error answer or in-stream error)
    seconds: float = 0.0
    output_tokens: int = 0  # counted for the stream phase only


def _prompt(i: int, words: int = 0) -> str:
    filler = " ".join(f"word{n % 97}" for n in range(words))
    return f"soak request {i}: say something short {filler}".strip()


def build_request(kind: str, i: int, setup: TeamSetup, words: int = 0,
                  max_tokens: int = MAX_TOKENS) -> tuple[str, dict[str, str], bytes]:
    """(path, headers, body) for request ``i`` of ``kind``: delegated AWS credentials and the member's token."""
    stream = kind.endswith("-stream")
    messages = [{"role": "user", "content": _prompt(i, words)}]
    headers = {"authorization": f"Bearer {setup.token}", "content-type": "application/json",
               **setup.aws_headers()}
    body: dict[str, Any] = {"model": MODEL, "max_tokens": max_tokens, "messages": messages}
    if stream:
        body["stream"] = True
    if kind.startswith("anthropic"):
        headers["anthropic-version"] = "2023-06-01"
        return "/v1/messages", headers, json.dumps(body).encode()
    if stream:
        body["stream_options"] = {"include_usage": True}
    return "/v1/chat/completions", headers, json.dumps(body).encode()


def _stream_error(kind: str, body: bytes) -> tuple[bool, str | None]:
    """(intact, in-stream error code) of a streamed body."""
    text = body.decode("utf-8", errors="replace")
    code: str | None = None
    if kind.startswith("anthropic"):
        events = []
        for block in text.split("\n\n"):
            name = data = ""
            for line in block.splitlines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data = line[5:].strip()
            if name:
                events.append(name)
            if name == "error":
                with contextlib.suppress(ValueError, AttributeError):
                    code = json.loads(data)["error"]["byollm"]["code"]
                code = code or "unknown"
        return bool(events) and events[-1] == "message_stop" and code is None, code
    datas = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
    finished = False
    for data in datas:
        if data == "[DONE]":
            continue
        try:
            chunk = json.loads(data)
        except ValueError:
            return False, "unparsable chunk"
        if "error" in chunk:
            code = str(((chunk["error"] or {}).get("byollm") or {}).get("code") or "unknown")
        for choice in chunk.get("choices") or []:
            finished = finished or choice.get("finish_reason") is not None
    return bool(datas) and datas[-1] == "[DONE]" and finished and code is None, code


def classify(kind: str, status: int, headers: Any, body: bytes, fallback_faults: bool) -> tuple[str, str | None]:
    """(outcome, byollm code) of one answer; see the module docstring for what is expected."""
    request_id = headers.get("x-request-id")
    if not request_id:
        return "unexpected: no x-request-id", None
    if status == 200:
        route = headers.get("x-byollm-route") or ""
        fallbacks = headers.get("x-byollm-fallbacks")
        if route.startswith("bedrock:") and fallbacks == "0":
            served = OK
        elif route.startswith("anthropic:") and fallbacks == "1":
            served = FAILOVER
        else:
            return f"unexpected: 200 with route {route!r} and fallbacks {fallbacks!r}", None
        if not kind.endswith("-stream"):
            try:
                parsed = json.loads(body)
            except ValueError:
                return "unexpected: 200 with an unparsable body", None
            if not (parsed.get("content") or parsed.get("choices")):
                return "unexpected: 200 without content", None
            return served, None
        intact, code = _stream_error(kind, body)
        if intact:
            return served, None
        if code in TRANSIENT and served == OK:
            return STREAM_ERROR, code
        return f"unexpected: stream not intact (in-stream code {code})", code
    code = headers.get("x-byollm-error-code")
    try:
        error = json.loads(body)["error"]
        info = error["byollm"]
        attempts = [a.get("code") for a in (info.get("context") or {}).get("attempts") or []]
        routes = [str(a.get("route", "")) for a in (info.get("context") or {}).get("attempts") or []]
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"unexpected: HTTP {status} without byollm's error body", code
    if (fallback_faults and status == 424 and code == "no_fallback_available" and len(attempts) == 2
            and all(a in TRANSIENT for a in attempts) and routes[0].startswith("bedrock")
            and routes[1].startswith("anthropic")):
        return NO_ROUTE, code
    return f"unexpected: HTTP {status} {code}", code


async def send(session: aiohttp.ClientSession, base: str, kind: str, i: int, setup: TeamSetup,
               fallback_faults: bool, words: int = 0, max_tokens: int = MAX_TOKENS,
               on_first_byte: Callable[[], None] | None = None) -> Answer:
    path, headers, body = build_request(kind, i, setup, words, max_tokens)
    started = time.perf_counter()
    try:
        async with session.post(base + path, data=body, headers=headers) as response:
            if on_first_byte is None:
                raw = await response.read()
            else:
                parts: list[bytes] = []
                async for chunk in response.content.iter_any():
                    if not parts:
                        on_first_byte()
                    parts.append(chunk)
                raw = b"".join(parts)
            status, got = response.status, response.headers
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Answer(kind, 0, None, None, None, f"unexpected: transport {type(exc).__name__}",
                      seconds=time.perf_counter() - started)
    outcome, code = classify(kind, status, got, raw, fallback_faults)
    fallbacks = got.get("x-byollm-fallbacks")
    return Answer(kind, status, got.get("x-request-id"), got.get("x-byollm-route"),
                  int(fallbacks) if fallbacks and fallbacks.isdigit() else None, outcome, code,
                  time.perf_counter() - started, _output_tokens(raw) if on_first_byte is not None else 0)


def _output_tokens(body: bytes) -> int:
    """Output tokens reported in a streamed body (Anthropic ``message_delta`` or OpenAI's usage chunk)."""
    found = 0
    for line in body.decode("utf-8", errors="replace").splitlines():
        if not line.startswith("data:") or "usage" not in line:
            continue
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            usage = json.loads(line[5:]).get("usage") or {}
            found = int(usage.get("output_tokens") or usage.get("completion_tokens") or found)
    return found


# --- memory -------------------------------------------------------------------------------------------------------


class RssSampler:
    """Samples a process's VmRSS on a thread, tagged with a progress counter the caller advances."""

    def __init__(self, pid: int, every_s: float = RSS_EVERY_S) -> None:
        self.pid = pid
        self.every_s = every_s
        self.progress = 0  # advanced by the load generator (answers so far, or open streams)
        self.samples: list[tuple[float, int, int]] = []  # (monotonic, rss KiB, progress)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def sample(self) -> int:
        kb = stackproc.rss_kb(self.pid) or 0
        self.samples.append((time.monotonic(), kb, self.progress))
        return kb

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every_s)

    def first_at(self, progress: int) -> int | None:
        return next((kb for _, kb, p in self.samples if p >= progress), None)


def _mb(kb: int | None) -> float | None:
    return None if kb is None else round(kb / 1024, 1)


# --- request log ------------------------------------------------------------------------------------------------


def usage_count(gateway: str, setup: TeamSetup) -> int:
    """The team's request-log rows, counted by the admin API (``/usage``, grouped by host, summed)."""
    r = httpx.get(f"{gateway}/api/v1/teams/{setup.team_uid}/usage", params={"group_by": "host"}, timeout=60,
                  headers={"authorization": f"Bearer {setup.operator_token}"})
    r.raise_for_status()
    return sum(int(row["requests"]) for row in r.json())


def wait_flushed(gateway: str, setup: TeamSetup, expected: int) -> tuple[int, float]:
    """Wait until the admin API counts ``expected`` rows (or FLUSH_WAIT_S passes); (count, seconds waited)."""
    started = time.monotonic()
    count = usage_count(gateway, setup)
    while count < expected and time.monotonic() - started < FLUSH_WAIT_S:
        time.sleep(0.2)
        count = usage_count(gateway, setup)
    if count >= expected:  # a late extra row would show here too
        time.sleep(0.3)
        count = usage_count(gateway, setup)
    return count, time.monotonic() - started


def read_rows(env: dict[str, str], team_uid: str) -> dict[str, dict[str, Any]]:
    """The team's request-log rows from the store, by request id."""
    from sqlalchemy import select

    from byollm.settings import Settings
    from byollm.store import Store
    from byollm.store import tables as t

    async def read() -> dict[str, dict[str, Any]]:
        rl = t.RequestLog
        async with Store.from_settings(Settings.from_env(env)) as store, store.engine.connect() as conn:
            result = await conn.execute(select(rl.request_id, rl.status, rl.error_code, rl.attempts, rl.stream)
                                        .where(rl.team_uid == team_uid))
            return {row.request_id: {"status": row.status, "error_code": row.error_code,
                                     "attempts": len(row.attempts or []), "stream": row.stream,
                                     "failed_attempts": [str(a.get("error_code")) for a in row.attempts or []
                                                         if a.get("error_code")]} for row in result}

    return asyncio.run(read())


def failed_attempts(answers: Sequence[Answer], rows: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Why attempts failed, per the request log (each failed attempt's error class), over these answers."""
    causes: Counter[str] = Counter()
    for a in answers:
        row = rows.get(a.request_id or "")
        if row is not None:
            causes.update(row.get("failed_attempts") or [])
    return dict(causes.most_common())


def compare_rows(answers: Sequence[Answer], rows: dict[str, dict[str, Any]]) -> tuple[int, int, list[str]]:
    """(answers without a row, rows that disagree with their answer, examples)."""
    missing = disagree = 0
    examples: list[str] = []
    for a in answers:
        if a.request_id is None:
            continue
        row = rows.get(a.request_id)
        if row is None:
            missing += 1
            if len(examples) < 5:
                examples.append(f"no row for {a.request_id} ({a.kind}, HTTP {a.status})")
            continue
        problems = []
        if a.outcome == STREAM_ERROR:  # HTTP 200 went out before the failure; the row keeps the class's status
            if row["status"] < 400:
                problems.append(f"status {row['status']} for an in-stream {a.code}")
        elif row["status"] != a.status:
            problems.append(f"status {row['status']} != {a.status}")
        if row["error_code"] != a.code:
            problems.append(f"error_code {row['error_code']} != {a.code}")
        if a.status == 200 and a.fallbacks is not None and row["attempts"] != a.fallbacks + 1:
            problems.append(f"{row['attempts']} attempts, {a.fallbacks} fallbacks")
        if problems:
            disagree += 1
            if len(examples) < 5:
                examples.append(f"{a.request_id}: {'; '.join(problems)}")
    return missing, disagree, examples


# --- phases -------------------------------------------------------------------------------------------------------


def _session(limit: int, timeout_s: float) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, force_close=False)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s))


async def drive(gateway: str, setup: TeamSetup, count: int, concurrency: int, fallback_faults: bool,
                sampler: RssSampler | None = None) -> tuple[list[Answer], float]:
    """``count`` requests over ``concurrency`` keep-alive connections, the four kinds in turn;
    (answers, seconds)."""
    answers: list[Answer] = []
    indices = iter(range(count))
    async with _session(concurrency, 120) as session:

        async def worker() -> None:
            for i in indices:
                answers.append(await send(session, gateway, KINDS[i % len(KINDS)], i, setup, fallback_faults))
                if sampler is not None:
                    sampler.progress += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return answers, time.perf_counter() - started


def _check_sim(response: httpx.Response) -> Any:
    if response.status_code >= 300:
        raise StackError(f"simulator {response.request.url.path}: HTTP {response.status_code} {response.text[:200]}")
    return response.json() if response.content else None


def load_phase(cfg: Config, sim: Proc, gateway: Proc, setup: TeamSetup, env: dict[str, str]) -> dict[str, Any]:
    with httpx.Client(base_url=sim.url, timeout=30) as client:
        _check_sim(client.delete("/_sim/faults"))
        rules = fault_rules(cfg.fault_rate, cfg.fallback_fault_rate)
        if rules:
            _check_sim(client.post("/_sim/faults", json=rules))
    before = usage_count(gateway.url, setup)
    with RssSampler(gateway.pid) as sampler:
        rss_start = sampler.sample()
        answers, seconds = _run(drive(gateway.url, setup, cfg.requests, cfg.concurrency,
                                      cfg.fallback_fault_rate > 0, sampler))
        rss_final = sampler.sample()
    with httpx.Client(base_url=sim.url, timeout=30) as client:
        _check_sim(client.delete("/_sim/faults"))
    rss_warm = sampler.first_at(max(int(cfg.requests * WARMUP_FRACTION), 1))
    rss_mid = sampler.first_at(max(cfg.requests // 2, 1))  # with warm-up and final: is growth slowing down?
    rows_counted, waited = wait_flushed(gateway.url, setup, before + len(answers))
    rows = read_rows(env, setup.team_uid)
    missing, disagree, examples = compare_rows(answers, rows)
    outcomes = Counter(a.outcome for a in answers)
    unexpected = sum(n for o, n in outcomes.items() if o.startswith("unexpected"))
    growth = (rss_final - rss_warm) / rss_warm if rss_warm else None
    peak = max(kb for _, kb, _ in sampler.samples)
    return {
        "requests": cfg.requests, "concurrency": cfg.concurrency, "fault_rate": cfg.fault_rate,
        "fallback_fault_rate": cfg.fallback_fault_rate, "answered": sum(1 for a in answers if a.status),
        "seconds": round(seconds, 1), "requests_per_s": round(len(answers) / seconds, 1),
        "status": dict(sorted(Counter(str(a.status) for a in answers).items())),
        "outcomes": dict(outcomes.most_common()),
        "by_kind": {k: dict(Counter(a.outcome for a in answers if a.kind == k)) for k in KINDS},
        "unexpected": unexpected,
        "unexpected_5xx": sum(1 for a in answers if a.status >= 500),
        "latency_p50_ms": round(_pct([a.seconds for a in answers], 0.5) * 1000, 1),
        "latency_p99_ms": round(_pct([a.seconds for a in answers], 0.99) * 1000, 1),
        "rows_api": rows_counted - before, "rows_store": len(rows) - before if before == 0 else None,
        "rows_missing": missing, "rows_disagreeing": disagree, "row_examples": examples,
        "failed_attempts": failed_attempts(answers, rows), "flush_wait_s": round(waited, 1),
        "rss_start_mb": _mb(rss_start), "rss_warm_mb": _mb(rss_warm), "rss_mid_mb": _mb(rss_mid),
        "rss_final_mb": _mb(rss_final),
        "rss_peak_mb": _mb(peak), "rss_growth_pct": None if growth is None else round(100 * growth, 1),
        "rss_samples": len(sampler.samples),
    }


def stream_phase(cfg: Config, sim: Proc, gateway: Proc, setup: TeamSetup, env: dict[str, str]) -> dict[str, Any]:
    words = 240
    # how many output tokens one long answer has (zero latency), then slow the simulator to make it last
    rows_before_probe = usage_count(gateway.url, setup)
    probe, _ = _run(drive_streams(gateway.url, setup, 1, words, None))
    tokens = probe[0].output_tokens if probe else 0
    if not tokens or probe[0].outcome != OK:
        raise StackError(f"stream probe failed: {probe[0].outcome if probe else 'no answer'}")
    per_token = cfg.stream_seconds / tokens
    with httpx.Client(base_url=sim.url, timeout=30) as client:
        _check_sim(client.delete("/_sim/faults"))
        _check_sim(client.put("/_sim/behaviour", json={"time_to_first_token_s": 0, "per_token_s": per_token}))
    before_rows, _ = wait_flushed(gateway.url, setup, rows_before_probe + 1)  # the probe's row is in
    try:
        with RssSampler(gateway.pid) as sampler:
            time.sleep(1.0)
            rss_before = sampler.sample()
            started = time.perf_counter()
            streams, _ = _run(drive_streams(gateway.url, setup, cfg.streams, words, sampler))
            seconds = time.perf_counter() - started
            during = [kb for _, kb, open_now in sampler.samples if open_now >= cfg.streams]
    finally:
        with httpx.Client(base_url=sim.url, timeout=30) as client:
            _check_sim(client.put("/_sim/behaviour", json={"time_to_first_token_s": 0, "per_token_s": 0}))
    answers = streams
    rows_counted, _waited = wait_flushed(gateway.url, setup, before_rows + len(answers))
    rss_after = stackproc.rss_kb(gateway.pid)
    rows = read_rows(env, setup.team_uid)
    missing, disagree, examples = compare_rows(answers, rows)
    rss_during = max(during) if during else None
    durations = [a.seconds for a in answers if a.status]
    return {
        "streams": cfg.streams, "stream_seconds_target": cfg.stream_seconds, "seconds": round(seconds, 1),
        "tokens_per_stream": tokens, "per_token_s": round(per_token, 4),
        "intact": sum(1 for a in answers if a.outcome in (OK, FAILOVER)),
        "failed_over": sum(1 for a in answers if a.outcome == FAILOVER),
        "outcomes": dict(Counter(a.outcome for a in answers)),
        "all_open_at_once": bool(during),
        "duration_min_s": round(min(durations), 1) if durations else None,
        "duration_max_s": round(max(durations), 1) if durations else None,
        "rows_api": rows_counted - before_rows, "rows_missing": missing, "rows_disagreeing": disagree,
        "row_examples": examples, "failed_attempts": failed_attempts(answers, rows),
        "rss_before_mb": _mb(rss_before), "rss_during_mb": _mb(rss_during), "rss_after_mb": _mb(rss_after),
        "rss_per_stream_kb": round((rss_during - rss_before) / cfg.streams, 1) if rss_during else None,
    }


async def drive_streams(gateway: str, setup: TeamSetup, count: int, words: int,
                        sampler: RssSampler | None) -> tuple[list[Answer], float]:
    """``count`` long streams opened at once, half per API shape; ``sampler.progress`` = streams open now."""
    kinds = ("anthropic-stream", "openai-stream")

    async def one(session: aiohttp.ClientSession, i: int) -> Answer:
        opened = False

        def first_byte() -> None:
            nonlocal opened
            opened = True
            if sampler is not None:
                sampler.progress += 1

        answer = await send(session, gateway, kinds[i % 2], i, setup, False, words, max_tokens=4096,
                            on_first_byte=first_byte)
        if opened and sampler is not None:
            sampler.progress -= 1
        return answer

    started = time.perf_counter()
    async with _session(count + 4, 600) as session:
        results = await asyncio.gather(*(one(session, i) for i in range(count)))
    return list(results), time.perf_counter() - started


# --- the whole run ------------------------------------------------------------------------------------------------


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


_TICK = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0


def _cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(stat[11]) + int(stat[12])) / _TICK
    except (OSError, ValueError, IndexError):
        return 0.0


def _machine_busy_s() -> float:
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    return (sum(values) - values[3] - values[4]) / _TICK


def _log_problems(proc: Proc) -> list[str]:
    """Lines of the server's log that say something went wrong (tracebacks, errors, dropped rows)."""
    try:
        lines = proc.log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line[:200] for line in lines if any(word in line for word in ("Traceback", "ERROR", "dropping"))]


@dataclass
class Check:
    name: str
    ok: bool | None  # None: reported, not judged
    detail: str


@dataclass
class Report:
    config: dict[str, Any]
    load: dict[str, Any] = field(default_factory=dict)
    streams: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or any(c.ok is False for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"config": self.config, "load": self.load, "streams": self.streams,
                "checks": [asdict(c) for c in self.checks], "notes": self.notes, "error": self.error,
                "passed": not self.failed}


def judge(cfg: Config, report: Report) -> None:
    """The requirements, each a check with its figures."""
    load, streams, checks = report.load, report.streams, report.checks
    if load:
        checks.append(Check("every request answered", load["answered"] == load["requests"],
                            f"{load['answered']:,} of {load['requests']:,}"))
        checks.append(Check("no unexpected answer (5xx or other)", load["unexpected"] == 0,
                            f"{load['unexpected']} unexpected; {load['unexpected_5xx']} answers were 5xx"))
        checks.append(Check("no request-log row lost (load)",
                            load["rows_api"] == load["requests"] and load["rows_missing"] == 0,
                            f"{load['rows_api']:,} rows for {load['requests']:,} requests (admin API);"
                            f" {load['rows_missing']} answered request ids without a row"))
        checks.append(Check("request-log rows agree with answers (load)", load["rows_disagreeing"] == 0,
                            f"{load['rows_disagreeing']} rows disagree"))
        growth = load["rss_growth_pct"]
        judged = cfg.enforce_rss and cfg.requests >= RSS_MIN_REQUESTS
        checks.append(Check(f"RSS flat after warm-up (growth < {100 * RSS_GROWTH_LIMIT:.0f}%)",
                            (growth is not None and growth < 100 * RSS_GROWTH_LIMIT) if judged else None,
                            f"{load['rss_warm_mb']} MB at {100 * WARMUP_FRACTION:.0f}% -> {load['rss_final_mb']} MB"
                            f" at the end: {growth}%" + ("" if judged else
                                                        f" (not judged under {RSS_MIN_REQUESTS:,} requests)")))
    if streams:
        n = streams["streams"]
        checks.append(Check("every long stream completed intact", streams["intact"] == n,
                            f"{streams['intact']} of {n} intact; {streams['outcomes']}"))
        checks.append(Check("every stream served by Bedrock (no fault injected, so no failover)",
                            streams["failed_over"] == 0,
                            f"{streams['failed_over']} failed over; failed attempts: {streams['failed_attempts']}"))
        checks.append(Check("all streams open at the same time", streams["all_open_at_once"],
                            f"streams lasted {streams['duration_min_s']}-{streams['duration_max_s']} s"))
        checks.append(Check("no request-log row lost (streams)",
                            streams["rows_api"] == n and streams["rows_missing"] == 0
                            and streams["rows_disagreeing"] == 0,
                            f"{streams['rows_api']} rows for {n} streams; {streams['rows_missing']} missing,"
                            f" {streams['rows_disagreeing']} disagree"))


def run(cfg: Config, *, log_dir: Path | None = None) -> Report:
    """Start the stack, run both phases, stop everything; never raises (failures land in the report)."""
    report = Report(config=asdict(cfg))
    work = Path(tempfile.mkdtemp(prefix="byollm-soak-"))
    logs = log_dir or work
    procs: list[Proc] = []
    database_url = None
    gateway: Proc | None = None
    started = time.monotonic()
    busy0 = _machine_busy_s()
    ours0 = 0.0
    try:
        if cfg.database_url:
            database_url = stackproc.fresh_pg_database(cfg.database_url)
        sim = stackproc.start_sim(logs, wait=False)  # starts while the database is migrated
        procs.append(sim)
        env = stackproc.serve_env(work / "data", sim.url, database_url)
        operator = stackproc.bootstrap(env)
        stackproc.sim_ready(sim)
        gateway = stackproc.start_serve(env, logs)
        procs.append(gateway)
        setup = stackproc.configure_team(sim.url, gateway.url, operator)
        ours0 = sum(_cpu_seconds(p.pid) for p in procs)
        if cfg.requests:
            report.load = load_phase(cfg, sim, gateway, setup, env)
        if cfg.streams:
            report.streams = stream_phase(cfg, sim, gateway, setup, env)
        ours = sum(_cpu_seconds(p.pid) for p in procs) - ours0 + time.process_time()
        busy = _machine_busy_s() - busy0
        report.notes.append(f"CPU: simulator + gateway + load generator {ours:.0f} CPU-s; other processes on the"
                            f" machine about {max(busy - ours, 0):.0f} CPU-s over"
                            f" {time.monotonic() - started:.0f} s x 2 cores (nothing pinned)")
    except (StackError, httpx.HTTPError, OSError) as exc:
        report.error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # report anything else too, and still clean up
        report.error = f"{type(exc).__name__}: {exc}"
    finally:
        for proc in reversed(procs):
            code = proc.stop()
            if proc is gateway and code not in (0, None, -15):  # uvicorn re-raises the SIGTERM it handled
                report.notes.append(f"byollm serve exited with {code}")
        if gateway is not None:
            problems = _log_problems(gateway)
            report.notes.append(f"byollm serve log: {len(problems)} error lines"
                                + (f", first: {problems[0]}" if problems else ""))
        if database_url and cfg.database_url:
            with contextlib.suppress(Exception):
                stackproc.drop_pg_database(cfg.database_url, database_url)
        shutil.rmtree(work, ignore_errors=True)  # the data directory (logs live here only without log_dir)
    report.notes.append(f"wall time {time.monotonic() - started:.0f} s (processes started, both phases, stopped)")
    judge(cfg, report)
    return report


def print_summary(report: Report) -> None:
    load, streams = report.load, report.streams
    rows: list[tuple[str, str]] = []
    if load:
        rows += [
            ("load: requests / concurrency", f"{load['requests']:,} at c={load['concurrency']}, Bedrock fault rate"
                                             f" {load['fault_rate']:.0%}, fallback fault rate"
                                             f" {load['fallback_fault_rate']:.0%}"),
            ("load: wall time / throughput", f"{load['seconds']} s, {load['requests_per_s']:,} requests/s"
                                             f" (p50 {load['latency_p50_ms']} ms, p99 {load['latency_p99_ms']} ms)"),
            ("load: HTTP status histogram", ", ".join(f"{k}: {v:,}" for k, v in load["status"].items())),
        ]
        rows += [(f"  {outcome}", f"{n:,}") for outcome, n in load["outcomes"].items()]
        rows += [
            ("load: request-log rows", f"{load['rows_api']:,} (admin API), {load['rows_missing']} missing,"
                                       f" {load['rows_disagreeing']} disagreeing; flushed within"
                                       f" {load['flush_wait_s']} s"),
            ("load: failed attempts (request log)", ", ".join(f"{k}: {v:,}" for k, v in
                                                            load["failed_attempts"].items()) or "none"),
            ("load: byollm serve RSS", f"start {load['rss_start_mb']} MB, warm-up {load['rss_warm_mb']} MB, half-way"
                                       f" {load['rss_mid_mb']} MB, final"
                                       f" {load['rss_final_mb']} MB, peak {load['rss_peak_mb']} MB; growth"
                                       f" {load['rss_growth_pct']}% ({load['rss_samples']} samples)"),
        ]
    if streams:
        rows += [
            ("streams: count / length", f"{streams['streams']} at once, {streams['tokens_per_stream']} tokens at"
                                        f" {streams['per_token_s']} s/token; lasted {streams['duration_min_s']}-"
                                        f"{streams['duration_max_s']} s ({streams['seconds']} s in all)"),
            ("streams: outcomes", ", ".join(f"{k}: {v}" for k, v in streams["outcomes"].items())),
            ("streams: failed attempts (request log)", ", ".join(f"{k}: {v:,}" for k, v in
                                                               streams["failed_attempts"].items()) or "none"),
            ("streams: request-log rows", f"{streams['rows_api']} (admin API), {streams['rows_missing']} missing,"
                                          f" {streams['rows_disagreeing']} disagreeing"),
            ("streams: byollm serve RSS", f"before {streams['rss_before_mb']} MB, during {streams['rss_during_mb']}"
                                          f" MB, after {streams['rss_after_mb']} MB;"
                                          f" {streams['rss_per_stream_kb']} KiB per concurrent stream"),
        ]
    width = max((len(name) for name, _ in rows), default=0)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    print()
    for check in report.checks:
        verdict = "PASS" if check.ok else ("FAIL" if check.ok is False else "INFO")
        print(f"{verdict:4}  {check.name}: {check.detail}")
    for example in (load.get("row_examples") or []) + (streams.get("row_examples") or []):
        print(f"      row: {example}")
    if report.error:
        print(f"FAIL  the run stopped: {report.error}")
    for note in report.notes:
        print(note)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=50_000, help="load-phase requests (0: skip the phase)")
    parser.add_argument("--concurrency", type=int, default=64, help="load-phase concurrency")
    parser.add_argument("--fault-rate", type=float, default=0.05, help="share of requests meeting a Bedrock fault")
    parser.add_argument("--fallback-fault-rate", type=float, default=0.02,
                        help="share of direct-Anthropic (fallback) calls that fault too")
    parser.add_argument("--streams", type=int, default=200, help="concurrent long streams (0: skip the phase)")
    parser.add_argument("--stream-seconds", type=float, default=30.0, help="how long each long stream lasts")
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL server to use (a fresh database is created beside this one and dropped)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2,000 requests at c=32, 20 streams of 5 s (RSS growth not judged)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    parser.add_argument("--keep-logs", metavar="DIR", default=None, help="keep the processes' logs in DIR")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.concurrency, args.streams, args.stream_seconds = 2000, 32, 20, 5.0
    if args.requests < 0 or args.concurrency < 1 or args.streams < 0 or args.stream_seconds <= 0:
        parser.error("need --requests >= 0, --concurrency >= 1, --streams >= 0, --stream-seconds > 0")
    if not (0 <= args.fault_rate <= 0.8 and 0 <= args.fallback_fault_rate <= 1):
        parser.error("--fault-rate must be within [0, 0.8] and --fallback-fault-rate within [0, 1]")
    cfg = Config(requests=args.requests, concurrency=args.concurrency, fault_rate=args.fault_rate,
                 fallback_fault_rate=args.fallback_fault_rate, streams=args.streams,
                 stream_seconds=args.stream_seconds, database_url=args.database_url)
    log_dir = Path(args.keep_logs) if args.keep_logs else None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
    report = run(cfg, log_dir=log_dir)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print_summary(report)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
