"""`talkface view`: a local web page that plays speech on the talkface head, in sync, with three.js.

The server is the standard library's ThreadingHTTPServer bound to 127.0.0.1 by default. It serves the
page and the bundled three.js from ``static/`` (no CDN), the head as GLB, and the current clip
(animation JSON + audio). A WAV dropped on the page is POSTed to ``/api/animate`` and animated here.

    GET  /                  the page            GET /head.glb      head with the 52 ARKit targets
    GET  /api/clip          talkface JSON of the clip (plus "title" and "audio", the audio's URL)
    GET  /api/clip/audio    the clip's audio     POST /api/animate  body: audio file; ?text= transcript
"""

from __future__ import annotations

import io
import json
import os
import threading
import webbrowser
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import soundfile as sf

from ..animation import Animation
from ..animator import Animator
from ..errors import TalkfaceError
from ..export import EXTENSIONS, read
from ..export.gltf import glb_bytes
from ..export.json_format import json_text

STATIC = files("talkface") / "viewer" / "static"
MAX_UPLOAD = 64 * 1024 * 1024
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@dataclass(frozen=True)
class Clip:
    """What the page plays: an animation, its audio as a WAV file's bytes, and a title."""

    anim: Animation
    audio: bytes
    title: str


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
    """A clip from an output folder (its WAV and an animation: JSON, CSV or NPZ) or from a speech file."""
    path = Path(source)
    if path.is_dir():
        wavs = sorted(path.glob("*.wav"))
        anims = [p for ext in (".json", ".csv", ".npz") for p in sorted(path.glob(f"*{ext}"))]
        if not wavs or not anims:
            raise TalkfaceError(f"{path}: needs a .wav and an animation (.json, .csv or .npz) in it")
        return Clip(read(anims[0]), _wav_bytes(wavs[0]), f"{path.name}/{anims[0].name}")
    if not path.is_file():
        raise TalkfaceError(f"{path}: no such file or folder")
    if path.suffix.lower() in EXTENSIONS:
        raise TalkfaceError(f"{path}: give a speech file or a folder holding speech and its animation")
    anim = (animator or Animator()).animate(path, text)
    return Clip(anim, _wav_bytes(path), path.name)


class ViewerServer(ThreadingHTTPServer):
    """HTTP server holding the current clip; `port` 0 picks a free port."""

    daemon_threads = True

    def __init__(self, clip: Clip | None, host: str = "127.0.0.1", port: int = 8765, animator: Animator | None = None):
        try:
            super().__init__((host, port), _Handler)
        except OSError as e:
            raise TalkfaceError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
        self.clip = clip
        self.animator = animator or Animator()
        self.head = glb_bytes(None)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


class _Handler(BaseHTTPRequestHandler):
    server: ViewerServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep the terminal quiet
        pass

    def _send(self, body: bytes, ctype: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, text: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(text.encode(), "application/json", status)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json(json.dumps({"error": message}), status)

    def _clip_json(self, clip: Clip) -> str:
        extra = {"title": clip.title, "audio": "/api/clip/audio"}
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
        else:
            self._error(HTTPStatus.NOT_FOUND, "not found")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/api/animate":
            self._error(HTTPStatus.NOT_FOUND, "not found")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_UPLOAD:
            self._error(HTTPStatus.BAD_REQUEST, f"send an audio file of at most {MAX_UPLOAD >> 20} MB")
            return
        body = self.rfile.read(length)
        text = (parse_qs(url.query).get("text") or [""])[0].strip() or None
        title = (parse_qs(url.query).get("name") or ["dropped audio"])[0]
        try:
            data, rate = sf.read(io.BytesIO(body), always_2d=True)
            with self.server.lock:  # one analysis at a time: pocketsphinx and the model are not shared
                anim = self.server.animator.animate(data, text, sample_rate=rate)
            wav = io.BytesIO()
            sf.write(wav, data, rate, subtype="PCM_16", format="WAV")
        except (sf.LibsndfileError, RuntimeError):
            self._error(HTTPStatus.BAD_REQUEST, "not a readable audio file (WAV, FLAC or OGG)")
            return
        except TalkfaceError as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))
            return
        self.server.clip = Clip(anim, wav.getvalue(), title)
        self._json(self._clip_json(self.server.clip))


def serve(
    source: str | os.PathLike | None,
    text: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    open_browser: bool = True,
    animator: Animator | None = None,
) -> None:
    """Load `source` (see `load_clip`; None starts empty, waiting for a dropped file) and serve until Ctrl-C."""
    animator = animator or Animator()
    clip = load_clip(source, text, animator) if source is not None else None
    server = ViewerServer(clip, host, port, animator)
    print(f"talkface viewer: {server.url}  (Ctrl-C to stop)", flush=True)
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
