"""The animation server: aiohttp, one event loop for the sockets, worker processes for the model.

WebSocket protocol (``/v1/stream``), all optional settings in the query string or a first
``{"type": "start", ...}`` message: ``sample_rate`` (default 16000), ``format`` ("s16" little-endian
16-bit or "f32" little-endian float, default s16), ``fps`` (default the server's), ``output``
("json" or "binary"), ``emotion`` ("joy=0.7"), ``face`` ({"jawStrength": 0.8} or "jawStrength=0.8"),
``seed``, ``subject`` (the Live Link subject name), ``rig`` ("oculus", "vrm", "vrm0", or in the start
message a mapping {target: {term: weight}} as `talkface.retarget` reads a rig file: frames then carry
the rig's targets; Live Link stays ARKit). Then:

- binary messages: PCM chunks of any length;
- ``{"type": "emotion", "emotion": "joy=0.5"}``, ``{"type": "face", "face": {...}}``: change mid-stream;
- ``{"type": "end"}``: flush; the last frames, then ``{"type": "end", "frames": N}`` and a normal close.

The server answers ``{"type": "ready", "names": [...], "fps": F, "latency": s, ...}`` first, then
frames as they become final: JSON ``{"type": "frames", "start": k, "times": [...], "frames": [[...], ...]}``
or binary: the 4 bytes ``TFF1``, uint32 first frame, uint16 frames, uint16 channels, float64 fps
(little-endian), then float32 values frame by frame. Frame k is at ``k / fps`` s of the stream.
Bad audio (NaN, a torn sample) closes the stream with 1007 and a message; a malformed control
message (not JSON, nested past Python's limits, wrong types) gets ``{"type": "error", "message": ...}``
and the stream goes on; an idle client is closed (1001) after
`idle_timeout`; a client that does not read its frames is closed (1008) once more than
`send_buffer_seconds` + `max_pending_seconds` of frames wait for it (the kernel's send buffer is
kept to 256 KB); a client that sends faster than real time is simply not read until its audio is
processed, so no stream holds more than `max_pending_seconds` of unprocessed audio.

A stream is a `Conn` whatever its transport: the WebSocket here, Audio2Face-3D's gRPC API in
`grpc` (``--grpc-port``); both share the workers, the limits and the metrics below.

Each stream is given to one of the model worker processes (`workers`, one per CPU core by
default), the least busy; a worker advances all of its streams with new audio in one batched model
step per tick, and the ticks follow the audio (a tick starts as soon as the last one ends and
audio waits). Files (``POST /v1/animate``) go to `animate_jobs` workers of their own, started by
the first such request (a server that only streams does without their memory).

A stuck worker is a dead worker: one that dies, or gives no answer within `worker_timeout` seconds
for a tick (for a file: per minute of its audio, plus one), is killed and replaced; its streams are
closed with 1011, the request it was working on gets a 503, and ``/healthz`` answers 503
``{"status": "degraded"}`` until the replacement is up. A client gets `request_timeout` seconds to
send a request's headers, and again its body (408). Every HTTP error is one line of JSON,
``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import itertools
import json
import logging
import math
import os
import signal
import socket
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf
from aiohttp import WSMsgType, web
from aiohttp.web_protocol import _ErrInfo

from ..animation import Animation
from ..animator import Animator
from ..audio import SAMPLE_RATE
from ..errors import TalkfaceError
from ..export import SUFFIXES, check_rig
from ..livelink import LiveLinkSender
from ..post import FaceParams, Style, parse_assignments, parse_emotions
from ..retarget import BUILTIN, Rig, load_rig
from ..stream import Engine, Stream
from .metrics import Metrics
from .openapi import spec
from .workers import FileJob, Item, JobError, Result, Worker, WorkerFailed, audio_error, new_session, stop_all

if TYPE_CHECKING:
    from .grpc import A2FServer

_MEDIA = {".csv": "text/csv", ".json": "application/json", ".tsv": "text/tab-separated-values",
          ".xml": "application/xml", ".dat": "text/plain", ".glb": "model/gltf-binary",
          ".usda": "text/plain"}  # fmt: skip
_BINARY_HEADER = struct.Struct("<4sIHHd")
_SOCKET_BUFFER = 256 * 1024  # kernel send buffer per stream
_SAMPLE = {"s16": np.dtype("<i2"), "f32": np.dtype("<f4")}
_ERROR_CHARS = 300  # an error message quotes at most this much of what it refuses
SERVER_KEY: web.AppKey[Server] = web.AppKey("server")
log = logging.getLogger("talkface.serve")


@dataclass(frozen=True)
class ServerConfig:
    """Limits and settings of `talkface serve` (the CLI options of the same names)."""

    host: str = "127.0.0.1"
    port: int = 8000
    http: bool = True  # serve HTTP and the WebSocket on `port` (False: gRPC only)
    grpc_port: int | None = None  # serve Audio2Face-3D's gRPC API there too (0: a free port; see `grpc`)
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
    animate_jobs: int = 2  # worker processes for POST /v1/animate
    workers: int | None = None  # model worker processes for streams (None: one per CPU core)
    worker_timeout: float = 30.0  # a worker silent this long on a tick (or per minute of a file) is stuck
    request_timeout: float = 30.0  # for a request's headers, and again for its body


class Conn:
    """One stream, whatever its transport: its session, the work waiting for the model, the messages
    waiting to go out. A transport (the WebSocket here, gRPC in `grpc`) subclasses it: `encode` makes
    its message of frames, `send` sends one, `close` ends the stream from the server's side.

    Close codes are WebSocket's, the server's one vocabulary: 1000 done, 1001 idle or shutting down,
    1007 bad audio, 1008 a client that does not read, 1009 too long, 1011 a failed worker or a bug."""

    def __init__(self, ident: int, worker: Worker, settings: dict[str, Any]) -> None:
        self.id, self.worker = ident, worker
        self.latency = 0.0  # the session's algorithmic latency (s)
        self.sample_rate, self.dtype = settings["sample_rate"], _SAMPLE[settings["format"]]
        self.pending: list[Item] = [("start", settings)]
        self.pending_samples = 0.0  # unprocessed audio, in 16 kHz samples
        self.received = 0.0  # 16 kHz samples so far
        self.arrivals: deque[tuple[float, float]] = deque()  # (received after a chunk, when it came)
        self.drained = asyncio.Event()
        self.outbox: deque[tuple[Any, int]] = deque()  # (message, frames in it)
        self.queued_frames = 0
        self.wake_sender = asyncio.Event()
        self.sending = asyncio.Lock()  # held while a message is being sent
        self.finished = asyncio.Event()  # the flush's frames are out, or the stream was closed
        self.ended = False  # the session has flushed
        self.closed = False
        self.closing: asyncio.Task | None = None  # the server's close of the stream, once begun
        self.frames = 0  # frames made so far (the next one's number)
        self.livelink: LiveLinkSender | None = None

    def encode(self, anim: Animation, first: int) -> Any:
        """The message carrying frames `first`... of the stream."""
        raise NotImplementedError

    def end_messages(self) -> list[Any]:
        """The messages that follow the last frames."""
        raise NotImplementedError

    async def send(self, message: Any) -> None:
        """Send one message; ConnectionResetError if the client is gone."""
        raise NotImplementedError

    async def close(self, code: int, message: str) -> None:
        """End the stream from the server's side with a close code (see the class doc) and a reason."""
        raise NotImplementedError

    def unsent_frames(self, message: Any, frames: int) -> float:
        """Frames of `message` (which holds `frames`) still in the transport's own buffer, not yet sent."""
        return 0.0


class _WsConn(Conn):
    """A WebSocket stream (``/v1/stream``): JSON or binary frames, a JSON end message, WebSocket closes."""

    def __init__(self, ident: int, ws: web.WebSocketResponse, worker: Worker, settings: dict[str, Any],
                 transport: asyncio.Transport | None) -> None:  # fmt: skip
        super().__init__(ident, worker, settings)
        self.ws, self.transport = ws, transport
        self.binary = settings["output"] == "binary"
        self.rig: Rig | None = settings["rig"]  # frames go out on its targets; Live Link stays ARKit

    def encode(self, anim: Animation, first: int) -> str | bytes:
        anim = self.rig.apply(anim) if self.rig else anim
        if self.binary:
            head = _BINARY_HEADER.pack(b"TFF1", first, anim.num_frames, len(anim.names), anim.fps)
            return head + anim.weights.astype("<f4").tobytes()
        times = [round((first + i) / anim.fps, 6) for i in range(anim.num_frames)]
        frames = np.round(anim.weights.astype(np.float64), 6).tolist()
        return json.dumps({"type": "frames", "start": first, "times": times, "frames": frames})

    def end_messages(self) -> list[str]:
        return [json.dumps({"type": "end", "frames": self.frames})]

    async def send(self, message: str | bytes) -> None:
        try:
            await (self.ws.send_bytes(message) if isinstance(message, bytes) else self.ws.send_str(message))
        except RuntimeError:  # aiohttp's "closing transport"
            raise ConnectionResetError from None

    async def close(self, code: int, message: str) -> None:
        """Close the WebSocket; drop the connection if the client does not take the close in 2 s."""
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=message.encode()[:120]), 2.0)
        except Exception:  # a stuck or broken client: cut it off
            if self.transport is not None:
                self.transport.abort()

    def unsent_frames(self, message: str | bytes, frames: int) -> float:
        """From the bytes written to the socket but not yet taken by the kernel."""
        buffered = self.transport.get_write_buffer_size() if self.transport is not None else 0
        return buffered * frames / len(message)


class Server:
    """The state behind the routes: the model engine, the live streams, the workers' batching loops."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.animator = Animator(config.fps, model=config.model)
        self.engine: Engine = self.animator.stream_engine
        self.metrics = Metrics()
        self.conns: dict[int, Conn] = {}
        self.ids = itertools.count(1)
        self.workers: list[Worker] = []  # for streams
        self.file_workers: list[Worker] = []  # for POST /v1/animate, started by the first one
        self.file_workers_started: asyncio.Future | None = None
        self.free_file_workers: asyncio.Queue[Worker | None] = asyncio.Queue()  # None: the server is stopping
        self.dropped: dict[Worker, list[int]] = {}  # streams whose clients left, for their worker to forget
        self.threads: ThreadPoolExecutor | None = None  # waits on the workers' pipes
        self.waiting_jobs = 0
        self.tasks: set[asyncio.Task] = set()  # batching loops and worker replacements
        self.stopping = False
        self.grpc: A2FServer | None = None  # the gRPC server, with --grpc-port

    # --- the batching loops, one per worker ---

    async def run(self, worker: Worker) -> None:
        """The batching loop of one stream worker: a tick whenever its streams have work."""
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
                results = await self._call(worker, work, self.config.worker_timeout)
            except WorkerFailed as e:  # its streams are gone
                self._failed(worker, str(e))
                await self._replace(worker)
                continue
            self.metrics.observe("talkface_tick_seconds", time.perf_counter() - started)
            now = time.monotonic()
            for c in mine:
                c.pending_samples = sum(len(i[1]) * SAMPLE_RATE / c.sample_rate for i in c.pending if i[0] == "audio")
                c.drained.set()
            for result in results:
                c = self.conns.get(result.stream)
                if c is not None:
                    self._deliver(c, result, now)

    async def _call(self, worker: Worker, message: list[tuple[int, list[Item]]] | FileJob, seconds: float) -> Any:
        """A worker's answer to a message; WorkerFailed if it died or gave none in `seconds` (then it is killed)."""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self.threads, worker.call, message), seconds)
        except TimeoutError:
            worker.kill()  # the thread waiting on its pipe sees it close and ends
            raise WorkerFailed(f"the model worker made no progress in {seconds:.3g} s and was replaced") from None

    def _failed(self, worker: Worker, reason: str) -> None:
        """A worker died or is stuck: mark it down (/healthz degraded) and close its streams with 1011."""
        log.warning("model worker %d: %s", worker.process.pid or 0, reason)
        worker.healthy = False
        self.metrics.count("talkface_worker_restarts_total")
        for c in list(self.conns.values()):
            if c.worker is worker:
                self.end(c, 1011, "the model worker of this stream failed")
        if worker in self.dropped:
            self.dropped[worker] = []  # the replacement never knew those sessions

    async def _replace(self, worker: Worker) -> None:
        """Start a new process for a failed worker (until one comes up); a file worker then takes jobs again."""
        loop = asyncio.get_running_loop()
        while not self.stopping:
            try:
                await loop.run_in_executor(self.threads, worker.restart)
            except TalkfaceError as e:
                log.warning("a model worker did not restart (%s); trying again", e)
                await asyncio.sleep(1.0)
                continue
            worker.healthy = True
            if worker in self.file_workers:
                self.free_file_workers.put_nowait(worker)
            return

    def _spawn(self, coro: Awaitable[None]) -> None:
        """Run a background task that `cleanup` cancels."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _deliver(self, c: Conn, result: Result, now: float) -> None:
        """Frames (or an error) from a tick to a stream's outbox; latency and backpressure bookkeeping."""
        if c.closed:
            return
        anim = result.frames
        if anim is None:
            self.metrics.count("talkface_stream_errors_total", kind="bad_audio")
            self.end(c, 1007, result.error or "bad audio")
            return
        c.ended = result.ended
        if anim.num_frames:
            first = c.frames
            c.frames += anim.num_frames
            self._latencies(c, anim, first, now)
            if c.livelink is not None:
                c.livelink.send(anim)
            message = c.encode(anim, first)
            c.outbox.append((message, anim.num_frames))
            c.queued_frames += anim.num_frames
            self.metrics.count("talkface_frames_total", anim.num_frames)
            c.wake_sender.set()
            # frames waiting in the outbox and in the transport's user-space buffer: a burst of up to
            # max_pending_seconds of audio is fine, more than that is a client that does not read
            unsent = c.queued_frames + c.unsent_frames(message, anim.num_frames)
            if unsent > (self.config.send_buffer_seconds + self.config.max_pending_seconds) * anim.fps:
                self.metrics.count("talkface_stream_errors_total", kind="slow_client")
                self.end(c, 1008, "client too slow: it does not read its frames")
                return
        if c.ended:
            c.outbox.extend((m, 0) for m in c.end_messages())
            c.wake_sender.set()
            c.finished.set()

    def _latencies(self, c: Conn, anim: Animation, first: int, now: float) -> None:
        """Seconds from the arrival of the audio that made each frame final to its hand-over to the socket."""
        for k in range(first, first + anim.num_frames):
            need = (k / anim.fps + c.latency) * SAMPLE_RATE
            while len(c.arrivals) > 1 and c.arrivals[1][0] <= need:
                c.arrivals.popleft()
            if not c.ended and c.arrivals and c.arrivals[0][0] >= need - 1:
                self.metrics.observe("talkface_frame_latency_seconds", now - c.arrivals[0][1])

    def end(self, c: Conn, code: int, message: str) -> None:
        """Close a stream from the server's side (once): drop its unsent frames, wake whatever waits on it."""
        if c.closing is not None:
            return
        c.closed = True
        c.outbox.clear()
        c.queued_frames = 0
        c.drained.set()  # a receive loop held back by backpressure
        c.finished.set()  # a receive loop waiting for the flush
        c.closing = asyncio.get_running_loop().create_task(c.close(code, message))

    # --- streams, whatever their transport ---

    def full(self) -> bool:
        """Whether a new stream would pass `max_streams` (counted as refused when so)."""
        if len(self.conns) < self.config.max_streams:
            return False
        self.metrics.count("talkface_rejected_total", reason="too_many_streams")
        return True

    def least_busy(self) -> Worker:
        """The worker for a new stream: the one with the fewest streams, among those that work."""
        return min(self.workers, key=lambda w: (not w.healthy, w.streams))

    async def run_stream(self, c: Conn, receive: Callable[[], Awaitable[None]]) -> None:
        """Run a stream from its start to its end: `receive` reads the client's messages (with `take_audio`,
        `hold_back`, `finish`) while the send loop sends what the worker makes. Every way out (a close
        either side, an error, a cancel) gives the stream's slot back."""
        worker = c.worker
        sender = asyncio.get_running_loop().create_task(self._send_loop(c))
        worker.streams += 1
        self.conns[c.id] = c
        try:
            self.metrics.count("talkface_streams_total")
            await receive()
        except Exception:  # a bug: this stream ends, the server goes on
            log.exception("stream %d failed", c.id)
            self.end(c, 1011, "internal error")
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
            if c.closing is None:
                c.closing = asyncio.get_running_loop().create_task(c.close(1000, ""))
            await c.closing

    def start_livelink(self, c: Conn, subject: str | None, fps: float) -> None:
        """Send the stream's frames as Live Link Face packets too, when the server was asked to."""
        if c.livelink is not None:
            c.livelink.close()
        if self.config.livelink:
            c.livelink = LiveLinkSender(self.config.livelink, subject or f"talkface-{c.id}", fps)

    def take_audio(self, c: Conn, data: bytes) -> bool:
        """A chunk of the stream's PCM (in its sample format) for its worker; False if it ended the stream."""
        if len(data) % c.dtype.itemsize:
            self.metrics.count("talkface_stream_errors_total", kind="bad_audio")
            self.end(c, 1007, f"a {c.dtype.itemsize}-byte sample format needs whole samples")
            return False
        pcm = np.frombuffer(data, c.dtype)
        samples = pcm.size * SAMPLE_RATE / c.sample_rate
        if (c.received + samples) / SAMPLE_RATE > self.config.max_stream_seconds:
            self.end(c, 1009, f"stream longer than {self.config.max_stream_seconds:g} s")
            return False
        c.received += samples
        c.pending_samples += samples
        c.arrivals.append((c.received, time.monotonic()))
        c.pending.append(("audio", pcm))
        self.metrics.count("talkface_audio_seconds_total", samples / SAMPLE_RATE)
        c.worker.wake.set()
        return True

    async def hold_back(self, c: Conn) -> None:
        """Wait while the stream holds more than `max_pending_seconds` of unprocessed audio: not reading
        is the backpressure on a client that sends faster than real time."""
        while c.pending_samples > self.config.max_pending_seconds * SAMPLE_RATE and not c.closed:
            c.drained.clear()
            await c.drained.wait()

    async def finish(self, c: Conn) -> None:
        """The client's audio has ended: flush the session, send the last frames and end the stream normally."""
        c.pending.append(("end",))
        c.worker.wake.set()
        await c.finished.wait()  # the flush, or a close (bad audio, a failed worker)
        if not c.closed:
            await _drain(c)
            self.end(c, 1000, "")

    async def _send_loop(self, c: Conn) -> None:
        while True:
            await c.wake_sender.wait()
            c.wake_sender.clear()
            while c.outbox and not c.closed:
                async with c.sending:
                    if not c.outbox:  # `_drain` sent it
                        break
                    item, frames = c.outbox.popleft()
                    try:
                        await c.send(item)
                    except ConnectionResetError:  # the client went away
                        c.closed = True
                        return
                    c.queued_frames -= frames

    # --- WebSocket streams ---

    async def stream(self, request: web.Request) -> web.StreamResponse:
        self._authorise(request)
        if self.full():
            raise _json_error(web.HTTPServiceUnavailable, f"too many streams (at most {self.config.max_streams})")
        try:
            settings = stream_settings(dict(request.query), self.config.fps)
            probe = new_session(self.engine, settings)  # checks what only a session can
        except TalkfaceError as e:
            raise _json_error(web.HTTPBadRequest, str(e)) from None
        ws = web.WebSocketResponse(max_msg_size=self.config.max_message_bytes, timeout=5.0, heartbeat=None)
        if not ws.can_prepare(request).ok:
            raise _json_error(web.HTTPBadRequest, "this endpoint speaks WebSocket: send an Upgrade request")
        await ws.prepare(request)
        c = _WsConn(next(self.ids), ws, self.least_busy(), settings, request.transport)
        sock = request.transport.get_extra_info("socket") if request.transport is not None else None
        if sock is not None:  # bound the kernel's share too (it would grow to 4 MB for a client that never reads)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)

        async def receive() -> None:
            await self._ready(c, settings, probe)
            await self._receive_loop(c)

        await self.run_stream(c, receive)
        return ws

    async def _ready(self, c: _WsConn, settings: dict[str, Any], probe: Stream) -> None:
        """Tell the client the stream's settings; `probe` is a session like the worker's."""
        self.start_livelink(c, settings["subject"], settings["fps"])
        c.latency, names = probe.latency, probe._post_names()
        if c.rig:
            names = list(c.rig.apply(Animation(np.zeros((0, len(names)), np.float32), settings["fps"], names)).names)
        await c.ws.send_str(json.dumps({
            "type": "ready", "id": c.id, "fps": settings["fps"], "latency": round(c.latency, 4),
            "sample_rate": c.sample_rate, "format": settings["format"], "output": settings["output"], "names": names,
        }))  # fmt: skip

    async def _receive_loop(self, c: _WsConn) -> None:
        started = False
        while not c.closed:
            try:
                msg = await c.ws.receive(timeout=self.config.idle_timeout)
            except TimeoutError:
                self.metrics.count("talkface_stream_errors_total", kind="idle")
                self.end(c, 1001, f"idle for {self.config.idle_timeout:g} s")
                return
            if msg.type == WSMsgType.BINARY:
                started = True
                if not self.take_audio(c, msg.data):
                    return
                await self.hold_back(c)
            elif msg.type == WSMsgType.TEXT:
                if await self._control(c, msg.data, started):
                    await self.finish(c)
                    return
            else:  # CLOSE, CLOSING, CLOSED, ERROR: the client is gone
                if msg.type == WSMsgType.ERROR:
                    self.metrics.count("talkface_stream_errors_total", kind="protocol")
                return

    async def _control(self, c: _WsConn, text: str, started: bool) -> bool:
        """Handle a JSON message; True when it ends the stream."""
        try:
            message = json.loads(text)
            if not isinstance(message, dict) or not isinstance(message.get("type"), str):
                raise TalkfaceError('a control message is a JSON object with a "type"')
            kind = message["type"]
            if kind == "start":
                if started:
                    raise TalkfaceError('"start" must come before any audio')
                settings = stream_settings({k: v for k, v in message.items() if k != "type"}, self.config.fps)
                probe = new_session(self.engine, settings)
                c.pending.append(("start", settings))
                c.binary = settings["output"] == "binary"
                c.sample_rate, c.dtype = settings["sample_rate"], _SAMPLE[settings["format"]]
                await self._ready(c, settings, probe)
                return False
            if kind == "emotion":
                c.pending.append(("emotion", parse_emotions(_text(message.get("emotion", ""), "emotion"))))
            elif kind == "face":
                c.pending.append(("face", _face(message.get("face"))))
            elif kind == "end":
                return True
            else:
                raise TalkfaceError(f"unknown message type {kind!r}; use start, emotion, face or end")
        # JSONDecodeError is a ValueError; nesting past Python's limits a RecursionError; 1e999 an OverflowError
        except (ValueError, TypeError, RecursionError, OverflowError, TalkfaceError) as e:
            self.metrics.count("talkface_stream_errors_total", kind="bad_message")
            message = str(e) or type(e).__name__
            if isinstance(e, RecursionError):
                message = "the message is nested too deeply"
            c.outbox.append((json.dumps({"type": "error", "message": message[:_ERROR_CHARS]}), 0))
            c.wake_sender.set()
        return False

    # --- HTTP ---

    async def animate(self, request: web.Request) -> web.Response:
        """An audio file in the body, the animation file back (see the OpenAPI spec)."""
        self._authorise(request)
        try:
            query = dict(request.query)
            fmt = query.pop("format", "json").lower()
            if fmt not in SUFFIXES:
                raise TalkfaceError(f"unknown format {fmt!r}; choose one of: {', '.join(SUFFIXES)}")
            text = query.pop("text", None)
            settings = stream_settings(query, self.config.fps, http=True)
            if settings["rig"] is not None:
                check_rig(fmt)
        except TalkfaceError as e:
            raise _json_error(web.HTTPBadRequest, str(e)) from None
        try:
            async with asyncio.timeout(self.config.request_timeout):
                body = await _read_body(request)
        except TimeoutError:
            raise _json_error(
                web.HTTPRequestTimeout, f"the request body did not arrive within {self.config.request_timeout:g} s"
            ) from None
        if not body:
            raise _json_error(web.HTTPBadRequest, "send the audio file (WAV, FLAC or Ogg) as the request body")
        try:
            seconds = _duration(body)
            if seconds > self.config.max_audio_seconds:
                raise TalkfaceError(f"audio longer than {self.config.max_audio_seconds:g} s; stream it instead")
        except TalkfaceError as e:
            raise _json_error(web.HTTPUnprocessableEntity, str(e)) from None
        if self.stopping:
            raise _json_error(web.HTTPServiceUnavailable, "the server is shutting down")
        if self.waiting_jobs >= 4 * self.config.animate_jobs:
            raise _json_error(web.HTTPServiceUnavailable, "too many animation requests waiting; try again")
        self.waiting_jobs += 1
        try:
            job = FileJob(body, fmt, SUFFIXES[fmt], text, settings)
            answer = await self._file_job(job, self.config.worker_timeout * (1 + seconds / 60))
        except WorkerFailed as e:
            raise _json_error(web.HTTPServiceUnavailable, f"{e}; try again") from None
        finally:
            self.waiting_jobs -= 1
        if isinstance(answer, JobError):
            if answer.internal:
                log.error("POST /v1/animate failed: %s", answer.message)
                raise _json_error(web.HTTPInternalServerError, f"internal error: {answer.message}")
            raise _json_error(web.HTTPUnprocessableEntity, answer.message)
        self.metrics.count("talkface_animations_total")
        return web.Response(body=answer, content_type=_MEDIA.get(SUFFIXES[fmt], "application/octet-stream"))

    async def _file_job(self, job: FileJob, seconds: float) -> bytes | JobError:
        """Run a file job on the next free file worker, with `seconds` for it; WorkerFailed if it failed.

        A worker whose answer did not come (stuck, dead, or this request cancelled) is replaced: its
        pipe may still carry an answer meant for this job."""
        if self.file_workers_started is None:
            self.file_workers_started = asyncio.ensure_future(self._start_file_workers())
        await asyncio.shield(self.file_workers_started)
        worker = await self.free_file_workers.get()
        if worker is None or self.stopping:
            if worker is not None:
                self.free_file_workers.put_nowait(worker)
            raise WorkerFailed("the server is shutting down")
        answered = False
        try:
            answer = await self._call(worker, job, seconds)
            answered = True
            return answer
        except WorkerFailed as e:
            if self.stopping:  # killed by `shutdown`
                raise WorkerFailed("the server is shutting down") from None
            self._failed(worker, str(e))
            raise
        finally:
            if answered:
                self.free_file_workers.put_nowait(worker)
            else:
                worker.kill()
                worker.healthy = False
                self._spawn(self._replace(worker))

    async def _start_file_workers(self) -> None:
        """Start the file workers (on the first POST: a server that only streams does without their memory)."""
        self.file_workers = [Worker(self.config.model, files=True) for _ in range(self.config.animate_jobs)]
        loop = asyncio.get_running_loop()
        try:
            await asyncio.gather(*(loop.run_in_executor(self.threads, w.ready) for w in self.file_workers))
        except TalkfaceError as e:
            for w in self.file_workers:
                w.kill()
            self.file_workers, self.file_workers_started = [], None  # the next request tries again
            raise WorkerFailed(str(e)) from None
        for w in self.file_workers:
            self.free_file_workers.put_nowait(w)

    async def healthz(self, request: web.Request) -> web.Response:
        """200 {"status": "ok"} when every worker works; 503 {"status": "degraded"} while one is being replaced."""
        ok = all(w.healthy for w in self.workers + self.file_workers)
        streams, most = len(self.conns), self.config.max_streams
        body = {"status": "ok" if ok else "degraded", "streams": streams, "max_streams": most}
        return web.json_response(body, status=200 if ok else 503)

    async def metrics_text(self, request: web.Request) -> web.Response:
        self._authorise(request)
        self.metrics.gauge("talkface_streams_active", len(self.conns))
        self.metrics.gauge("talkface_workers_down", sum(not w.healthy for w in self.workers + self.file_workers))
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
        """Start the model workers (in parallel) and the streams' batching loops."""
        count = self.config.workers or len(os.sched_getaffinity(0))
        self.workers = [Worker(self.config.model) for _ in range(count)]
        self.dropped = {w: [] for w in self.workers}
        # a thread per worker waits on its pipe (file workers too, once started); as many again for
        # replacements and for calls being abandoned
        self.threads = ThreadPoolExecutor(2 * (count + self.config.animate_jobs), thread_name_prefix="talkface-worker")
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self.threads, w.ready) for w in self.workers))
        for w in self.workers:
            self._spawn(self.run(w))
        if self.config.grpc_port is not None:
            try:
                await self._start_grpc()
            except TalkfaceError:
                await asyncio.to_thread(stop_all, self.workers)
                raise

    async def _start_grpc(self) -> None:
        """Serve Audio2Face-3D's gRPC API on `grpc_port` too; TalkfaceError without the grpc extra or the port."""
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # gRPC's C core logs to stderr beside our one line
        try:
            from .grpc import A2FServer
        except ImportError as e:
            message = f"the gRPC API needs talkface's grpc extra: pip install 'talkface[grpc]' ({e})"
            raise TalkfaceError(message) from None
        self.grpc = A2FServer(self)
        await self.grpc.start()

    async def shutdown(self, app: web.Application) -> None:
        """Close every stream with 1001 (going away) after sending the frames it has (all at once, 4 s at most);
        give the files being animated until then to finish, and answer the rest 503."""
        self.stopping = True
        grace = time.monotonic() + 4.0
        for _ in range(self.waiting_jobs):  # wakes the requests waiting for a file worker
            self.free_file_workers.put_nowait(None)

        async def going_away(c: Conn) -> None:
            c.closed = True  # no more work for it, nothing more into its outbox
            await _drain(c)
            self.end(c, 1001, "server shutting down")
            if c.closing is not None:
                await c.closing

        await asyncio.gather(*(going_away(c) for c in list(self.conns.values()) if c.closing is None))
        if self.grpc is not None:
            await self.grpc.stop()
        while any(w.busy for w in self.file_workers) and time.monotonic() < grace:
            await asyncio.sleep(0.05)
        for worker in self.file_workers:
            if worker.busy:  # its request gets a 503 now, not when aiohttp gives up on it
                worker.kill()

    async def cleanup(self, app: web.Application) -> None:
        """Stop the loops and the workers: idle ones exit, busy or stuck ones are killed (seconds at most)."""
        self.stopping = True
        for task in list(self.tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(stop_all, self.workers + self.file_workers)
        if self.threads is not None:  # their pipes are closed now: every waiting thread has ended or soon will
            self.threads.shutdown(wait=True, cancel_futures=True)


@web.middleware
async def _json_errors(
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
            message = f"no such path: {request.path[:_ERROR_CHARS]} (see /openapi.json)"
        elif isinstance(e, web.HTTPMethodNotAllowed):
            message = f"{request.method[:20]} is not allowed here; use {', '.join(sorted(e.allowed_methods))}"
        elif isinstance(e, web.HTTPRequestEntityTooLarge):
            message = f"request body over the {request.app[SERVER_KEY].config.max_upload_mb:g} MB limit"
        headers = {k: e.headers[k] for k in ("Allow", "WWW-Authenticate") if k in e.headers}
        response = web.json_response({"error": message}, status=e.status, headers=headers)
    except Exception:  # a bug: a 500 with no traceback for the client, the traceback in the log
        log.exception("%s %s failed", request.method, request.path)
        response = web.json_response({"error": "internal error"}, status=500)
    if response.status == 408:  # no keep-alive after a body that did not come
        response.force_close()
    return response


def _json_error(
    kind: type[web.HTTPException], message: str, headers: dict[str, str] | None = None
) -> web.HTTPException:
    """An HTTP error; the `_json_errors` middleware sends it as {"error": message}."""
    return kind(text=message, headers=headers)


async def _read_body(request: web.Request) -> bytes:
    """The request's body; the 400 `_JsonErrorProtocol.data_received` set if the parser refused it midway."""
    body = await request.read()
    if isinstance(refused := request.content.exception(), web.HTTPException):
        raise refused
    return body


def _duration(body: bytes) -> float:
    """Seconds of audio in an audio file, from its header; TalkfaceError if it is not one."""
    try:
        info = sf.info(io.BytesIO(body))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise audio_error(e) from None
    return info.frames / info.samplerate


async def _drain(c: Conn) -> None:
    """Send what waits in a stream's outbox, after what is being sent (at most 2 s, for a client that does not read)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2.0), c.sending:
            while c.outbox:
                item, _ = c.outbox.popleft()
                await c.send(item)


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


def stream_settings(values: dict[str, Any], fps: float, http: bool = False) -> dict[str, Any]:
    """Validated settings of a stream or an HTTP request, with defaults."""
    known = {"fps", "emotion", "face", "seed", "rig", "style"}
    known |= set() if http else {"sample_rate", "format", "output", "subject"}
    unknown = sorted(set(values) - known - {"token"})
    if unknown:
        raise TalkfaceError(f"unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
    style = _style(values["style"]) if "style" in values else Style()
    out: dict[str, Any] = {"fps": fps, "emotion": style.emotion, "face": style.face, "seed": style.seed,
                           "sample_rate": SAMPLE_RATE, "format": "s16", "output": "json", "subject": None,
                           "emotion_settings": style.emotion_settings, "style": style, "rig": None}  # fmt: skip
    try:
        if "fps" in values:
            out["fps"] = float(values["fps"])
        if "seed" in values:
            out["seed"] = int(values["seed"])
        if "sample_rate" in values:
            out["sample_rate"] = int(values["sample_rate"])
    except (TypeError, ValueError, OverflowError):
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
    if "rig" in values:
        out["rig"] = _rig(values["rig"])
    return out


def _style(value: object) -> Style:
    """`animate`'s style options by name (`Style.from_options`): an object, or its JSON in a query."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, dict):
        raise TalkfaceError('style must be an object of style options, like {"no-blink": true, "head-strength": 0.5}')
    return Style.from_options(value)


def _rig(value: object) -> Rig | None:
    """A built-in rig by name, or a mapping {target: {term: weight}} (a client names no server file)."""
    if isinstance(value, dict):
        try:
            mapping = {str(target): {str(k): float(w) for k, w in terms.items()} for target, terms in value.items()}
            return Rig.from_terms("rig", mapping)
        except (AttributeError, TypeError, ValueError, OverflowError):
            raise TalkfaceError("rig must map each target to {term: weight, ...} with numbers as weights") from None
    name = _text(value, "rig")
    if name not in BUILTIN:
        raise TalkfaceError(f"rig must be one of {', '.join(BUILTIN)} or a mapping, got {name!r}")
    return load_rig(name)


def create_app(config: ServerConfig | None = None) -> web.Application:
    """The aiohttp application (`serve` runs it; tests run it on a loopback port)."""
    config = config or ServerConfig()
    server = Server(config)
    app = web.Application(client_max_size=int(config.max_upload_mb * 1024 * 1024), middlewares=[_json_errors])
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


class _JsonErrorProtocol(web.RequestHandler):
    """aiohttp's connection protocol, its own error answers as one line of JSON like the app's.

    A request aiohttp's parser refuses (bad request line, header, Content-Length or chunk size; a line
    over 8190 bytes) never reaches the app, so `_json_errors` never sees it: aiohttp answers it with
    `handle_error`, in plain text. aiohttp offers no hook for that answer (aio-libs/aiohttp#3287), hence
    this override and the two classes below that install it, which use aiohttp internals (as of 3.14:
    `AppRunner._make_server`, `Server._loop`, `Server._kwargs`; for a body refused after its request
    began, `RequestHandler._messages`, `_current_request`, `_ErrInfo`);
    test_serve_fuzz.py::test_requests_the_parser_refuses_get_json_errors and
    ::test_a_body_that_turns_malformed_is_refused_at_once fail if any of it changes."""

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """aiohttp's answer (it logs the error, raises when an answer has begun), as {"error": "..."}."""
        super().handle_error(request, status, exc, message)
        text = "internal error" if status >= 500 else _refusal(message) or HTTPStatus(status).phrase
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
            refused = _json_error(web.HTTPBadRequest, _refusal(error.message) or "malformed request body")
            request.content.set_exception(refused)
            request.content.feed_eof()  # a read woken by the chunk before the error ends: `_read_body` raises
            self.close()


def _refusal(message: str | None) -> str:
    """The answer to a request aiohttp's parser refused, from its message (after the colon: the bad bytes)."""
    what = (message or "").strip().split("\n", 1)[0].split(":", 1)[0]
    return f"malformed HTTP request: {what}"[:_ERROR_CHARS] if what else ""


class _JsonErrorServer(web.Server):
    """aiohttp's low-level server, making `_JsonErrorProtocol`s (Server.__call__ makes RequestHandlers)."""

    def __call__(self) -> web.RequestHandler:
        return _JsonErrorProtocol(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    """`web.AppRunner` whose server is a `_JsonErrorServer`: aiohttp's own, made again with its settings."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()  # starts the app
        return _JsonErrorServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            **server._kwargs,
        )


def make_runner(config: ServerConfig) -> web.AppRunner:
    """The app's runner with the server's connection limits: a connection that has not sent a whole
    request's headers within `request_timeout` (aiohttp's keep-alive timer runs from the connection's
    start) is closed, so is an idle keep-alive one; the unread rest of a refused body (408, 413) is
    taken for 2 s at most (so the client can read the answer before the close), not aiohttp's 10.
    Requests aiohttp's parser refuses get JSON errors too (`_JsonErrorProtocol`)."""
    return _Runner(
        create_app(config),
        access_log=None,
        shutdown_timeout=5.0,
        keepalive_timeout=config.request_timeout,
        lingering_time=2.0,
    )


async def _serve(config: ServerConfig) -> None:
    runner = make_runner(config)
    await runner.setup()  # starts the model workers (and the gRPC server)
    try:
        host = f"[{config.host}]" if ":" in config.host else config.host
        if config.http:
            try:
                await web.TCPSite(runner, config.host, config.port).start()
            except OSError as e:
                reason = (e.strerror or str(e)).rsplit(": ", 1)[-1]  # asyncio's message repeats the address
                raise TalkfaceError(f"cannot listen on {config.host}:{config.port}: {reason}") from None
            port = runner.addresses[0][1]  # the bound port: --port 0 asks for a free one
            print(f"talkface serving on http://{host}:{port} (WebSocket /v1/stream)", flush=True)
        grpc = runner.app[SERVER_KEY].grpc
        if grpc is not None:
            print(f"talkface serving Audio2Face-3D gRPC on {host}:{grpc.port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await close(runner)


async def close(runner: web.AppRunner, seconds: float = 8.0) -> None:
    """`runner.cleanup()`, bounded: aiohttp can wait without end for a connection it still counts as
    busy (seen after a refused WebSocket handshake followed by a stream); past `seconds` the
    connections are left to the process's exit and the workers are stopped here."""
    try:
        await asyncio.wait_for(runner.cleanup(), seconds)
    except TimeoutError:
        await runner.app[SERVER_KEY].cleanup(runner.app)


def serve(config: ServerConfig) -> None:
    """Run the server until SIGINT/SIGTERM, then close the streams gracefully (seconds at most)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, "blas")  # many small matrix products: threads would only contend
    asyncio.run(_serve(config))
