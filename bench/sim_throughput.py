"""Throughput of the simulator's Bedrock InvokeModel (non-streaming, zero latency) on one core.

The simulator runs in a child process (uvicorn, one worker) pinned to CPU 0; this process is the load
generator, pinned to CPU 1. Requests are SigV4-signed with botocore ahead of time (a pool of distinct
signed requests, replayed round-robin: the simulator verifies every one of them in full), then sent over
keep-alive connections by a minimal asyncio HTTP/1.1 client so the generator is not the bottleneck.

    .venv/bin/python bench/sim_throughput.py [--seconds 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import time
from multiprocessing.connection import Connection

MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"
KEY = ("AKIASIMDEV0000000001", "simDevSecretKey0000000000000000000000001")


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def _serve(conn: Connection, cpu: int) -> None:
    import uvicorn

    from byollm.sim.app import build_app
    from byollm.sim.state import SimState
    from byollm.sim.world import default_world

    _pin(cpu)
    world = default_world()
    for account in world.accounts.values():
        account.quotas.clear()
    app = build_app(SimState(world))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    conn.send(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


def _presign(port: int, count: int) -> list[bytes]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    creds = Credentials(*KEY)
    path = "/model/" + MODEL.replace(":", "%3A") + "/invoke"
    out = []
    for i in range(count):
        body = json.dumps(
            {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": f"benchmark request {i}"}],
            }
        ).encode()
        req = AWSRequest(
            method="POST",
            url=f"http://127.0.0.1:{port}{path}",
            data=body,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        SigV4Auth(creds, "bedrock", "us-east-1").add_auth(req)
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in req.headers.items() if k.lower() != "host")
        out.append(head.encode() + b"\r\n" + body)
    return out


async def _worker(port: int, requests: list[bytes], offset: int, stop: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while time.monotonic() < stop:
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            counts[0] += 1
    finally:
        writer.close()


async def _load(port: int, requests: list[bytes], seconds: float, connections: int) -> float:
    warm = [0]
    await asyncio.gather(*(_worker(port, requests, c, time.monotonic() + 1.0, warm) for c in range(connections)))
    counts = [0]
    started = time.monotonic()
    stop = started + seconds
    await asyncio.gather(*(_worker(port, requests, c * 7, stop, counts) for c in range(connections)))
    return counts[0] / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--signed", type=int, default=500, help="distinct pre-signed requests")
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child, 0), daemon=True)
    server.start()
    try:
        port = parent.recv()
        _pin(1)
        requests = _presign(port, args.signed)
        try:
            import uvloop

            rate = uvloop.run(_load(port, requests, args.seconds, args.connections))
        except ImportError:
            rate = asyncio.run(_load(port, requests, args.seconds, args.connections))
        print(f"InvokeModel (non-streaming, zero delay, 1 server core): {rate:,.0f} requests/second")
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    main()
