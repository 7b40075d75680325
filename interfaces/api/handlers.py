"""The app's exception handlers: every failure answers `{"error": {"type", "message"}}`.

No `from __future__ import annotations`: FastAPI reads the handlers' signatures at runtime.
"""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from interfaces.api.errors import Unauthorized, api_error, content_kind, error_headers
from interfaces.api.options import OPTION_NAMES
from interfaces.common import ErrorBody, ErrorDetail
from tools.errors import BrushEditError

logger = logging.getLogger("interfaces.api")  # one logger for the whole API


RETRY_AFTER_503_S = 30
"""`Retry-After` of a 503: a model loading, the database or the VLM server away for a while."""


def error_response(status: int, detail: ErrorDetail, headers: dict | None = None) -> JSONResponse:
    if status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_503_S), **(headers or {})}
    return JSONResponse(
        ErrorBody(error=detail).model_dump(mode="json"), status_code=status, headers=headers
    )


async def brushedit_error(request: Request, exc: BrushEditError) -> JSONResponse:
    status, detail = api_error(exc)
    if status >= 500:  # the server's state (a full disk, busy, a model server): one line
        logger.warning("%s %s: %s: %s", request.method, request.url.path, detail.type,
                       detail.message)
    return error_response(status, detail, headers=error_headers(exc))


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(*api_error(exc))


async def unauthorized(request: Request, exc: Unauthorized) -> JSONResponse:
    challenge = 'Bearer realm="brushedit"'
    if exc.basic:
        challenge += ', Basic realm="brushedit", charset="UTF-8"'
    return error_response(
        401,
        ErrorDetail(type="Unauthorized",
                    message="send the server's token as `Authorization: Bearer <token>`"),
        headers={"WWW-Authenticate": challenge},
    )


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    route = request.scope.get("route")
    kind = content_kind(request.headers.get("content-type", ""))
    wants = getattr(route, "openapi_extra", None) or {}
    if wants.get("x-body") == "form" and kind not in ("form", "none"):
        return error_response(415, ErrorDetail(
            type="UnsupportedMediaType",
            message="send the edit as multipart/form-data (fields `instruction`, `image`, "
                    "`mask`, options)"))
    if wants.get("x-body") == "json" and kind not in ("json", "none"):
        return error_response(415, ErrorDetail(
            type="UnsupportedMediaType", message="send the body as application/json"))
    parts = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            parts.append("the body is not valid JSON"
                         + (f" ({err['ctx']['error']})" if err.get("ctx") else ""))
            continue
        names = [str(p) for p in err.get("loc", ())
                 if p not in ("body", "query", "path", "header")]
        if names and names[0] in OPTION_NAMES:
            names.insert(0, "options")
        loc = ".".join(names).replace("_", "-") if err.get("loc", ("",))[0] == "header" \
            else ".".join(names)
        parts.append(f"`{loc}`: {err.get('msg')}" if loc else str(err.get("msg")))
    return error_response(
        422, ErrorDetail(type="InvalidRequestError", message="; ".join(parts) + ".")
    )


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    kind = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed"}.get(
        exc.status_code, "HTTPError")
    message = str(exc.detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        path = request.scope.get("path", "")
        methods = {m for r in request.app.routes if getattr(r, "methods", None)
                   and r.path_regex.match(path) for m in r.methods}
        allowed = ", ".join(sorted(methods)) or headers.get("Allow", "")
        headers["Allow"] = allowed
        message = f"{request.method} is not allowed on {path}; allowed: {allowed}"
    elif exc.status_code == 400:
        message = f"the request body cannot be parsed ({str(exc.detail).rstrip('.')})"
    elif exc.status_code == 404:
        message = f"no route {request.url.path}; see /docs for the routes"
    return error_response(exc.status_code, ErrorDetail(type=kind, message=message),
                          headers=headers or None)


def install_error_handlers(app: FastAPI) -> None:
    handlers: dict[Any, Any] = {
        BrushEditError: brushedit_error,
        Exception: unexpected_error,
        Unauthorized: unauthorized,
        RequestValidationError: validation_error,
        StarletteHTTPException: http_error,
    }
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, handler)
