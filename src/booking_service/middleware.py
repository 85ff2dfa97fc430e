"""ASGI middleware: the request body size limit, and CORS that answers in the error envelope."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from booking_service.errors import error_response

TOO_LARGE_MESSAGE = "Request body too large: at most {limit} bytes"


class BodyTooLarge(HTTPException):
    """Raised from `receive` once the body grows past the limit.

    An HTTPException, so FastAPI passes it through while it reads the body and the app's
    handler renders it; anything that swallows it still gets the 413 from the middleware.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, TOO_LARGE_MESSAGE.format(limit=limit))


class BodySizeLimit:
    """413 for bodies over `max_bytes`: declared ones at once, unread; streamed ones as they
    cross the limit, whatever Content-Length claimed (or when there is none: chunked)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if response_started:
                raise
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = TOO_LARGE_MESSAGE.format(limit=self.max_bytes)
        response = error_response(413, message, "payload_too_large")
        # The rest of the body is never read: tell the client this connection is done.
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


class EnvelopeCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, except that a refused preflight answers in the error envelope."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        refused = bytes(response.body).decode()  # "Disallowed CORS origin, method"
        headers = {
            name: value
            for name, value in response.headers.items()
            if name.lower() not in ("content-type", "content-length")
        }
        return error_response(403, refused, "cors_refused", headers=headers)
