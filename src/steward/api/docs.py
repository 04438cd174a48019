"""The interactive API docs at ``/docs``, served from vendored Swagger UI files (no CDN needed)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

from steward.api.auth import public

STATIC_PREFIX = "/static/swagger"


def install_docs(app: FastAPI, openapi_url: str = "/openapi.json") -> None:
    """Serve Swagger UI at ``/docs`` from the ``swagger-ui-bundle`` package's files.

    FastAPI's default page loads its scripts from a CDN, which a server on a closed network cannot
    reach; these files ship with the package instead.
    """
    from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

    app.mount(STATIC_PREFIX, StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{STATIC_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_PREFIX}/favicon-32x32.png",
        )

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False, dependencies=[public()])
