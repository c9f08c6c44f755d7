"""`talkface view`: a local web page that plays speech on the talkface head, in sync, with three.js.

The server is the standard library's ThreadingHTTPServer bound to 127.0.0.1 by default. It serves the
page and the bundled three.js from ``static/`` (no CDN), the head as GLB, and the current clip
(animation JSON + audio). A WAV dropped on the page is POSTed to ``/api/animate`` and animated here.
The clip keeps what it was animated from (audio, timed phones), so the page's emotion and face
panel restyles it (``/api/style``) without aligning the audio again.

    GET  /                  the page            GET /head.glb      head with the 52 ARKit targets
    GET  /api/clip          talkface JSON of the clip (plus "title", "audio", the audio's URL, and
                            "restyle", whether /api/style can restyle it)
    GET  /api/clip/audio    the clip's audio     POST /api/animate  body: audio file; ?text= transcript
    GET  /api/style         the emotions, the face parameters' [min, max, default] and the values in use
    POST /api/style         body: style options as JSON, named and parsed as on the command line
                            ({"emotion": "joy=0.8", "face": "jawStrength=1.2", "no-blink": true});
                            restyles the clip (and later ones) and answers with its JSON like /api/clip
Every error answer is {"error": "one line"} with its status (400, 403, 404, 408, 409: a clip that
cannot be restyled, 411, 413, 415, 501, ...).

The server is for this machine's browser, so it answers only requests naming it in their Host header
(127.0.0.1, localhost or [::1] with its port, the host it was bound to, or one it was told to allow;
any IP address when bound to all interfaces): a page of another site that rebinds its DNS name to
127.0.0.1 is refused. POSTs must be same-origin (an Origin header, when sent, is this server's) and
typed as no HTML form can type them: /api/style takes application/json, /api/animate audio/* or
application/octet-stream; so a cross-site form or text/plain POST is refused. A request must arrive
whole within `request_timeout` seconds (its body gets one more second per MB; an answer is read in as
long), so half-sent requests and clients that stop reading do not hold connections. Each connection
has its own thread: a long animation holds only the POSTs waiting for the animator, never the page,
the clip or the head.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import os
import re
import socket
import sys
import threading
import time
import webbrowser
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import soundfile as sf

from ..animation import Animation
from ..animator import Animator
from ..audio import SAMPLE_RATE, AudioSource, load_audio
from ..errors import TalkfaceError
from ..export import EXTENSIONS, read
from ..export.gltf import glb_bytes
from ..export.json_format import json_text
from ..phonemes import TimedPhone, read_phones_tsv
from ..post import EMOTIONS, PARAMETERS, FaceParams, Style

STATIC = files("talkface") / "viewer" / "static"
MAX_UPLOAD = 64 * 1024 * 1024
MAX_STYLE = 64 * 1024
REQUEST_TIMEOUT = 20.0  # s for a request's line and headers, again for its body and for the answer (+ MIN_RATE)
MIN_RATE = 1 << 20  # bytes/s the slowest client sends a body or reads an answer at: 64 MB may take 64 s more
LINGER = 1.0  # s a closing connection still reads what the client sends, so that it gets the answer
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}))?")  # a Host header: name or [IPv6], port
_POST_TYPES = {"/api/animate": ("application/octet-stream", "audio/*"), "/api/style": ("application/json",)}
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@dataclass(frozen=True)
class Speech:
    """What a clip was animated from, kept so that a new style needs no new alignment: the 16 kHz
    audio, its timed phones (None: the neural model animates the sound), the transcript, the fps."""

    pcm: np.ndarray
    phones: Sequence[TimedPhone] | None
    text: str | None
    fps: float

    def animate(self, animator: Animator) -> Animation:
        """What `animator`, with its style, makes of this speech: the same as animating it afresh."""
        if self.phones is None:
            return animator.animate(self.pcm, fps=self.fps, sample_rate=SAMPLE_RATE)
        duration = len(self.pcm) / SAMPLE_RATE
        return animator.animate_phones(self.phones, duration, self.fps, audio=self.pcm, text=self.text)


def analyse(
    animator: Animator, audio: AudioSource, text: str | None = None, sample_rate: int | None = None
) -> tuple[Animation, Speech]:
    """`animator`'s animation of `audio`, and the speech it came from."""
    pcm = load_audio(audio, sample_rate)
    anim, phones, _ = animator.clip(pcm, text, sample_rate=SAMPLE_RATE)
    return anim, Speech(pcm, phones, text, anim.fps)


@dataclass(frozen=True)
class Clip:
    """What the page plays: an animation, its audio as a WAV file's bytes, a title, and the speech
    it was made from (None: the animation came ready-made and cannot be restyled)."""

    anim: Animation
    audio: bytes
    title: str
    speech: Speech | None = None


def _wav_bytes(path: str | os.PathLike) -> bytes:
    """Any readable audio file as 16-bit WAV bytes (browsers play WAV everywhere)."""
    try:
        data, rate = sf.read(path, always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise TalkfaceError(f"{path}: not a readable audio file ({e})") from None
    buf = io.BytesIO()
    sf.write(buf, data, rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def load_clip(source: str | os.PathLike, text: str | None = None, animator: Animator | None = None) -> Clip:
    """A clip from an output folder (its WAV and an animation: JSON, CSV or NPZ; restylable when a
    `phonemes.tsv` is beside them, as `talkface say` writes) or from a speech file, animated by
    `animator` with its style."""
    animator = animator or Animator()
    path = Path(source)
    if path.is_dir():
        wavs = sorted(path.glob("*.wav"))
        anims = [p for ext in (".json", ".csv", ".npz") for p in sorted(path.glob(f"*{ext}"))]
        if not wavs or not anims:
            raise TalkfaceError(f"{path}: needs a .wav and an animation (.json, .csv or .npz) in it")
        anim, tsv = read(anims[0]), path / "phonemes.tsv"
        speech = Speech(load_audio(wavs[0]), _read_phones(tsv), None, anim.fps) if tsv.is_file() else None
        return Clip(anim, _wav_bytes(wavs[0]), f"{path.name}/{anims[0].name}", speech)
    if not path.is_file():
        raise TalkfaceError(f"{path}: no such file or folder")
    if path.suffix.lower() in EXTENSIONS:
        raise TalkfaceError(f"{path}: give a speech file or a folder holding speech and its animation")
    anim, speech = analyse(animator, path, text)
    return Clip(anim, _wav_bytes(path), path.name, speech)


def _read_phones(tsv: Path) -> list[TimedPhone]:
    try:
        return read_phones_tsv(str(tsv))
    except (ValueError, KeyError) as e:
        raise TalkfaceError(f"{tsv}: not a phone table (start_s, end_s, phone): {e}") from None


class ViewerServer(ThreadingHTTPServer):
    """HTTP server holding the current clip and the animator (with the style the panel set) that
    animates dropped audio and restyles clips; `port` 0 picks a free port. It answers only requests
    whose Host names it (see the module's docstring; `allowed_hosts` adds names, e.g. the machine's
    name on the LAN) and drops requests not sent whole within `request_timeout` seconds."""

    daemon_threads = True

    def __init__(
        self,
        clip: Clip | None,
        host: str = "127.0.0.1",
        port: int = 8765,
        animator: Animator | None = None,
        allowed_hosts: Sequence[str] = (),
        request_timeout: float = REQUEST_TIMEOUT,
    ):
        try:
            super().__init__((host, port), _Handler)
        except OSError as e:
            raise TalkfaceError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
        self.clip = clip
        base = animator or Animator()  # a copy of its own, whose style the panel changes
        self.animator = Animator(base.fps, base.engine, base.model_path, style=base.style)
        self.style_values: dict[str, object] = {}  # what the page last set; {}: the animator's style
        self.head = glb_bytes(None)
        self.lock = threading.Lock()
        self.request_timeout = request_timeout
        self.any_address = host in ("", "0.0.0.0", "::")
        names = {*_LOOPBACK, *allowed_hosts, self.server_address[0]} | (set() if self.any_address else {host})
        self.host_names = {name.lower().strip("[]") for name in names}

    def own_host(self, host: str) -> bool:
        """Whether a request's Host header names this server: one of its names with its port, or any IP
        address when it listens on all of them (a DNS-rebinding page's requests carry the page's name)."""
        match = _HOST.fullmatch(host.lower())
        if not match or int(match[2] or 80) != self.server_address[1]:
            return False
        name = match[1].strip("[]")
        if name in self.host_names:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return self.any_address

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that went away mid-answer is no error worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def restyle(self, values: dict[str, object]) -> Clip | None:
        """Parse style option `values` (TalkfaceError if bad), restyle the clip with them and keep
        them for clips to come; the clip (None when there is none yet)."""
        style = Style.from_options(values)
        with self.lock:
            clip = self.clip
            if clip is not None and clip.speech is None:
                raise _Conflict("this clip came as a finished animation without its phones; it cannot be restyled")
            self.animator.style, self.style_values = style, values
            if clip is not None and clip.speech is not None:
                clip = self.clip = Clip(clip.speech.animate(self.animator), clip.audio, clip.title, clip.speech)
        return clip

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


class _Conflict(TalkfaceError):
    """A request that is well-formed but cannot apply to the current clip."""


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


class _Handler(BaseHTTPRequestHandler):
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
        try:
            data, rate = sf.read(io.BytesIO(body), always_2d=True)
            with self.server.lock:  # one analysis at a time: pocketsphinx and the model are not shared
                anim, speech = analyse(self.server.animator, data, text, sample_rate=rate)
                wav = io.BytesIO()
                sf.write(wav, data, rate, subtype="PCM_16", format="WAV")
                clip = self.server.clip = Clip(anim, wav.getvalue(), title, speech)
        except (sf.LibsndfileError, RuntimeError):
            self._error(HTTPStatus.BAD_REQUEST, "not a readable audio file (WAV, FLAC or OGG)")
            return
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
        except ValueError:  # also bad UTF-8
            self._error(HTTPStatus.BAD_REQUEST, 'send a JSON object of style options, e.g. {"emotion": "joy=0.8"}')
            return
        try:
            clip = self.server.restyle(values)
        except _Conflict as e:
            self._error(HTTPStatus.CONFLICT, str(e))
            return
        except TalkfaceError as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))
            return
        self._json(self._clip_json(clip) if clip else "null")


def serve(
    source: str | os.PathLike | None,
    text: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    open_browser: bool = True,
    animator: Animator | None = None,
    allowed_hosts: Sequence[str] = (),
) -> None:
    """Load `source` (see `load_clip`; None starts empty, waiting for a dropped file) and serve until Ctrl-C;
    `allowed_hosts`: more names the page may be opened by (see `ViewerServer`)."""
    animator = animator or Animator()
    clip = load_clip(source, text, animator) if source is not None else None
    server = ViewerServer(clip, host, port, animator, allowed_hosts)
    print(f"talkface viewer: {server.url}  (Ctrl-C to stop)", flush=True)
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
