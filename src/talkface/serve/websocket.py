"""The WebSocket route, ``GET /v1/stream``: a stream of live audio in, frames out (`stream`).

WebSocket protocol (``/v1/stream``), all optional settings in the query string or a first
``{"type": "start", ...}`` message: ``sample_rate`` (default 16000), ``format`` ("s16" little-endian
16-bit or "f32" little-endian float, default s16), ``fps`` (default the server's), ``output``
("json" or "binary"), ``emotion`` ("joy=0.7"), ``face`` ({"jawStrength": 0.8} or "jawStrength=0.8"),
``seed``, ``subject`` (the Live Link subject name), ``rig`` ("oculus", "vrm", "vrm0", or in the start
message a mapping {target: {term: weight}} as `talkface.retarget` reads a rig file: frames then carry
the rig's targets; Live Link stays ARKit). Then:

- binary messages: PCM chunks of any length;
- ``{"type": "emotion", "emotion": "joy=0.5"}``, ``{"type": "face", "face": {...}}``: change mid-stream
  (a face message keeps the start's ``multiply`` and ``offset`` style options);
- ``{"type": "end"}``: flush; the last frames, then ``{"type": "end", "frames": N}`` and a normal close.

The server answers ``{"type": "ready", "names": [...], "fps": F, "latency": s, ...}`` first, then
frames as they become final: JSON ``{"type": "frames", "start": k, "times": [...], "frames": [[...], ...]}``
or binary: the 4 bytes ``TFF1``, uint32 first frame, uint16 frames, uint16 channels, float64 fps
(little-endian), then float32 values frame by frame. Frame k is at ``k / fps`` s of the stream.
Bad audio (NaN, a torn sample) closes the stream with 1007 and a message; a malformed control
message (not JSON, nested past Python's limits, wrong types) gets ``{"type": "error", "message": ...}``
and the stream goes on (a client that leaves `server.UNREAD_NOTES` of these and ``ready`` unread is
closed, 1008); an idle client is closed (1001) after
`idle_timeout`; a client that does not read its frames is closed (1008) once more than
`send_buffer_seconds` + `max_pending_seconds` of frames wait for it (the kernel's send buffer is
kept to 256 KB); a client that sends faster than real time is simply not read until its audio is
processed, so no stream holds more than `max_pending_seconds` of unprocessed audio.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import TYPE_CHECKING, Any

import numpy as np
from aiohttp import WSMsgType, web

from ..animation import Animation
from ..errors import TalkfaceError
from ..post import FaceParams, parse_emotions
from ..retarget import Rig
from ..stream import Stream
from .connections import Conn
from .http import json_error
from .settings import ERROR_CHARS, SAMPLE_FORMATS, face_setting, stream_settings, text_setting
from .workers import Worker, new_session

if TYPE_CHECKING:
    from .server import Server

_BINARY_HEADER = struct.Struct("<4sIHHd")
_SOCKET_BUFFER = 256 * 1024  # kernel send buffer per stream


class _WsConn(Conn):
    """A WebSocket stream (``/v1/stream``): JSON or binary frames, a JSON end message, WebSocket closes."""

    def __init__(self, ident: int, ws: web.WebSocketResponse, worker: Worker, settings: dict[str, Any],
                 transport: asyncio.Transport | None) -> None:  # fmt: skip
        super().__init__(ident, worker, settings)
        self.ws, self.transport = ws, transport
        self.binary = settings["output"] == "binary"
        self.rig: Rig | None = settings["rig"]  # frames go out on its targets; Live Link stays ARKit
        self.face: FaceParams = settings["face"]  # the start's: a ``face`` message keeps its multipliers and offsets

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
        except (RuntimeError, ConnectionError):  # aiohttp's "closing transport", or the connection lost
            raise ConnectionResetError from None

    async def close(self, code: int, message: str) -> None:
        """Close the WebSocket; drop the connection if the client does not take the close in 2 s, or leaves what
        was sent unread: aiohttp then closes the transport gracefully, which waits on a client that never reads
        (its socket and buffer were held for as long as it kept the connection open)."""
        closed = False
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=message.encode()[:120]), 2.0)
            closed = True
        except asyncio.CancelledError:  # also when the send loop waiting on the socket is cancelled: aiohttp's
            if asyncio.current_task().cancelling():  # writers share one wait for it to drain
                raise
        except Exception:  # a stuck or broken client: cut it off
            pass
        finally:
            if self.transport is not None and (not closed or self.transport.get_write_buffer_size()):
                self.transport.abort()

    def unsent_frames(self, message: str | bytes, frames: int) -> float:
        """From the bytes written to the socket but not yet taken by the kernel."""
        buffered = self.transport.get_write_buffer_size() if self.transport is not None else 0
        return buffered * frames / len(message)


async def stream(server: Server, request: web.Request) -> web.StreamResponse:
    """Run one WebSocket stream of `server` (the route's handler; `create_app` binds the server)."""
    server.authorise(request)
    if server.full():
        raise json_error(web.HTTPServiceUnavailable, f"too many streams (at most {server.config.max_streams})")
    try:
        settings = stream_settings(dict(request.query), server.config.fps)
        probe = new_session(server.engine, settings)  # checks what only a session can
    except TalkfaceError as e:
        raise json_error(web.HTTPBadRequest, str(e)) from None
    ws = web.WebSocketResponse(max_msg_size=server.config.max_message_bytes, timeout=5.0, heartbeat=None)
    if not ws.can_prepare(request).ok:
        raise json_error(web.HTTPBadRequest, "this endpoint speaks WebSocket: send an Upgrade request")
    await ws.prepare(request)
    c = _WsConn(next(server.ids), ws, server.least_busy(), settings, request.transport)
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is not None:  # bound the kernel's share too (it would grow to 4 MB for a client that never reads)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)

    async def receive() -> None:
        _ready(server, c, settings, probe)
        await _receive_loop(server, c)

    await server.run_stream(c, receive)
    return ws


def _ready(server: Server, c: _WsConn, settings: dict[str, Any], probe: Stream) -> None:
    """Tell the client the stream's settings (through the outbox: the receive loop never waits on the
    client's socket); `probe` is a session like the worker's."""
    server.start_livelink(c, settings["subject"], settings["fps"])
    c.latency, names = probe.latency, probe._post_names()
    if c.rig:
        names = list(c.rig.apply(Animation(np.zeros((0, len(names)), np.float32), settings["fps"], names)).names)
    server.tell(c, json.dumps({
        "type": "ready", "id": c.id, "fps": settings["fps"], "latency": round(c.latency, 4),
        "sample_rate": c.sample_rate, "format": settings["format"], "output": settings["output"], "names": names,
    }))  # fmt: skip


async def _receive_loop(server: Server, c: _WsConn) -> None:
    started = False
    while not c.closed:
        msg = await c.heard(c.ws.receive())
        if msg.type == WSMsgType.BINARY:
            started = True
            if not server.take_audio(c, msg.data):
                return
            await server.hold_back(c)
        elif msg.type == WSMsgType.TEXT:
            if await _control(server, c, msg.data, started):
                await server.finish(c)
                return
        else:  # CLOSE, CLOSING, CLOSED, ERROR: the client is gone
            if msg.type == WSMsgType.ERROR:
                server.metrics.count("talkface_stream_errors_total", kind="protocol")
            return


async def _control(server: Server, c: _WsConn, text: str, started: bool) -> bool:
    """Handle a JSON message; True when it ends the stream."""
    try:
        message = json.loads(text)
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise TalkfaceError('a control message is a JSON object with a "type"')
        kind = message["type"]
        if kind == "start":
            if started:
                raise TalkfaceError('"start" must come before any audio')
            settings = stream_settings({k: v for k, v in message.items() if k != "type"}, server.config.fps)
            probe = new_session(server.engine, settings)
            c.control(("start", settings))
            c.binary, c.rig, c.face = settings["output"] == "binary", settings["rig"], settings["face"]
            c.sample_rate, c.dtype = settings["sample_rate"], SAMPLE_FORMATS[settings["format"]]
            _ready(server, c, settings, probe)
            return False
        if kind == "emotion":
            c.control(("emotion", parse_emotions(text_setting(message.get("emotion", ""), "emotion"))))
        elif kind == "face":
            c.control(("face", face_setting(message.get("face"), c.face)))
        elif kind == "end":
            return True
        else:
            raise TalkfaceError(f"unknown message type {kind!r}; use start, emotion, face or end")
    # JSONDecodeError is a ValueError; nesting past Python's limits a RecursionError; 1e999 an OverflowError
    except (ValueError, TypeError, RecursionError, OverflowError, TalkfaceError) as e:
        server.metrics.count("talkface_stream_errors_total", kind="bad_message")
        message = str(e) or type(e).__name__
        if isinstance(e, RecursionError):
            message = "the message is nested too deeply"
        elif "int_max_str_digits" in message:  # (Python's own advice is not the client's)
            message = "a number in the message has too many digits"
        server.tell(c, json.dumps({"type": "error", "message": message[:ERROR_CHARS]}))
    return False
