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
Bad requests get status 400 (409: a clip that cannot be restyled) and {"error": "one line"}.
"""

from __future__ import annotations

import io
import json
import os
import threading
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
from ..cli_style import style_from_values
from ..emotion import EMOTIONS
from ..errors import TalkfaceError
from ..export import EXTENSIONS, read
from ..export.gltf import glb_bytes
from ..export.json_format import json_text
from ..phonemes import TimedPhone, read_phones_tsv
from ..post import PARAMETERS, FaceParams

STATIC = files("talkface") / "viewer" / "static"
MAX_UPLOAD = 64 * 1024 * 1024
MAX_STYLE = 64 * 1024
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
    anim, phones = animator.animate_with_phones(pcm, text, sample_rate=SAMPLE_RATE)
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
    animates dropped audio and restyles clips; `port` 0 picks a free port."""

    daemon_threads = True

    def __init__(self, clip: Clip | None, host: str = "127.0.0.1", port: int = 8765, animator: Animator | None = None):
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

    def restyle(self, values: dict[str, object]) -> Clip | None:
        """Parse style option `values` (TalkfaceError if bad), restyle the clip with them and keep
        them for clips to come; the clip (None when there is none yet)."""
        style = style_from_values(values)
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
        """The request's body, or None after answering 400 when it is empty or over `limit` bytes."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if not 0 < length <= limit:
            size = f"{limit >> 20} MB" if limit >= 1 << 20 else f"{limit >> 10} kB"
            self._error(HTTPStatus.BAD_REQUEST, f"send {what} of at most {size}")
            self.close_connection = True  # the unread body must not be taken for the next request
            return None
        return self.rfile.read(length)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/api/animate":
            self._animate(url.query)
        elif url.path == "/api/style":
            self._restyle()
        else:
            self._error(HTTPStatus.NOT_FOUND, "not found")

    def _animate(self, query: str) -> None:
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
