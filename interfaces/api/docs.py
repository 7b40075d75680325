"""The OpenAPI document and the interactive docs (`/healthz` too: the routes about the API).

Each route declares the error statuses it can return (`ErrorDocs`); the document keeps only
those and describes every schema field. Swagger UI and ReDoc are served from the files of the
fastapi-offline package, never a CDN, behind the same token as the rest.

No `from __future__ import annotations`: FastAPI reads the route signatures at runtime.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse

from interfaces.api.models import FIELD_DOCS, Health, package_version
from interfaces.common import ErrorBody, NotFoundError
from tools.errors import ConfigError


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    texts = {
        400: "Malformed request",
        401: "Missing or wrong bearer token",
        404: "Unknown session, edit or artifact",
        409: "The session or edit is busy, or in a state that does not allow this",
        413: "Request body or image too large",
        415: "Wrong content type for this route",
        422: "Invalid image, mask, instruction, options or parameters",
        503: "Models cannot be loaded, or the session database is unreachable",
    }
    return {code: {"model": ErrorBody, "description": texts[code]} for code in codes}


def _docs_static_dir() -> Path | None:
    """Swagger UI and ReDoc files shipped by the fastapi-offline package, if installed."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    path = Path(fastapi_offline.__file__).parent / "static"
    return path if (path / "swagger-ui-bundle.js").is_file() else None


DOCS_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}


@dataclass
class ErrorDocs:
    """The error statuses each route declares, for its `responses` and the OpenAPI document."""

    secured: tuple[int, ...] = ()
    """`(401,)` when the server has a token."""
    routes: dict[tuple[str, str], tuple[int, ...]] = field(default_factory=dict)

    def __call__(self, path: str, method: str, *codes: int) -> dict[int | str, dict[str, Any]]:
        """Declare a route's error statuses: its own, 401 with a token, and 503 (every route
        but /healthz opens the components, which may fail to load or reach the database)."""
        codes = tuple(sorted({*codes, *self.secured, 503}))
        self.routes[(path, method)] = codes
        return error_responses(*codes)


def finish_openapi(
    spec: dict[str, Any], route_errors: dict[tuple[str, str], tuple[int, ...]]
) -> dict[str, Any]:
    """Only the statuses each route can return; every schema field described."""
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            declared = route_errors.get((path, method))
            if declared is None:
                continue
            responses = operation.get("responses", {})
            for code in list(responses):
                if code.isdigit() and int(code) >= 400 and int(code) not in declared:
                    del responses[code]
            if "422" in responses:
                responses["422"] = {
                    "description": error_responses(422)[422]["description"],
                    "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                }
            if 401 not in declared:
                operation.pop("security", None)
        _document_headers(operations)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(_event_schemas())
    _binary_uploads(spec)
    for name, schema in schemas.items():
        docs = FIELD_DOCS.get(name, {})
        for prop, body in schema.get("properties", {}).items():
            if not body.get("description") and prop in docs:
                body["description"] = docs[prop]
    return spec


RETRY_AFTER = {"description": "Seconds to wait before asking again.",
               "schema": {"type": "integer", "minimum": 0}}


def _document_headers(operations: dict[str, Any]) -> None:
    """`Location` and `Retry-After` of a 202, `Retry-After` of a 503, as the answers send them."""
    for operation in operations.values():
        responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
        if "202" in responses:
            responses["202"]["headers"] = {
                "Location": {"description": "The edit's URL (poll it).",
                             "schema": {"type": "string"}},
                "Retry-After": RETRY_AFTER,
            }
        if "503" in responses:
            responses["503"]["headers"] = {"Retry-After": RETRY_AFTER}


def _event_schemas() -> dict[str, Any]:
    """`EditEvent` (what each server-sent event holds) and its parts, as component schemas."""
    from pydantic import TypeAdapter

    from interfaces.api.events import EditEvent

    schema = TypeAdapter(EditEvent).json_schema(ref_template="#/components/schemas/{model}")
    parts = schema.pop("$defs", {})
    schema["title"] = "EditEvent"
    schema["description"] = ("One server-sent event of an edit: its `data`, a JSON object whose "
                             "`type` is also the SSE `event:` name.")
    return {**parts, "EditEvent": schema}


def _binary_uploads(node: Any) -> None:
    """File fields as `format: binary` (OpenAPI 3.0 style, which client generators read as
    uploads) instead of `contentMediaType`, which they read as text."""
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("contentMediaType") == \
                "application/octet-stream":
            del node["contentMediaType"]
            node["format"] = "binary"
        for value in node.values():
            _binary_uploads(value)
    elif isinstance(node, list):
        for value in node:
            _binary_uploads(value)


def add_meta_routes(app: FastAPI, docs_auth: list[Any], errors: ErrorDocs) -> None:
    """Register `/healthz`, `/openapi.json`, `/docs`, `/redoc` and the docs' static files."""

    @app.get("/healthz", response_model=Health, tags=["meta"])
    def get_health() -> Health:
        """Liveness: answers without loading any model (and without a token)."""
        return Health(version=package_version())

    errors.routes[("/healthz", "get")] = ()
    static_dir = _docs_static_dir()

    def openapi_document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = finish_openapi(
                get_openapi(title=app.title, version=app.version, description=app.description,
                            routes=app.routes),
                errors.routes,
            )
        return app.openapi_schema

    app.openapi = openapi_document  # type: ignore[method-assign]

    @app.get("/openapi.json", include_in_schema=False, dependencies=docs_auth)
    def openapi_json() -> JSONResponse:
        return JSONResponse(openapi_document())

    def docs_assets() -> Path:
        if static_dir is None:
            raise ConfigError(
                "the interactive docs need the fastapi-offline package on the server; "
                "/openapi.json works without it"
            )
        return static_dir

    def docs_page(path: str, render: Callable[[], Response]) -> None:
        """An interactive docs page, refused in a sentence where its files are not installed."""

        @app.get(path, include_in_schema=False, dependencies=docs_auth)
        def page() -> Response:
            docs_assets()
            return render()

    docs_page("/docs", lambda: get_swagger_ui_html(
        openapi_url="/openapi.json", title=f"{app.title} - docs",
        swagger_js_url="/docs/static/swagger-ui-bundle.js",
        swagger_css_url="/docs/static/swagger-ui.css",
        swagger_favicon_url="/docs/static/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},
    ))
    docs_page("/redoc", lambda: get_redoc_html(
        openapi_url="/openapi.json", title=f"{app.title} - ReDoc",
        redoc_js_url="/docs/static/redoc.standalone.js",
        redoc_favicon_url="/docs/static/favicon.png", with_google_fonts=False,
    ))

    @app.get("/docs/static/{name}", include_in_schema=False, dependencies=docs_auth)
    def docs_static(name: str) -> FileResponse:
        if name not in DOCS_FILES:
            raise NotFoundError(f"no docs file {name[:80]!r}")
        return FileResponse(docs_assets() / name, media_type=DOCS_FILES[name],
                            headers={"Cache-Control": "public, max-age=86400"})
