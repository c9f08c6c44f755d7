"""The viewer's HTTP handler: its routes (the page, the static files, the head, the clip, its audio,
the style panel, animating dropped audio) and the guards every request passes first (its Host must
name the server, a POST must be same-origin and typed as no HTML form can type it, its body must have
a length within the limit and arrive before the deadline); every error is answered as JSON."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import tempfile
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from ..errors import TalkfaceError
from ..export.json_format import json_text
from ..post import EMOTIONS, PARAMETERS, FaceParams
from .clip import Clip, analyse, read_dropped, wav_bytes

if TYPE_CHECKING:
    from .server import ViewerServer

STATIC = files("talkface") / "viewer" / "static"
MAX_UPLOAD = 64 * 1024 * 1024
MAX_STYLE = 64 * 1024
REQUEST_TIMEOUT = 20.0  # s for a request's line and headers, again for its body and for the answer (+ MIN_RATE)
MIN_RATE = 1 << 20  # bytes/s the slowest client sends a body or reads an answer at: 64 MB may take 64 s more
LINGER = 1.0  # s a closing connection still reads what the client sends, so that it gets the answer
_POST_TYPES = {"/api/animate": ("application/octet-stream", "audio/*"), "/api/style": ("application/json",)}
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class Conflict(TalkfaceError):
    """A request that is well-formed but cannot apply to the current clip (answered with 409)."""


def _style_options() -> dict[str, object]:
    """What the page's panel is built from: the emotions and each face parameter's [min, max, default]."""
    defaults = FaceParams()
    face = {name: [lo, hi, getattr(defaults, attr)] for name, (attr, lo, hi, _) in PARAMETERS.items()}
    return {"emotions": list(EMOTIONS), "face": face}


class _Deadline(io.RawIOBase):
    """A connection's reading side, where every read waits only until `deadline` (time.monotonic()) and
    then raises TimeoutError: the time a request takes to arrive is bounded however it is trickled, and
    a connection's idle time between requests too."""

    def __init__(self, sock: socket.socket, deadline: float):
        super().__init__()
        self.sock, self.deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request timed out")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


class Handler(BaseHTTPRequestHandler):
    """One connection to a `ViewerServer`: its requests, each checked, routed and answered."""

    server: ViewerServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        self.reader = _Deadline(self.connection, time.monotonic() + self.server.request_timeout)
        self.rfile = io.BufferedReader(self.reader)

    def handle_one_request(self) -> None:
        self.reader.deadline = time.monotonic() + self.server.request_timeout
        super().handle_one_request()

    def finish(self) -> None:
        """Close the connection gently: stop writing, then read (for up to LINGER s) what the client still
        sends, such as the rest of a body refused unread, so that it gets its answer and not a reset."""
        super().finish()
        end = time.monotonic() + LINGER
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)
            while (left := end - time.monotonic()) > 0:
                self.connection.settimeout(left)
                if not self.connection.recv(1 << 16):
                    break

    def parse_request(self) -> bool:
        """Read the headers; refuse, with a JSON error, a request slow to send them or not naming this server."""
        try:
            if not super().parse_request():
                return False
        except TimeoutError:
            self.send_error(HTTPStatus.REQUEST_TIMEOUT, "the request's headers took too long")
            return False
        host = self.headers.get("Host", "")
        if not self.server.own_host(host):
            self.send_error(HTTPStatus.FORBIDDEN, f"Host {host!r} is not this viewer; open {self.server.url}")
            return False
        return True

    def log_message(self, format: str, *args: object) -> None:  # keep the terminal quiet
        pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, unknown method, too long) as JSON, like ours."""
        if self.request_version == "HTTP/0.9":  # a request line it could not read: answer with a status line
            self.request_version = self.protocol_version
        status = HTTPStatus(code)
        self._error(status, message or status.phrase)

    def _send(self, body: bytes, ctype: str, status: HTTPStatus = HTTPStatus.OK, close: bool = False) -> None:
        self.connection.settimeout(self.server.request_timeout + len(body) / MIN_RATE)  # a client that stops reading
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, text: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(text.encode(), "application/json", status)

    def _error(self, status: HTTPStatus, message: str) -> None:
        """Answer {"error": message} and close the connection (a request body may be left unread)."""
        self._send(json.dumps({"error": " ".join(message.split())}).encode(), "application/json", status, close=True)

    def _clip_json(self, clip: Clip) -> str:
        extra = {"title": clip.title, "audio": "/api/clip/audio", "restyle": clip.speech is not None}
        return json_text(clip.anim)[:-2] + "," + json.dumps(extra)[1:] + "\n"

    def do_GET(self) -> None:
        route = urlsplit(self.path).path
        clip = self.server.clip
        if route == "/":
            self._send((STATIC / "index.html").read_bytes(), _TYPES[".html"])
        elif route.startswith("/static/"):
            name = route[len("/static/") :]
            entry = STATIC / name
            if "/" in name or name.startswith(".") or not entry.is_file():
                self._error(HTTPStatus.NOT_FOUND, "not found")
            else:
                self._send(entry.read_bytes(), _TYPES.get(Path(name).suffix, "application/octet-stream"))
        elif route == "/head.glb":
            self._send(self.server.head, "model/gltf-binary")
        elif route == "/api/clip":
            self._json(self._clip_json(clip) if clip else "null")
        elif route == "/api/clip/audio" and clip:
            self._send(clip.audio, "audio/wav")
        elif route == "/api/style":
            self._json(json.dumps({**_style_options(), "values": self.server.style_values}))
        else:
            self._error(HTTPStatus.NOT_FOUND, "not found")

    do_HEAD = do_GET

    def _body(self, limit: int, what: str) -> bytes | None:
        """The request's body, or None after answering with an error when it is missing, empty, over
        `limit` bytes or slower to arrive than the deadline."""
        if "Content-Length" not in self.headers or "Transfer-Encoding" in self.headers:
            self._error(HTTPStatus.LENGTH_REQUIRED, f"send {what} with a Content-Length")
            return None
        try:
            length = int(self.headers["Content-Length"])
        except ValueError:
            length = 0
        size = f"{limit >> 20} MB" if limit >= 1 << 20 else f"{limit >> 10} kB"
        if not 0 < length <= limit:
            status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length > limit else HTTPStatus.BAD_REQUEST
            self._error(status, f"send {what} of at most {size}")
            return None
        self.reader.deadline = time.monotonic() + self.server.request_timeout + length / MIN_RATE
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            self._error(HTTPStatus.REQUEST_TIMEOUT, f"{what} took too long to arrive")
            return None
        if len(body) < length:
            self._error(HTTPStatus.BAD_REQUEST, f"{what} ended after {len(body)} of {length} bytes")
            return None
        return body

    def do_POST(self) -> None:
        route = urlsplit(self.path).path
        if route not in _POST_TYPES:
            self._error(HTTPStatus.NOT_FOUND, "not found")
            return
        origin = self.headers.get("Origin")
        if origin is not None and origin.lower() != f"http://{self.headers['Host'].lower()}":
            self._error(HTTPStatus.FORBIDDEN, f"cross-origin request from {origin!r} refused")
            return
        ctype, types = self.headers.get_content_type(), _POST_TYPES[route]  # text/plain when there is none
        if not any(ctype == t or (t.endswith("/*") and ctype.startswith(t[:-1])) for t in types):
            self._error(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"send the body as Content-Type {' or '.join(types)}, not {ctype}"
            )
        elif route == "/api/animate":
            self._animate()
        else:
            self._restyle()

    def _animate(self) -> None:
        query = urlsplit(self.path).query
        body = self._body(MAX_UPLOAD, "an audio file")
        if body is None:
            return
        text = (parse_qs(query).get("text") or [""])[0].strip() or None
        title = (parse_qs(query).get("name") or ["dropped audio"])[0]
        with tempfile.TemporaryDirectory() as tmp:  # (read as a file is: its header checked before decoding)
            upload = Path(tmp) / "upload"
            upload.write_bytes(body)
            try:
                pcm = read_dropped(upload)
            except TalkfaceError as e:
                self._error(HTTPStatus.BAD_REQUEST, str(e).replace(str(upload), "the audio"))
                return
        try:
            with self.server.lock:  # one analysis at a time: pocketsphinx and the model are not shared
                anim, speech = analyse(self.server.animator, pcm, text, self.server.style)
                clip = self.server.clip = Clip(anim, wav_bytes(pcm), title, speech)
        except TalkfaceError as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))
            return
        self._json(self._clip_json(clip))

    def _restyle(self) -> None:
        body = self._body(MAX_STYLE, "a JSON object of style options")
        if body is None:
            return
        try:
            values = json.loads(body)
            if not isinstance(values, dict):
                raise ValueError
        except (ValueError, RecursionError):  # also bad UTF-8, and arrays nested past Python's limit
            self._error(HTTPStatus.BAD_REQUEST, 'send a JSON object of style options, e.g. {"emotion": "joy=0.8"}')
            return
        try:
            clip = self.server.restyle(values)
        except Conflict as e:
            self._error(HTTPStatus.CONFLICT, str(e))
            return
        except TalkfaceError as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))
            return
        self._json(self._clip_json(clip) if clip else "null")
