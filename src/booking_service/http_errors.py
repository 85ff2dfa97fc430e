"""The one mapping of errors to HTTP: every error, expected or not, answers with the envelope.

Domain errors (`errors.AppError`) carry their status, code and headers; the framework's own
(request validation, routing, unexpected exceptions) are mapped here too. `install_error_handlers`
registers the handlers once, in `create_app`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from booking_service.errors import NOT_JSON, VALIDATION_FAILED, AppError
from booking_service.schemas.errors import ErrorDetail, error_body

# The logger the unexpected-error lines have always had, whatever module writes them: what an
# operator filters or alerts on.
log = logging.getLogger("booking_service.errors")


def error_response(
    status_code: int,
    message: str,
    code: str,
    *,
    details: Sequence[ErrorDetail] | None = None,
    headers: Mapping[str, str] | None = None,
    fields: Mapping[str, Any] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(message, code, details, fields),
        status_code=status_code,
        headers=dict(headers or {}),
    )


# Codes for errors raised by the framework itself rather than by our services. FastAPI's only
# 400 is a body it could not decode (not UTF-8, nested too deeply, a number too long); JSON
# that is merely malformed is a 422.
HTTP_STATUS_CODES = {
    400: "malformed_body",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _validation_details(errors: Sequence[Any]) -> list[ErrorDetail]:
    # Only loc/msg/type: `input` and `ctx` can hold the raw (possibly secret or unserializable)
    # value the client sent.
    return [
        ErrorDetail(
            loc=[part if isinstance(part, int) else str(part) for part in err.get("loc", ())],
            msg=str(err.get("msg", "")),
            type=str(err.get("type", "value_error")),
        )
        for err in errors
    ]


async def _app_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(
        exc.status_code,
        exc.message,
        exc.code,
        details=exc.details,
        headers=exc.headers,
        fields=exc.fields,
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if isinstance(exc.body, bytes | bytearray):
        # FastAPI hands the raw bytes over only when the Content-Type was not JSON.
        return error_response(415, NOT_JSON, "unsupported_media_type")
    return error_response(
        422,
        VALIDATION_FAILED,
        "validation_error",
        details=_validation_details(exc.errors()),
    )


def _allowed_methods(request: Request) -> str:
    """Every method served at this path. Starlette's 405 names only the methods of the first
    route matching the path, and one path may be declared by several routers (GET and PATCH
    /events/{eventId})."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_STATUS_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "Request failed"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return error_response(exc.status_code, message, code, headers=headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # The id ties the client's report to the log line; nothing of the error reaches the client.
    # (RequestInstrumentation, outermost, sets the same id in the X-Request-ID header.)
    request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex
    log.error(
        "unhandled error on %s %s (request id %s)",
        request.method,
        request.url.path,
        request_id,
        exc_info=exc,
    )
    return error_response(
        500,
        f"Internal server error (request id {request_id})",
        "internal_error",
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
