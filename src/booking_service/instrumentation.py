"""Per-request observation: a request id, one log line and the latency metric.

A plain ASGI middleware (not BaseHTTPMiddleware, which costs more per request and runs the app
in another task, out of reach of context variables). It wraps the whole application, error
handlers included, so a 500 also carries its `X-Request-ID` and is counted.
"""

from __future__ import annotations

import logging
import os
import re
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from booking_service import metrics
from booking_service.logs import FIELDS, REQUEST_ID

access_log = logging.getLogger("booking_service.access")

REQUEST_ID_HEADER = b"x-request-id"
# An incoming id is kept only if it is short and plain, so it cannot forge log lines or bloat them.
SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:+/=-]{1,128}")

# Any other method is labelled OTHER: clients must not be able to mint new metric series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"


def incoming_request_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            return value.decode("ascii") if SAFE_REQUEST_ID.fullmatch(value) else None
    return None


def route_template(scope: Scope) -> str:
    """The matched route's template (`/status/{eventId}`), never the raw path with its ids."""
    route = scope.get("route")
    template = getattr(route, "path_format", None)
    if isinstance(template, str):
        return template
    if "endpoint" in scope:
        # A plain Starlette route (the docs pages): fixed paths, no parameters.
        path: str = scope["path"]
        return path
    return UNMATCHED_ROUTE


class RequestInstrumentation:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        request_id = incoming_request_id(scope["headers"]) or os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id  # request.state.request_id
        id_header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        status = 500  # if the app fails before answering, the server answers 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = perf_counter() - started
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
            route = route_template(scope)
            metrics.observe_request(method, route, status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                _log_request(scope, route, status, seconds, request_id)
            REQUEST_ID.reset(token)


def _log_request(scope: Scope, route: str, status: int, seconds: float, request_id: str) -> None:
    duration_ms = round(seconds * 1000, 2)
    client = scope.get("client")
    method = scope["method"]
    access_log.info(
        "%s %s %d %.2fms",
        method,
        scope["path"],
        status,
        duration_ms,
        extra={
            FIELDS: {
                "method": method,
                "route": route,
                "path": scope["path"],
                "status": status,
                "duration_ms": duration_ms,
                "request_id": request_id,
                "client": client[0] if client else None,
            }
        },
    )
