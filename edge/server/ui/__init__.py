"""The chat page at ``/``: static files from ``static/``, served by the API's own app (``--no-ui`` turns it off).

The page is plain HTML, CSS and JavaScript modules with its libraries vendored in ``static/vendor/``, so it
loads nothing from anywhere but this server. Its Content-Security-Policy allows scripts, styles and
connections from this origin only and no inline script at all: even if a sanitizer missed something in a
model's answer, the browser would refuse to run it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])
# no-cache: the browser revalidates (ETag) so an upgraded edge serves its new page at once
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}
ASSET_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


class _Assets(StaticFiles):
    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(ASSET_HEADERS)
        return response


def ui_routes(*, api_key_required: bool) -> list[BaseRoute]:
    """``/`` (the page), ``/ui/config.json`` (what the page must know before its first API call), ``/ui/*``."""

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    async def config(request: Request) -> Response:
        # with a key the page asks for it before calling /v1, instead of learning it from a 401
        return JSONResponse({"api_key_required": api_key_required}, headers={"Cache-Control": "no-store"})

    return [
        Route("/", page, methods=["GET"]),
        Route("/ui/config.json", config, methods=["GET"]),
        Mount("/ui", app=_Assets(directory=STATIC), name="ui"),
    ]
