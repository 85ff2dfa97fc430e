"""Swagger UI at /docs and ReDoc at /redoc, working without internet access.

FastAPI's own pages load their scripts from a CDN, which closed networks cannot reach. The
`fastapi-offline` package ships the same Swagger UI and ReDoc bundles; we serve its files.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_UI_PATH = "/docs"
REDOC_PATH = "/redoc"
ASSETS_PATH = "/docs/assets"
# (package, folder inside it) holding swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js.
ASSETS_PACKAGE = ("fastapi_offline", "static")

# The pages may load only from this server: ReDoc would otherwise fetch its logo from a CDN.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",  # the pages' inline start-up script
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "worker-src 'self' blob:",  # ReDoc's search index
    ]
)

SWAGGER_UI_PARAMETERS = {
    # Show how long each "Try it out" call took, and no validator badge (it would call out).
    "displayRequestDuration": True,
    "validatorUrl": None,
}


def install_docs(app: FastAPI) -> None:
    """Mount the bundled assets and add the two pages (the app is built with docs_url=None)."""
    app.mount(ASSETS_PATH, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")

    def url(request: Request, path: str) -> str:
        # Behind a proxy that strips a prefix, every URL the page loads needs the prefix back.
        return f"{request.scope.get('root_path', '')}{path}"

    @app.get(SWAGGER_UI_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=url(request, app.openapi_url or "/openapi.json"),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=url(request, f"{ASSETS_PATH}/swagger-ui-bundle.js"),
            swagger_css_url=url(request, f"{ASSETS_PATH}/swagger-ui.css"),
            swagger_favicon_url=url(request, f"{ASSETS_PATH}/favicon.png"),
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )
        page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return page

    @app.get(REDOC_PATH, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=url(request, app.openapi_url or "/openapi.json"),
            title=f"{app.title} - ReDoc",
            redoc_js_url=url(request, f"{ASSETS_PATH}/redoc.standalone.js"),
            redoc_favicon_url=url(request, f"{ASSETS_PATH}/favicon.png"),
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return page
