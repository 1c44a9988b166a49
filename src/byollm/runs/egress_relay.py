"""The in-sandbox end of a tool's egress path (standard library only: it runs under the system Python inside
the sandbox, never importing byollm).

Why it exists: a sandboxed tool lives in its own network namespace, where nothing but its own loopback
exists. Tools expect an HTTP proxy at a TCP address (``HTTP_PROXY``/``HTTPS_PROXY``), so this relay listens on
``127.0.0.1:<port>`` inside the namespace and copies every connection, byte for byte, to the unix socket of
byollm's egress proxy (``runs.egress``), which is bound into the sandbox. The relay decides nothing: the
allow-list and the internal-address guard live in the proxy, outside the sandbox, where the tool cannot
change them. Killing the relay only cuts the tool's own network.

Usage: ``python3 -I -S -c <this file's text> <unix socket> <port> <command...>``: serves while ``command``
runs, exits with its status.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import subprocess
import sys
import threading


def _close(selector: selectors.BaseSelector, *socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(sock)
        sock.close()


def _serve(listener: socket.socket, path: str) -> None:
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    while True:
        for key, _ in selector.select():
            if key.data is None:
                client, _ = listener.accept()
                upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    upstream.connect(path)
                except OSError:
                    client.close()
                    upstream.close()
                    continue
                selector.register(client, selectors.EVENT_READ, upstream)
                selector.register(upstream, selectors.EVENT_READ, client)
                continue
            source, target = key.fileobj, key.data
            assert isinstance(source, socket.socket)
            assert isinstance(target, socket.socket)
            try:
                data = source.recv(65536)
                if data:
                    target.sendall(data)
                    continue
            except OSError:
                pass
            _close(selector, source, target)


def main(argv: list[str]) -> int:
    path, port, *command = argv
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(port)))
    listener.listen(64)
    threading.Thread(target=_serve, args=(listener, path), daemon=True).start()
    return subprocess.call(command)  # noqa: S603 - the sandboxed command itself, inside the sandbox


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
