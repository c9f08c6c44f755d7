"""HTTP plumbing of the server: every HTTP error as one line of JSON, ``{"error": "..."}``, whether a
route refuses a request (`json_error`), aiohttp does (404, 405, 413: the `json_errors` middleware), or
aiohttp's parser refuses it before any route sees it (`JsonErrorRunner`, which installs
`_JsonErrorProtocol`); a request body read that such a refusal ends (`read_body`), and an answer
sent to a client that may stop reading it (`send`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING

from aiohttp import HttpVersion11, hdrs, web
from aiohttp.web_protocol import RequestPayloadError, _ErrInfo

from .settings import ERROR_CHARS

if TYPE_CHECKING:
    from .server import Server

#: The app's key to the server's state (`create_app` sets it).
SERVER_KEY: web.AppKey[Server] = web.AppKey("server")
log = logging.getLogger("talkface.serve")
_PIECE = 1 << 16  # bytes of an answer sent at a time (`send`)


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error answer as one line of JSON, {"error": "..."}: the routes' own, aiohttp's (404, 405, 413) too."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        message = e.text or e.reason
        if isinstance(e, web.HTTPNotFound):
            message = f"no such path: {request.path[:ERROR_CHARS]} (see /openapi.json)"
        elif isinstance(e, web.HTTPMethodNotAllowed):
            message = f"{request.method[:20]} is not allowed here; use {', '.join(sorted(e.allowed_methods))}"
        elif isinstance(e, web.HTTPRequestEntityTooLarge):
            message = f"request body over the {request.app[SERVER_KEY].config.max_upload_mb:g} MB limit"
        headers = {k: e.headers[k] for k in ("Allow", "WWW-Authenticate") if k in e.headers}
        response = web.json_response({"error": message}, status=e.status, headers=headers)
    except ConnectionResetError:  # the client left mid-request: no one to answer, nothing broken
        log.info("%s %s: the client closed the connection", request.method, request.path[:ERROR_CHARS])
        response = web.json_response({"error": "the client closed the connection"}, status=400)
        response.force_close()
    except Exception:  # a bug: a 500 with no traceback for the client, the traceback in the log
        log.exception("%s %s failed", request.method, request.path)
        response = web.json_response({"error": "internal error"}, status=500)
    if response.status == 408:  # no keep-alive after a body that did not come
        response.force_close()
    return response


def json_error(kind: type[web.HTTPException], message: str, headers: dict[str, str] | None = None) -> web.HTTPException:
    """An HTTP error; the `json_errors` middleware sends it as {"error": message}."""
    return kind(text=message, headers=headers)


async def expect(request: web.Request) -> web.StreamResponse | None:
    """Every route's handler of an ``Expect`` header (aiohttp's runs outside the middleware): an unknown
    expectation gets its 417 as JSON; ``100 Continue`` is not sent here, before the route has checked the
    request, but by `read_body` as it starts to read, so a client refused (401, 400, 413) is not told to
    upload its body first."""
    expectation = request.headers.get(hdrs.EXPECT, "")
    if request.version == HttpVersion11 and expectation.lower() != "100-continue":
        return web.json_response({"error": f"unknown Expect: {expectation[:ERROR_CHARS]}"}, status=417)
    return None


async def read_body(request: web.Request) -> bytes:
    """The request's body; a 400 if the parser refused it midway (`_JsonErrorProtocol.data_received`) or
    it does not decode as its Content-Encoding says.

    A declared length over the upload limit is refused at once (413), before a byte of the body is
    waited for: a client that announces more than it sends would otherwise hold the request until
    its timeout. A client that waits for ``100 Continue`` (`expect`) is told to go on here."""
    if request.content_length is not None and request.content_length > request.client_max_size:
        raise web.HTTPRequestEntityTooLarge(max_size=request.client_max_size, actual_size=request.content_length)
    if request.version == HttpVersion11 and request.headers.get(hdrs.EXPECT, "").lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # (as aiohttp's: the answer has not begun)
    try:
        body = await request.read()
    except RequestPayloadError as e:  # a body its Content-Encoding does not decode (not gzip, cut short)
        request.content.feed_eof()  # else aiohttp reads it again after the answer, and logs the error
        request.protocol.close()  # (the connection closes after the answer: the rest of the body is unread)
        reason = str(e).strip().rsplit("\n", 1)[-1].strip()
        raise json_error(web.HTTPBadRequest, f"malformed request body: {reason}"[:ERROR_CHARS]) from None
    if isinstance(refused := request.content.exception(), web.HTTPException):
        raise refused
    return body


async def send(request: web.Request, body: bytes, content_type: str, seconds: float) -> web.StreamResponse:
    """Answer `body`, 64 KB at a time with `seconds` for each: a client that stops reading a large answer
    (the animation of minutes of audio is megabytes) loses its connection, where aiohttp's write waits on
    its socket without end, holding the connection and the answer for as long as the client stays."""
    response = web.StreamResponse(headers={hdrs.CONTENT_TYPE: content_type})
    response.content_length = len(body)
    await response.prepare(request)
    try:
        for start in range(0, len(body), _PIECE):
            async with asyncio.timeout(seconds):
                await response.write(body[start : start + _PIECE])
    except TimeoutError:
        what = f"{request.method} {request.path[:ERROR_CHARS]}"
        log.info("%s: the client did not read its answer for %g s", what, seconds)
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response


class _JsonErrorProtocol(web.RequestHandler):
    """aiohttp's connection protocol, its own error answers as one line of JSON like the app's.

    A request aiohttp's parser refuses (bad request line, header, Content-Length or chunk size; a line
    over 8190 bytes) never reaches the app, so `json_errors` never sees it: aiohttp answers it with
    `handle_error`, in plain text. aiohttp offers no hook for that answer (aio-libs/aiohttp#3287), hence
    this override and the two classes below that install it, which use aiohttp internals (as of 3.14:
    `AppRunner._make_server`, `Server._loop`, `Server._kwargs`; for a body refused after its request
    began, `RequestHandler._messages`, `_current_request`, `_ErrInfo`);
    test_serve_fuzz.py::test_requests_the_parser_refuses_get_json_errors and
    ::test_a_body_that_turns_malformed_is_refused_at_once fail if any of it changes."""

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """aiohttp's answer (it logs the error, raises when an answer has begun), as {"error": "..."}; a
        request refused (4xx) is logged in one line, not with the parser's traceback: it is the client's."""
        text = "internal error" if status >= 500 else _refusal(message) or HTTPStatus(status).phrase
        if status >= 500:
            super().handle_error(request, status, exc, message)
        else:
            log.info("refused a request from %s: %s", request.remote, text)
            if request.writer.output_size > 0:
                raise ConnectionError("an answer was begun; the refusal cannot be sent")
        response = web.json_response({"error": text}, status=status)
        response.force_close()  # as aiohttp's: what follows a refused request cannot be parsed
        return response

    def data_received(self, data: bytes) -> None:
        """aiohttp's; and when the parser refuses the body of the request being handled (a malformed chunk
        after good ones), that request's read fails at once with a 400 instead of waiting for the rest of
        its body until the request timeout: aiohttp queues the parser's error as if it were the next
        request and leaves the body open. The connection closes after the answer."""
        queued = len(self._messages)
        super().data_received(data)
        request = self._current_request
        if request is None or request.content.is_eof() or len(self._messages) == queued:
            return
        error, _ = self._messages[-1]  # the body is not over: what was queued is the parser's error
        if isinstance(error, _ErrInfo):
            self._messages.pop()
            refused = json_error(web.HTTPBadRequest, _refusal(error.message) or "malformed request body")
            request.content.set_exception(refused)
            request.content.feed_eof()  # a read woken by the chunk before the error ends: `read_body` raises
            self.close()


def _refusal(message: str | None) -> str:
    """The answer to a request aiohttp's parser refused, from its message (after the colon: the bad bytes)."""
    what = (message or "").strip().split("\n", 1)[0].split(":", 1)[0]
    return f"malformed HTTP request: {what}"[:ERROR_CHARS] if what else ""


class _JsonErrorServer(web.Server):
    """aiohttp's low-level server, making `_JsonErrorProtocol`s (Server.__call__ makes RequestHandlers)."""

    def __call__(self) -> web.RequestHandler:
        return _JsonErrorProtocol(self, loop=self._loop, **self._kwargs)


class JsonErrorRunner(web.AppRunner):
    """`web.AppRunner` whose server is a `_JsonErrorServer`: aiohttp's own, made again with its settings."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()  # starts the app
        return _JsonErrorServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            **server._kwargs,
        )
