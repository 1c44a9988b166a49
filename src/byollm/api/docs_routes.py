"""``/api/docs``: the admin API's OpenAPI document, browsable, with every asset served from this origin.

Why not FastAPI's built-in page: it loads Swagger UI from a public CDN (unpinned, no integrity check) into the
same origin as the admin panel, and starts it with an inline script. Here the assets come from the pinned
``fastapi-offline`` package, the starter is a file of ours, and the page carries the panel's strict CSP, so a
compromised CDN or an injected script cannot run next to an admin's session.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

from byollm.panel.web import SECURITY_HEADERS

__all__ = ["DOCS_PATH", "router"]

DOCS_PATH = "/api/docs"
OPENAPI_PATH = "/api/openapi.json"

_VENDOR = "fastapi_offline"  # ships Swagger UI's release files inside the wheel
_ASSETS: dict[str, tuple[str, str, str]] = {  # name -> (package, file, media type)
    "swagger-ui-bundle.js": (_VENDOR, "static/swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": (_VENDOR, "static/swagger-ui.css", "text/css"),
    "favicon.png": (_VENDOR, "static/favicon.png", "image/png"),
    "init.js": ("byollm.api", "docs_static/init.js", "text/javascript"),
}
_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>byollm admin API</title>
<link rel="icon" href="{DOCS_PATH}/assets/favicon.png">
<link rel="stylesheet" href="{DOCS_PATH}/assets/swagger-ui.css">
</head>
<body data-openapi-url="{OPENAPI_PATH}">
<div id="swagger-ui"></div>
<script src="{DOCS_PATH}/assets/swagger-ui-bundle.js"></script>
<script src="{DOCS_PATH}/assets/init.js"></script>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


def _read(package: str, file: str) -> bytes:
    return (resources.files(package) / file).read_bytes()


@router.get(DOCS_PATH)
async def docs_page() -> HTMLResponse:
    return HTMLResponse(_PAGE, headers=dict(SECURITY_HEADERS))


@router.get(DOCS_PATH + "/assets/{asset}")
async def docs_asset(asset: str) -> Response:
    """One of a fixed set of files (no path from the request reaches the file system)."""
    spec = _ASSETS.get(asset)
    if spec is None:
        raise HTTPException(status_code=404)
    package, file, media_type = spec
    headers = {**SECURITY_HEADERS, "cache-control": "public, max-age=86400"}
    return Response(_read(package, file), media_type=media_type, headers=headers)
