"""The interactive API docs, /docs (Swagger UI) and /redoc (ReDoc), served wholly by this service.

FastAPI's own pages load both from a CDN, so they are blank without internet access, which is
how containers often run. Here the scripts and styles come from the installed package
`fastapi-offline` (MIT licence; it ships Swagger UI, Apache-2.0, and ReDoc, MIT); only their
files are used, under /docs/static/.

ReDoc's sidebar shows Redocly's logo from their CDN, with no option to turn it off; its script is
served with that one URL replaced by an empty image, so the page makes no request elsewhere
(the policy below would block it anyway, with an error in the console).

The pages contain no inline script (Swagger UI starts from static/swagger-init.js), so their
Content-Security-Policy allows scripts from this origin only.
"""

from __future__ import annotations

import functools
import html
import importlib.util
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

router = APIRouter(include_in_schema=False)

STATIC_URL = "/docs/static"


def _headers(*directives: str) -> dict[str, str]:
    policy = ["default-src 'self'", *directives, "frame-ancestors 'none'"]
    return {"Content-Security-Policy": "; ".join(policy), "X-Content-Type-Options": "nosniff"}


# Each page allows what its UI needs, as seen in a browser (tests/api/test_docs_browser.py).
SWAGGER_HEADERS = _headers(
    "img-src 'self' data:",  # Swagger UI draws some icons from data: URLs
)
REDOC_HEADERS = _headers(
    "img-src 'self' data:",  # the logo's empty image, below
    "style-src 'self' 'unsafe-inline'",  # its styled-components add <style> tags
    "worker-src 'self' blob:",  # its search index runs in a worker made from a blob: URL
)


def _static_dir(package: str) -> Path:
    # Found, not imported: only the package's files are used.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{package} is not installed (it ships the docs' scripts)")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def _assets() -> dict[str, tuple[Path, str]]:
    vendor = _static_dir("fastapi_offline")
    own = Path(__file__).resolve().parents[1] / "static"
    script = "text/javascript; charset=utf-8"
    return {
        "swagger-ui-bundle.js": (vendor / "swagger-ui-bundle.js", script),
        "swagger-ui.css": (vendor / "swagger-ui.css", "text/css; charset=utf-8"),
        "redoc.standalone.js": (vendor / "redoc.standalone.js", script),
        "favicon.png": (vendor / "favicon.png", "image/png"),
        "swagger-init.js": (own / "swagger-init.js", script),
    }


# A fixed list, not a directory: nothing else on disk can be named.
ASSETS = _assets()

_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
_EMPTY_IMAGE = b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"


@functools.cache  # read on first use: 1 MB that most processes never serve
def _redoc_script() -> bytes:
    script = ASSETS["redoc.standalone.js"][0].read_bytes()
    if _REDOC_LOGO not in script:  # another ReDoc version: the browser test will tell
        return script
    return script.replace(_REDOC_LOGO, _EMPTY_IMAGE)


@router.get(STATIC_URL + "/{name}")
async def asset(name: str) -> Response:
    if name not in ASSETS:
        raise HTTPException(404, "Not Found")
    path, media_type = ASSETS[name]
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=3600"}
    if name == "redoc.standalone.js":
        return Response(_redoc_script(), media_type=media_type, headers=headers)
    return FileResponse(path, media_type=media_type, headers=headers)


def _page(request: Request, title: str, body: str, headers: dict[str, str]) -> HTMLResponse:
    static = html.escape(request.scope.get("root_path", "") + STATIC_URL)
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(request.app.title)} - {title}</title>
<link rel="icon" type="image/png" href="{static}/favicon.png">
{body.format(static=static, openapi=_openapi_url(request))}
</html>
"""
    return HTMLResponse(page, headers=headers)


def _openapi_url(request: Request) -> str:
    return html.escape(request.scope.get("root_path", "") + (request.app.openapi_url or ""))


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    body = """<link rel="stylesheet" href="{static}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{static}/swagger-ui-bundle.js"></script>
<script src="{static}/swagger-init.js"></script>
</body>"""
    return _page(request, "Swagger UI", body, SWAGGER_HEADERS)


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    body = """</head>
<body>
<redoc spec-url="{openapi}"></redoc>
<script src="{static}/redoc.standalone.js"></script>
</body>"""
    return _page(request, "ReDoc", body, REDOC_HEADERS)
