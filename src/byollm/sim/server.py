"""Running the simulator: in-process on an ephemeral port (tests, demo) or in the foreground (``byollm sim``).

``SimServer`` binds its socket before starting uvicorn in a daemon thread, so ``.url`` is known and
serving as soon as ``start()`` returns. ``state`` is the live ``SimState``: tests may inspect or change it
directly as well as through the ``/_sim`` admin API.

Example::

    with SimServer() as sim:
        client = boto3.client("bedrock-runtime", endpoint_url=sim.url, region_name="us-east-1", ...)
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from byollm.sim.state import SimState
from byollm.sim.world import World, load_world

# Idle connections stay open well past a client pool's idle expiry, as production endpoints do, not uvicorn's 5 s: a
# gateway's pool (aiohttp keeps idle connections 15 s) must not race a simulator closing them early.
KEEP_ALIVE_S = 75

__all__ = ["SimServer", "serve"]


def _as_world(world: World | str | Path | Mapping[str, Any] | None) -> World:
    return world if isinstance(world, World) else load_world(world)


class SimServer:
    """The simulator on a background thread. Use as a context manager or call ``start``/``stop``."""

    def __init__(
        self,
        world: World | str | Path | Mapping[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        from byollm.sim.app import build_app

        self.state = SimState(_as_world(world))
        self.app = build_app(self.state)
        self._host = host
        self._requested_port = port
        self._log_level = log_level
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("SimServer is not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> SimServer:
        import uvicorn

        if self._thread is not None:
            return self
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted connections (no
        # 40 ms wait for a delayed ACK between a response's head and body)
        sock.bind((self._host, self._requested_port))
        sock.listen(2048)
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level=self._log_level,
            lifespan="off",
            timeout_graceful_shutdown=1,
            access_log=False,
            timeout_keep_alive=KEEP_ALIVE_S,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="byollm-sim", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the simulator failed to start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None
        self._server = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    world: World | str | Path | Mapping[str, Any] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 4566,
    log_level: str = "info",
) -> None:
    """Run the simulator in the foreground until interrupted (``byollm sim``)."""
    import uvicorn

    from byollm.sim.app import build_app

    app = build_app(SimState(_as_world(world)))
    uvicorn.run(app, host=host, port=port, log_level=log_level, lifespan="off", access_log=False,
                timeout_keep_alive=KEEP_ALIVE_S)
