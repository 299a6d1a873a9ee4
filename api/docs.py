"""`/docs` (Swagger UI) and `/redoc` served without a CDN.

FastAPI's own pages load their JavaScript and CSS from a CDN, so they render blank on a
machine without internet. These pages are FastAPI's (same HTML, same OAuth2 redirect), with
the assets served by the app itself from the `fastapi-offline` package (FastAPI's
"self-hosting" recipe). The app must be created with `docs_url=None, redoc_url=None`.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/assets"
# swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
# Swagger UI would otherwise ask validator.swagger.io for a badge on non-local specs.
SWAGGER_PARAMETERS = {"validatorUrl": None}


def install_offline_docs(app: FastAPI) -> None:
    """Add `/docs`, `/docs/oauth2-redirect` and `/redoc`, with their assets, to `app`."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("create the app with docs_url=None, redoc_url=None")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or f"{DOCS_URL}/oauth2-redirect"
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=_under_root(request, openapi_url),
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=_under_root(request, oauth2_redirect_url),
            swagger_js_url=_under_root(request, f"{ASSETS_URL}/swagger-ui-bundle.js"),
            swagger_css_url=_under_root(request, f"{ASSETS_URL}/swagger-ui.css"),
            swagger_favicon_url=_under_root(request, f"{ASSETS_URL}/favicon.png"),
            swagger_ui_parameters={**SWAGGER_PARAMETERS, **(app.swagger_ui_parameters or {})},
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=_under_root(request, openapi_url),
            title=f"{app.title} - ReDoc",
            redoc_js_url=_under_root(request, f"{ASSETS_URL}/redoc.standalone.js"),
            redoc_favicon_url=_under_root(request, f"{ASSETS_URL}/favicon.png"),
            with_google_fonts=False,
        )


def _under_root(request: Request, path: str) -> str:
    """`path` under the prefix a proxy serves the app at (the ASGI `root_path`)."""
    return f"{request.scope.get('root_path', '')}{path}"
