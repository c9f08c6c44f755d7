"""The animation server: aiohttp, one event loop for the sockets, worker processes for the model.

WebSocket protocol (``/v1/stream``), all optional settings in the query string or a first
``{"type": "start", ...}`` message: ``sample_rate`` (default 16000), ``format`` ("s16" little-endian
16-bit or "f32" little-endian float, default s16), ``fps`` (default the server's), ``output``
("json" or "binary"), ``emotion`` ("joy=0.7"), ``face`` ({"jawStrength": 0.8} or "jawStrength=0.8"),
``seed``, ``subject`` (the Live Link subject name). Then:

- binary messages: PCM chunks of any length;
- ``{"type": "emotion", "emotion": "joy=0.5"}``, ``{"type": "face", "face": {...}}``: change mid-stream;
- ``{"type": "end"}``: flush; the last frames, then ``{"type": "end", "frames": N}`` and a normal close.

The server answers ``{"type": "ready", "names": [...], "fps": F, "latency": s, ...}`` first, then
frames as they become final: JSON ``{"type": "frames", "start": k, "times": [...], "frames": [[...], ...]}``
or binary: the 4 bytes ``TFF1``, uint32 first frame, uint16 frames, uint16 channels, float64 fps
(little-endian), then float32 values frame by frame. Frame k is at ``k / fps`` s of the stream.
Bad audio (NaN, a torn sample) closes the stream with 1007 and a message; a malformed control
message gets ``{"type": "error"}`` and the stream goes on; an idle client is closed (1001) after
`idle_timeout`; a client that does not read its frames is closed (1008) once more than
`send_buffer_seconds` + `max_pending_seconds` of frames wait for it (the kernel's send buffer is
kept to 256 KB); a client that sends faster than real time is simply not read until its audio is
processed, so no stream holds more than `max_pending_seconds` of unprocessed audio.

Each stream is given to one of the model worker processes (`workers`, one per CPU core by
default), the least busy; a worker advances all of its streams with new audio in one batched model
step per tick, and the ticks follow the audio (a tick starts as soon as the last one ends and
audio waits). A worker that dies takes its streams with it (closed with 1011) and is restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import itertools
import json
import math
import os
import socket
import struct
import tempfile
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from aiohttp import WSMsgType, web

from .. import export
from ..animation import Animation
from ..animator import Animator
from ..audio import SAMPLE_RATE, load_audio
from ..emotion import parse_emotions
from ..errors import TalkfaceError
from ..livelink import LiveLinkSender
from ..post import FaceParams, parse_assignments
from ..stream import Engine, Stream
from .metrics import Metrics
from .openapi import spec
from .workers import Item, Result, Worker, new_session, style_of

_EXTENSION = {"csv": ".csv", "json": ".json", "npz": ".npz", "rhubarb-tsv": ".tsv", "rhubarb-json": ".json",
              "rhubarb-xml": ".xml", "rhubarb-dat": ".dat", "glb": ".glb", "gltf-anim": ".glb",
              "usd": ".usda"}  # fmt: skip
_MEDIA = {".csv": "text/csv", ".json": "application/json", ".tsv": "text/tab-separated-values",
          ".xml": "application/xml", ".dat": "text/plain", ".glb": "model/gltf-binary",
          ".usda": "text/plain"}  # fmt: skip
_BINARY_HEADER = struct.Struct("<4sIHHd")
_SOCKET_BUFFER = 256 * 1024  # kernel send buffer per stream
_SAMPLE = {"s16": np.dtype("<i2"), "f32": np.dtype("<f4")}
SERVER_KEY: web.AppKey[Server] = web.AppKey("server")


@dataclass(frozen=True)
class ServerConfig:
    """Limits and settings of `talkface serve` (the CLI options of the same names)."""

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None  # bearer token every request but /healthz needs (None: open)
    fps: float = 30.0
    model: str | None = None
    livelink: str | None = None  # HOST:PORT: every stream's frames also go out as Live Link Face packets
    max_streams: int = 200
    max_upload_mb: float = 50.0
    max_audio_seconds: float = 600.0  # longest file /v1/animate takes
    max_stream_seconds: float = 4 * 3600.0
    max_message_bytes: int = 1 << 20
    idle_timeout: float = 30.0
    send_buffer_seconds: float = 5.0
    max_pending_seconds: float = 10.0
    animate_jobs: int = 2
    workers: int | None = None  # model worker processes (None: one per CPU core)


class _Conn:
    """One WebSocket stream: its session, the work waiting for the model, the frames waiting to go out."""

    def __init__(self, ident: int, ws: web.WebSocketResponse, worker: Worker, settings: dict[str, Any]) -> None:
        self.id, self.ws, self.worker = ident, ws, worker
        self.latency = 0.0  # the session's algorithmic latency (s), from the "ready" message
        self.binary = settings["output"] == "binary"
        self.sample_rate, self.dtype = settings["sample_rate"], _SAMPLE[settings["format"]]
        self.subject = settings["subject"]
        self.pending: list[Item] = [("start", settings)]
        self.pending_samples = 0.0  # unprocessed audio, in 16 kHz samples
        self.received = 0.0  # 16 kHz samples so far
        self.arrivals: deque[tuple[float, float]] = deque()  # (received after a chunk, when it came)
        self.drained = asyncio.Event()
        self.outbox: deque[tuple[str | bytes, int]] = deque()  # (message, frames in it)
        self.queued_frames = 0
        self.wake_sender = asyncio.Event()
        self.finished = asyncio.Event()  # the flush's frames are out
        self.ended = False  # the session has flushed
        self.closed = False
        self.frames = 0  # frames made so far (the next one's number)
        self.livelink: LiveLinkSender | None = None
        self.transport = None  # set once the WebSocket is up

    def ws_buffer(self) -> int:
        """Bytes written to the socket but not yet taken by the kernel."""
        return self.transport.get_write_buffer_size() if self.transport is not None else 0


class Server:
    """The state behind the routes: the model engine, the live streams, the workers' batching loops."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.animator = Animator(config.fps, model=config.model)
        self.engine: Engine = self.animator.stream_engine
        self.metrics = Metrics()
        self.conns: dict[int, _Conn] = {}
        self.ids = itertools.count(1)
        self.workers: list[Worker] = []
        self.dropped: dict[Worker, list[int]] = {}  # streams whose clients left, for their worker to forget
        self.threads: ThreadPoolExecutor | None = None  # waits on the workers' pipes
        self.jobs = asyncio.Semaphore(config.animate_jobs)
        self.waiting_jobs = 0
        self.tasks: list[asyncio.Task] = []

    # --- the batching loops, one per worker ---

    async def run(self, worker: Worker) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await worker.wake.wait()
            worker.wake.clear()
            mine = [c for c in self.conns.values() if c.worker is worker and c.pending and not c.closed]
            work = [(c.id, c.pending) for c in mine] + [(sid, [("drop",)]) for sid in self.dropped[worker]]
            self.dropped[worker] = []
            for c in mine:
                c.pending = []
            if not work:
                continue
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self.threads, worker.step, work)
            except (EOFError, OSError):  # the worker died: its streams are gone
                self.metrics.count("talkface_worker_restarts_total")
                for c in self.conns.values():
                    if c.worker is worker and not c.closed:
                        self._close_later(c, 1011, "the model worker of this stream failed")
                        c.drained.set()  # a receive loop held back by backpressure sees the close
                try:
                    await loop.run_in_executor(self.threads, worker.restart)
                except TalkfaceError:  # it did not come up: tried again at its next tick
                    await asyncio.sleep(1.0)
                continue
            self.metrics.observe("talkface_tick_seconds", time.perf_counter() - started)
            now = time.monotonic()
            for c in mine:
                c.pending_samples = sum(
                    len(i[1]) * SAMPLE_RATE / c.sample_rate for i in c.pending if i[0] == "audio"
                )
                c.drained.set()
            for result in results:
                c = self.conns.get(result.stream)
                if c is not None:
                    self._deliver(c, result, now)

    def _deliver(self, c: _Conn, result: Result, now: float) -> None:
        """Frames (or an error) from a tick to a stream's outbox; latency and backpressure bookkeeping."""
        if c.closed:
            return
        anim = result.frames
        if anim is None:
            self.metrics.count("talkface_stream_errors_total", kind="bad_audio")
            self._close_later(c, 1007, result.error or "bad audio")
            return
        c.ended = result.ended
        if anim.num_frames:
            first = c.frames
            c.frames += anim.num_frames
            self._latencies(c, anim, first, now)
            if c.livelink is not None:
                c.livelink.send(anim)
            message = self._encode(c, anim, first)
            c.outbox.append((message, anim.num_frames))
            c.queued_frames += anim.num_frames
            self.metrics.count("talkface_frames_total", anim.num_frames)
            c.wake_sender.set()
            # frames waiting in the outbox and in the socket's user-space buffer: a burst of up to
            # max_pending_seconds of audio is fine, more than that is a client that does not read
            unsent = c.queued_frames + c.ws_buffer() * anim.num_frames / len(message)
            if unsent > (self.config.send_buffer_seconds + self.config.max_pending_seconds) * anim.fps:
                self.metrics.count("talkface_stream_errors_total", kind="slow_client")
                self._close_later(c, 1008, "client too slow: it does not read its frames")
                return
        if c.ended:
            c.outbox.append((json.dumps({"type": "end", "frames": c.frames}), 0))
            c.wake_sender.set()
            c.finished.set()

    def _latencies(self, c: _Conn, anim: Animation, first: int, now: float) -> None:
        """Seconds from the arrival of the audio that made each frame final to its hand-over to the socket."""
        for k in range(first, first + anim.num_frames):
            need = (k / anim.fps + c.latency) * SAMPLE_RATE
            while len(c.arrivals) > 1 and c.arrivals[1][0] <= need:
                c.arrivals.popleft()
            if not c.ended and c.arrivals and c.arrivals[0][0] >= need - 1:
                self.metrics.observe("talkface_frame_latency_seconds", now - c.arrivals[0][1])

    def _encode(self, c: _Conn, anim: Animation, first: int) -> str | bytes:
        if c.binary:
            head = _BINARY_HEADER.pack(b"TFF1", first, anim.num_frames, len(anim.names), anim.fps)
            return head + anim.weights.astype("<f4").tobytes()
        times = [round((first + i) / anim.fps, 6) for i in range(anim.num_frames)]
        frames = np.round(anim.weights.astype(np.float64), 6).tolist()
        return json.dumps({"type": "frames", "start": first, "times": times, "frames": frames})

    def _close_later(self, c: _Conn, code: int, message: str) -> None:
        c.closed = True
        c.outbox.clear()
        c.queued_frames = 0
        asyncio.get_running_loop().create_task(_close(c, code, message))

    # --- WebSocket streams ---

    async def stream(self, request: web.Request) -> web.StreamResponse:
        self._authorise(request)
        if len(self.conns) >= self.config.max_streams:
            self.metrics.count("talkface_rejected_total", reason="too_many_streams")
            raise _json_error(web.HTTPServiceUnavailable, f"too many streams (at most {self.config.max_streams})")
        try:
            settings = _stream_settings(dict(request.query), self.config.fps)
            probe = new_session(self.engine, settings)  # checks what only a session can
        except TalkfaceError as e:
            raise _json_error(web.HTTPBadRequest, str(e)) from None
        ws = web.WebSocketResponse(max_msg_size=self.config.max_message_bytes, timeout=5.0, heartbeat=None)
        if not ws.can_prepare(request).ok:
            raise _json_error(web.HTTPBadRequest, "this endpoint speaks WebSocket: send an Upgrade request")
        await ws.prepare(request)
        worker = min(self.workers, key=lambda w: w.streams)
        c = _Conn(next(self.ids), ws, worker, settings)
        worker.streams += 1
        c.transport = request.transport
        sock = request.transport.get_extra_info("socket") if request.transport is not None else None
        if sock is not None:  # bound the kernel's share too (it would grow to 4 MB for a client that never reads)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
        self.conns[c.id] = c
        self.metrics.count("talkface_streams_total")
        sender = asyncio.get_running_loop().create_task(self._send_loop(c))
        try:
            await self._ready(c, settings, probe)
            await self._receive_loop(c)
        finally:
            c.closed = True
            self.conns.pop(c.id, None)
            worker.streams -= 1
            if not c.ended:  # the worker still holds the session
                self.dropped[worker].append(c.id)
                worker.wake.set()
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            if c.livelink is not None:
                c.livelink.close()
            if not ws.closed:
                await _close(c, 1000, "")
        return ws

    async def _ready(self, c: _Conn, settings: dict[str, Any], probe: Stream) -> None:
        """Tell the client the stream's settings; `probe` is a session like the worker's."""
        if self.config.livelink:
            subject = settings["subject"] or f"talkface-{c.id}"
            c.livelink = LiveLinkSender(self.config.livelink, subject, settings["fps"])
        c.latency, names = probe.latency, probe._post_names()
        await c.ws.send_str(json.dumps({
            "type": "ready", "id": c.id, "fps": settings["fps"], "latency": round(c.latency, 4),
            "sample_rate": c.sample_rate, "format": settings["format"], "output": settings["output"], "names": names,
        }))  # fmt: skip

    async def _receive_loop(self, c: _Conn) -> None:
        started = False
        while not c.closed:
            try:
                msg = await c.ws.receive(timeout=self.config.idle_timeout)
            except TimeoutError:
                self.metrics.count("talkface_stream_errors_total", kind="idle")
                await _close(c, 1001, f"idle for {self.config.idle_timeout:g} s")
                return
            if msg.type == WSMsgType.BINARY:
                started = True
                if not self._audio(c, msg.data):
                    return
                while c.pending_samples > self.config.max_pending_seconds * SAMPLE_RATE and not c.closed:
                    c.drained.clear()
                    await c.drained.wait()  # not reading is the backpressure on a fast sender
            elif msg.type == WSMsgType.TEXT:
                if await self._control(c, msg.data, started):
                    await c.finished.wait()
                    await _drain(c)
                    await _close(c, 1000, "")
                    return
            else:  # CLOSE, CLOSING, CLOSED, ERROR: the client is gone
                if msg.type == WSMsgType.ERROR:
                    self.metrics.count("talkface_stream_errors_total", kind="protocol")
                return

    def _audio(self, c: _Conn, data: bytes) -> bool:
        if len(data) % c.dtype.itemsize:
            self.metrics.count("talkface_stream_errors_total", kind="bad_audio")
            self._close_later(c, 1007, f"a {c.dtype.itemsize}-byte sample format needs whole samples")
            return False
        pcm = np.frombuffer(data, c.dtype)
        samples = pcm.size * SAMPLE_RATE / c.sample_rate
        if (c.received + samples) / SAMPLE_RATE > self.config.max_stream_seconds:
            self._close_later(c, 1009, f"stream longer than {self.config.max_stream_seconds:g} s")
            return False
        c.received += samples
        c.pending_samples += samples
        c.arrivals.append((c.received, time.monotonic()))
        c.pending.append(("audio", pcm))
        self.metrics.count("talkface_audio_seconds_total", samples / SAMPLE_RATE)
        c.worker.wake.set()
        return True

    async def _control(self, c: _Conn, text: str, started: bool) -> bool:
        """Handle a JSON message; True when it ends the stream."""
        try:
            message = json.loads(text)
            if not isinstance(message, dict) or not isinstance(message.get("type"), str):
                raise TalkfaceError('a control message is a JSON object with a "type"')
            kind = message["type"]
            if kind == "start":
                if started:
                    raise TalkfaceError('"start" must come before any audio')
                settings = _stream_settings({k: v for k, v in message.items() if k != "type"}, self.config.fps)
                probe = new_session(self.engine, settings)
                c.pending.append(("start", settings))
                c.binary, c.subject = settings["output"] == "binary", settings["subject"]
                c.sample_rate, c.dtype = settings["sample_rate"], _SAMPLE[settings["format"]]
                if c.livelink is not None:
                    c.livelink.close()
                await self._ready(c, settings, probe)
                return False
            if kind == "emotion":
                c.pending.append(("emotion", parse_emotions(_text(message.get("emotion", ""), "emotion"))))
            elif kind == "face":
                c.pending.append(("face", _face(message.get("face"))))
            elif kind == "end":
                c.pending.append(("end",))
                c.worker.wake.set()
                return True
            else:
                raise TalkfaceError(f"unknown message type {kind!r}; use start, emotion, face or end")
        except (ValueError, TalkfaceError) as e:  # json.JSONDecodeError is a ValueError
            self.metrics.count("talkface_stream_errors_total", kind="bad_message")
            c.outbox.append((json.dumps({"type": "error", "message": str(e)}), 0))
            c.wake_sender.set()
        return False

    async def _send_loop(self, c: _Conn) -> None:
        while True:
            await c.wake_sender.wait()
            c.wake_sender.clear()
            while c.outbox and not c.closed:
                item, frames = c.outbox.popleft()
                try:
                    await (c.ws.send_bytes(item) if isinstance(item, bytes) else c.ws.send_str(item))
                except (ConnectionResetError, RuntimeError):  # the client went away
                    c.closed = True
                    return
                c.queued_frames -= frames

    # --- HTTP ---

    async def animate(self, request: web.Request) -> web.Response:
        """An audio file in the body, the animation file back (see the OpenAPI spec)."""
        self._authorise(request)
        try:
            query = dict(request.query)
            fmt = query.pop("format", "json").lower()
            if fmt not in _EXTENSION:
                raise TalkfaceError(f"unknown format {fmt!r}; choose one of: {', '.join(_EXTENSION)}")
            text = query.pop("text", None)
            settings = _stream_settings(query, self.config.fps, http=True)
        except TalkfaceError as e:
            raise _json_error(web.HTTPBadRequest, str(e)) from None
        body = await request.read()
        if not body:
            raise _json_error(web.HTTPBadRequest, "send the audio file (WAV, FLAC or Ogg) as the request body")
        if self.waiting_jobs >= 4 * self.config.animate_jobs:
            raise _json_error(web.HTTPServiceUnavailable, "too many animation requests waiting; try again")
        self.waiting_jobs += 1
        try:
            async with self.jobs:
                loop = asyncio.get_running_loop()
                data = await loop.run_in_executor(None, self._animate_file, body, fmt, text, settings)
        except TalkfaceError as e:
            raise _json_error(web.HTTPUnprocessableEntity, str(e)) from None
        finally:
            self.waiting_jobs -= 1
        self.metrics.count("talkface_animations_total")
        ext = _EXTENSION[fmt]
        return web.Response(body=data, content_type=_MEDIA.get(ext, "application/octet-stream"))

    def _animate_file(self, body: bytes, fmt: str, text: str | None, settings: dict[str, Any]) -> bytes:
        try:
            audio, rate = sf.read(io.BytesIO(body), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
            raise TalkfaceError(f"not a readable audio file ({e})") from None
        if audio.shape[0] / rate > self.config.max_audio_seconds:
            raise TalkfaceError(f"audio longer than {self.config.max_audio_seconds:g} s; stream it instead")
        pcm = load_audio(audio, int(rate))
        style = style_of(settings)
        if text is not None:
            anim = Animator(settings["fps"], style=style).animate(pcm, text=text, sample_rate=SAMPLE_RATE)
        else:  # offline is streaming with the whole clip in one chunk
            session = Stream(self.engine, settings["fps"], style)
            anim = Animation.join([session.push(pcm), session.flush()])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"animation{_EXTENSION[fmt]}"
            export.write(anim, path, fmt)
            return path.read_bytes()

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "streams": len(self.conns), "max_streams": self.config.max_streams})

    async def metrics_text(self, request: web.Request) -> web.Response:
        self._authorise(request)
        self.metrics.gauge("talkface_streams_active", len(self.conns))
        return web.Response(text=self.metrics.text(), content_type="text/plain", charset="utf-8")

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(spec(self.config.token is not None))

    def _authorise(self, request: web.Request) -> None:
        token = self.config.token
        if token is None:
            return
        given = request.headers.get("Authorization", "")
        given = given[7:] if given.startswith("Bearer ") else request.query.get("token", "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            self.metrics.count("talkface_rejected_total", reason="unauthorised")
            raise _json_error(web.HTTPUnauthorized, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})

    # --- lifecycle ---

    async def start(self, app: web.Application) -> None:
        """Start the model workers (in parallel) and their batching loops."""
        count = self.config.workers or len(os.sched_getaffinity(0))
        self.workers = [Worker(self.config.model) for _ in range(count)]
        self.dropped = {w: [] for w in self.workers}
        self.threads = ThreadPoolExecutor(count, thread_name_prefix="talkface-worker")
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self.threads, w.ready) for w in self.workers))
        self.tasks = [loop.create_task(self.run(w)) for w in self.workers]

    async def shutdown(self, app: web.Application) -> None:
        """Close every stream with 1001 (going away) after sending the frames it has."""
        for c in list(self.conns.values()):
            c.closed = True
            await _drain(c)
            await _close(c, 1001, "server shutting down")

    async def cleanup(self, app: web.Application) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.threads is not None:
            self.threads.shutdown(wait=True)
        for worker in self.workers:
            worker.stop()


def _json_error(
    kind: type[web.HTTPException], message: str, headers: dict[str, str] | None = None
) -> web.HTTPException:
    return kind(text=json.dumps({"error": message}), content_type="application/json", headers=headers)


async def _close(c: _Conn, code: int, message: str) -> None:
    """Close a stream's WebSocket; drop the connection if the client does not take the close in 2 s."""
    try:
        await asyncio.wait_for(c.ws.close(code=code, message=message.encode()[:120]), 2.0)
    except Exception:  # a stuck or broken client: cut it off
        if c.transport is not None:
            c.transport.abort()


async def _drain(c: _Conn) -> None:
    """Send what waits in a stream's outbox (at most 2 s, for a client that does not read)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2.0):
            while c.outbox:
                item, _ = c.outbox.popleft()
                await (c.ws.send_bytes(item) if isinstance(item, bytes) else c.ws.send_str(item))


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TalkfaceError(f"{what} must be a string, got {value!r}")
    return value


def _face(value: object) -> FaceParams:
    if isinstance(value, str):
        return FaceParams.from_mapping(parse_assignments(value, "face"))
    if isinstance(value, dict):
        return FaceParams.from_mapping(value)
    raise TalkfaceError('face must be an object like {"jawStrength": 0.8} or a string like "jawStrength=0.8"')


def _stream_settings(values: dict[str, Any], fps: float, http: bool = False) -> dict[str, Any]:
    """Validated settings of a stream or an HTTP request, with defaults."""
    known = {"fps", "emotion", "face", "seed"} | (set() if http else {"sample_rate", "format", "output", "subject"})
    unknown = sorted(set(values) - known - {"token"})
    if unknown:
        raise TalkfaceError(f"unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
    out: dict[str, Any] = {"fps": fps, "emotion": None, "face": FaceParams(), "seed": 0, "sample_rate": SAMPLE_RATE,
                           "format": "s16", "output": "json", "subject": None}  # fmt: skip
    try:
        if "fps" in values:
            out["fps"] = float(values["fps"])
        if "seed" in values:
            out["seed"] = int(values["seed"])
        if "sample_rate" in values:
            out["sample_rate"] = int(values["sample_rate"])
    except (TypeError, ValueError):
        raise TalkfaceError("fps, seed and sample_rate must be numbers") from None
    if not (math.isfinite(out["fps"]) and 1 <= out["fps"] <= 240):
        raise TalkfaceError(f"fps must be from 1 to 240, got {values['fps']!r}")
    if not 1000 <= out["sample_rate"] <= 384000:
        raise TalkfaceError(f"sample_rate must be from 1000 to 384000 Hz, got {values['sample_rate']!r}")
    if not 0 <= out["seed"] < 2**63:
        raise TalkfaceError("seed must be a whole number from 0")
    if "emotion" in values:
        spec_ = _text(values["emotion"], "emotion")
        out["emotion"] = parse_emotions(spec_) if spec_ else None
    if "face" in values:
        out["face"] = _face(values["face"])
    for key, choices in (("format", _SAMPLE), ("output", ("json", "binary"))):
        if key in values:
            if values[key] not in choices:
                raise TalkfaceError(f"{key} must be one of {', '.join(choices)}, got {values[key]!r}")
            out[key] = values[key]
    if "subject" in values:
        out["subject"] = _text(values["subject"], "subject")[:200]
    return out


def create_app(config: ServerConfig | None = None) -> web.Application:
    """The aiohttp application (`serve` runs it; tests run it on a loopback port)."""
    config = config or ServerConfig()
    server = Server(config)
    app = web.Application(client_max_size=int(config.max_upload_mb * 1024 * 1024))
    app[SERVER_KEY] = server
    app.router.add_post("/v1/animate", server.animate)
    app.router.add_get("/v1/stream", server.stream)
    app.router.add_get("/healthz", server.healthz)
    app.router.add_get("/metrics", server.metrics_text)
    app.router.add_get("/openapi.json", server.openapi)
    app.on_startup.append(server.start)
    app.on_shutdown.append(server.shutdown)
    app.on_cleanup.append(server.cleanup)
    return app


def serve(config: ServerConfig) -> None:
    """Run the server until SIGINT/SIGTERM, then close the streams gracefully."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, "blas")  # many small matrix products: threads would only contend
    app = create_app(config)
    print(f"talkface serving on http://{config.host}:{config.port} (WebSocket /v1/stream)", flush=True)
    web.run_app(app, host=config.host, port=config.port, print=None, shutdown_timeout=5.0, access_log=None)

