"""Every (method, path) an app serves, read from its route table (through included routers and mounts).

Shared by the security audits that must cover every endpoint, so a new route is in scope the day it lands.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount, Route

__all__ = ["fill", "walk"]

_PARAM = re.compile(r"\{([^}:]+)(:[^}]*)?\}")


def walk(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path template) of every endpoint; HEAD only where GET is absent (Starlette adds it to GET)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:  # FastAPI's include_router wrapper
            yield from walk(list(included.routes), prefix + str(route.include_context.prefix))  # type: ignore[attr-defined]
        elif isinstance(route, Mount):
            yield from walk(list(route.routes), prefix + route.path)
        elif isinstance(route, APIRoute | Route):
            methods = set(route.methods or ())
            if "GET" in methods:
                methods.discard("HEAD")
            for method in sorted(methods):
                yield method, prefix + route.path
        else:
            raise AssertionError(f"a route of a kind these audits cannot enumerate: {route!r}")


def fill(template: str, value: str) -> str:
    """``template`` with every path parameter replaced by ``value``."""
    return _PARAM.sub(value, template)
