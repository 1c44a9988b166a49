"""The in-process server's listening sockets hand TCP_NODELAY to every connection they accept.

Why: asyncio's server on a socket it is given does not set TCP_NODELAY per connection, so a response written
as head then body waited for the client's delayed ACK, about 40 ms per request on a kept-alive connection
(the demo and every test stack paid it). The option is inherited from the listening socket on Linux, so the
accepted connection itself is checked here, not just the listener.
"""

from __future__ import annotations

import socket

from byollm.api.serving import bind_socket
from byollm.sim import SimServer


def _accepted_nodelay(listener: socket.socket) -> int:
    listener.listen(1)
    with socket.create_connection(listener.getsockname()[:2]), listener.accept()[0] as accepted:
        return accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_byollm_server_sockets_accept_connections_without_nagle() -> None:
    with bind_socket() as listener:
        assert _accepted_nodelay(listener) != 0


def test_simulator_socket_has_nodelay() -> None:
    with SimServer() as sim:
        sock = sim._server.servers[0].sockets[0]  # type: ignore[union-attr]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
