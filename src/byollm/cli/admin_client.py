"""A small synchronous client for the admin API, used by ``byollm admin ...``.

Why the CLI goes over HTTP instead of opening the database: the server is the one place that decides
authorisation and writes the audit log, so a CLI command can do exactly what its token may do, from any
machine. Only ``byollm admin bootstrap`` touches the database directly, because no token exists yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import typer
from rich.console import Console

__all__ = ["AdminApiError", "AdminClient", "api_session"]


@dataclass
class AdminApiError(Exception):
    """An error answer from the admin API, carrying the taxonomy code and remediation it returned."""

    status: int
    code: str
    message: str
    remediation: str

    def __str__(self) -> str:
        return f"{self.message} ({self.code}). {self.remediation}"


class AdminClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/api/v1",
            headers={"authorization": f"Bearer {token}", "user-agent": "byollm-cli"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise AdminApiError(0, "unreachable", f"cannot reach the byollm server ({type(exc).__name__})",
                                "Check the --url (or BYOLLM_URL) and that `byollm serve` is running.") from exc
        if response.status_code >= 400:
            raise _error_from(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None} or None)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)


def _error_from(response: httpx.Response) -> AdminApiError:
    try:
        info = response.json().get("error", {})
    except ValueError:
        info = {}
    return AdminApiError(
        status=response.status_code,
        code=str(info.get("code", "http_error")),
        message=str(info.get("message", f"HTTP {response.status_code}")),
        remediation=str(info.get("remediation", "")),
    )


@contextmanager
def api_session(url: str, token: str, *, err: Console | None = None) -> Iterator[AdminClient]:
    """An admin-API client for one CLI command; an API error ends the command with its class and remediation
    on stderr (exit 1), a missing token with a hint (exit 2)."""
    err = err or Console(stderr=True, highlight=False)
    if not token:
        err.print("[red]No token.[/] Pass --token or set BYOLLM_TOKEN (`byollm admin bootstrap` prints the first).")
        raise typer.Exit(2)
    client = AdminClient(url, token)
    try:
        yield client
    except AdminApiError as exc:
        err.print(f"[red]Error:[/] {exc.message} [dim]({exc.code})[/]")
        if exc.remediation:
            err.print(exc.remediation)
        raise typer.Exit(1) from None
    finally:
        client.close()
