"""ASGI middleware: the request body's checks (size limit and encoding, in one layer), and CORS
that answers in the error envelope."""

from __future__ import annotations

import codecs

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from booking_service.http_errors import error_response

TOO_LARGE_MESSAGE = "Request body too large: at most {limit} bytes"


class BodyTooLarge(HTTPException):
    """Raised from `receive` once the body grows past the limit.

    An HTTPException, so FastAPI passes it through while it reads the body and the app's
    handler renders it; anything that swallows it still gets the 413 from the middleware.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, TOO_LARGE_MESSAGE.format(limit=limit))


NOT_UTF8_MESSAGE = "The body is not JSON text in UTF-8"
CHARSET_MESSAGE = "JSON bodies are UTF-8: charset={charset} is not accepted"


class BodyNotUtf8(HTTPException):
    """Raised from `receive` at the first chunk that is not UTF-8."""

    def __init__(self) -> None:
        super().__init__(400, NOT_UTF8_MESSAGE)


class CharsetRefused(HTTPException):
    def __init__(self, charset: str) -> None:
        super().__init__(415, CHARSET_MESSAGE.format(charset=charset))


def json_charset(content_type: str) -> str | None:
    """The charset a JSON Content-Type names ("" when it names none); None when the type is
    not JSON (FastAPI reads `application/json` and `application/*+json` as JSON)."""
    media_type, *parameters = content_type.split(";")
    kind, _, subtype = media_type.strip().lower().partition("/")
    if kind != "application" or not (subtype == "json" or subtype.endswith("+json")):
        return None
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return ""


class BodyChecks:
    """The request body's checks, in one layer around `receive`:

    - 413 for bodies over `max_bytes`: declared ones at once, unread; streamed ones as they
      cross the limit, whatever Content-Length claimed (or when there is none: chunked).
    - JSON bodies are UTF-8 (RFC 8259): 415 for a Content-Type naming another charset, 400 for
      bytes that are not UTF-8, as they arrive. Without this, FastAPI's json.loads guesses
      UTF-16 or UTF-32 from the first bytes and reads them. Those are refused by the NUL bytes
      they are full of, even where the bytes also happen to be valid UTF-8: no JSON text holds
      a NUL byte (a string must escape it). A UTF-8 byte order mark is UTF-8, and json.loads
      skips it (RFC 8259 allows that).

    A request that declares no body (no Content-Length, no Transfer-Encoding: every GET) has
    none in HTTP/1.1 and passes untouched, without a wrapped `receive` or `send`.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: bytes | None = None
        chunked = False
        content_type = b""
        for name, value in scope["headers"]:
            if name == b"content-length" and declared is None:  # the first, as Headers.get
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"content-type" and not content_type:
                content_type = value
        if not chunked and (declared is None or declared == b"0"):
            await self.app(scope, receive, send)
            return
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        charset = json_charset(content_type.decode("latin-1"))
        # Not JSON: FastAPI refuses it (415) unread, the size limit still applies.
        decoder = None if charset is None else codecs.getincrementaldecoder("utf-8")()
        received = 0
        response_started = False

        async def checked_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] != "http.request":
                return message
            body: bytes = message.get("body", b"")
            received += len(body)
            if received > self.max_bytes:
                raise BodyTooLarge(self.max_bytes)
            if decoder is not None:
                if body and charset not in ("", "utf-8"):
                    raise CharsetRefused(charset or "")
                if b"\x00" in body:
                    raise BodyNotUtf8()
                try:
                    decoder.decode(body, final=not message.get("more_body", False))
                except UnicodeDecodeError as exc:
                    raise BodyNotUtf8() from exc
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        # FastAPI passes an HTTPException raised while it reads the body on to the app's
        # handler, which renders it in the error envelope; only a 413 that something swallowed
        # is answered here.
        try:
            await self.app(scope, checked_receive, tracking_send)
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
