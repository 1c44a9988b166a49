"""Helpers for crash tests: a real ``byollm serve`` to SIGKILL and restart, traffic that remembers when each
response completed, and straight reads of the tables a crash must leave consistent.

Why a process group kill: ``spawn_byollm`` starts ``byollm serve`` in its own session, so killing the group
is what a container or host crash does to the gateway (tools run in sessions of their own and outlive it,
as they would). Why wall-clock completion times: the request-log writer's loss bound is a time window
before the kill, so the test needs each response's completion on the same clock as the kill and as the
rows the gateway wrote (wall-clock time: one host, one clock).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from byollm.settings import Settings
from byollm.store import Store
from support.runs_stack import Proc, byollm_env, free_port, spawn_server, wait_healthy
from support.stack import Stack

# The shared decision: a spawned gateway pointing teams at the loopback simulator allows loopback endpoints.
GATEWAY_ENV = {"BYOLLM_ALLOWED_INTERNAL_NETWORKS": "127.0.0.0/8", "BYOLLM_RUN_WORKER_EMBEDDED": "1"}


def spawn_gateway(stack: Stack, log: Path, *, wait: bool = True, **env: str) -> Proc:
    """``byollm serve`` with its embedded run worker, on the stack's database and simulator."""
    return spawn_server(stack, log, wait=wait, **{**GATEWAY_ENV, **env})


# Imports what ``byollm serve`` imports, then waits for a line on stdin before running it.
_SPARE = ("import sys, uvicorn, byollm.api.app, byollm.services, byollm.cli.main as cli; sys.stdin.readline();"
          " sys.argv = ['byollm', *sys.argv[1:]]; cli.main()")


@dataclass
class Spare:
    """A fresh Python process that will become ``byollm serve`` on ``serve()``.

    Why: on a busy two-core machine importing byollm takes seconds, and the crash tests restart the gateway
    right after the kill. The spare pays for the imports while the first gateway still runs, opens nothing
    (no database, no socket, no settings read) until told to serve, and then runs the same CLI entry point
    as ``byollm serve`` - so what the test measures is a restart on the crashed gateway's database."""

    process: subprocess.Popen[bytes]
    log: Path
    url: str
    served: bool = False

    def serve(self) -> Proc:
        assert self.process.stdin is not None
        self.served = True
        self.process.stdin.write(b"serve\n")
        self.process.stdin.close()
        proc = Proc(process=self.process, log=self.log, url=self.url)
        wait_healthy(proc)
        return proc

    def discard(self) -> None:
        """Kill the spare if it never served (a served one is stopped as the gateway it became)."""
        if not self.served and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def spare_gateway(stack: Stack, log: Path, **env: str) -> Spare:
    port = free_port()
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", _SPARE, "serve", "--port", str(port), "--log-level", "warning"],
        env=byollm_env(stack, **{**GATEWAY_ENV, **env}), stdin=subprocess.PIPE, stdout=handle,
        stderr=subprocess.STDOUT, start_new_session=True)
    return Spare(process=process, log=log, url=f"http://127.0.0.1:{port}")


def crash(proc: Proc) -> float:
    """SIGKILL the gateway's whole process group; returns the time (epoch seconds) just before the signal."""
    at = time.time()
    os.killpg(proc.process.pid, signal.SIGKILL)
    proc.process.wait(10)
    return at


def query(settings: Settings, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Rows of one SELECT, read straight from the database (not through byollm's API or caches)."""

    async def read() -> list[dict[str, Any]]:
        async with Store.from_settings(settings) as store, store.engine.connect() as conn:
            rows = await conn.execute(text(sql), dict(params or {}))
            return [dict(r._mapping) for r in rows]

    return asyncio.run(read())


@dataclass
class Load:
    """``threads`` clients sending small non-streaming messages to ``url`` until stopped or the gateway dies.

    ``completed`` holds (request id, time the whole response was read) per answered request, in epoch
    seconds: the same clock as the gateway's stored timestamps on this host;
    ``broken`` counts requests that were in flight when the connection died (no response, or half of one).
    """

    url: str
    token: str
    model: str
    threads: int = 6
    completed: list[tuple[str, float]] = field(default_factory=list)
    broken: int = 0
    refused: int = 0  # requests answered with an error status (should stay 0)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for i in range(self.threads):
            worker = threading.Thread(target=self._send, args=(i,), name=f"crash-load-{i}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(30)

    def _send(self, index: int) -> None:
        body = {"model": self.model, "max_tokens": 32, "messages": [{"role": "user", "content": f"load {index}"}]}
        headers = {"authorization": f"Bearer {self.token}", "anthropic-version": "2023-06-01"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.post("/v1/messages", json=body)
                    done = time.time()
                except httpx.HTTPError:
                    with self._lock:
                        self.broken += 1
                    return  # the gateway is gone
                with self._lock:
                    if response.status_code == 200:
                        self.completed.append((response.headers["x-request-id"], done))
                    else:
                        self.refused += 1


@dataclass
class SlowStream:
    """One streaming request read in a thread; records the request id, the events read and how it ended."""

    url: str
    token: str
    body: Mapping[str, Any]
    request_id: str | None = None
    events: list[str] = field(default_factory=list)
    error: BaseException | None = None
    _first: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self, timeout: float = 20.0) -> None:
        """Start, and return once the first content event arrived (the stream is committed)."""
        self._thread = threading.Thread(target=self._read, name="crash-stream", daemon=True)
        self._thread.start()
        assert self._first.wait(timeout), f"no content from the stream (error: {self.error!r})"

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join(30)

    def _read(self) -> None:
        headers = {"authorization": f"Bearer {self.token}", "anthropic-version": "2023-06-01"}
        try:
            with httpx.Client(base_url=self.url, headers=headers, timeout=30) as client, \
                    client.stream("POST", "/v1/messages", json={**self.body, "stream": True}) as response:
                assert response.status_code == 200, response.read()
                self.request_id = response.headers["x-request-id"]
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        self.events.append(line[7:])
                        if line == "event: content_block_delta":
                            self._first.set()
        except BaseException as exc:
            self.error = exc
        finally:
            self._first.set()
