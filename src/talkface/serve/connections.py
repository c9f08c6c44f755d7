"""A stream of the server, whatever its transport (`Conn`): what the server's engine (`server`) keeps
of it, and what a transport (the WebSocket in `websocket`, gRPC in `grpc`) adds by subclassing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable
from typing import Any

import numpy as np

from ..animation import Animation
from ..livelink import LiveLinkSender
from .settings import SAMPLE_FORMATS
from .workers import Item, Worker

_CONTROLS = ("start", "emotion", "face")


class Conn:
    """One stream, whatever its transport: its session, the work waiting for the model, the messages
    waiting to go out. A transport (the WebSocket in `websocket`, gRPC in `grpc`) subclasses it: `encode` makes
    its message of frames, `send` sends one, `close` ends the stream from the server's side.

    Close codes are WebSocket's, the server's one vocabulary: 1000 done, 1001 idle or shutting down,
    1007 bad audio, 1008 a client that does not read, 1009 too long, 1011 a failed worker or a bug."""

    def __init__(self, ident: int, worker: Worker, settings: dict[str, Any]) -> None:
        self.id, self.worker = ident, worker
        self.latency = 0.0  # the session's algorithmic latency (s)
        self.sample_rate, self.dtype = settings["sample_rate"], SAMPLE_FORMATS[settings["format"]]
        self.pending: list[Item] = [("start", settings)]
        self.pending_samples = 0.0  # unprocessed audio, in 16 kHz samples
        self.unheard = 0  # of it, what the worker holds for its next steps (`workers.tick`)
        self.received = 0.0  # 16 kHz samples so far
        self.arrivals: deque[tuple[float, float]] = deque()  # (received after a chunk, when it came)
        self.drained = asyncio.Event()
        self.outbox: deque[tuple[Any, int]] = deque()  # (message, frames in it)
        self.queued_frames = 0
        self.caught_up = time.monotonic()  # when it last had no more than a send buffer's worth of frames unread
        self.wake_sender = asyncio.Event()
        self.sending = asyncio.Lock()  # held while a message is being sent
        self.finished = asyncio.Event()  # the flush's frames are out, or the stream was closed
        self.ended = False  # the session has flushed
        self.closed = False
        self.closing: asyncio.Task | None = None  # the server's close of the stream, once begun
        self.frames = 0  # frames made so far (the next one's number)
        self.livelink: LiveLinkSender | None = None
        self.waiting_since: float | None = None  # monotonic time the transport began waiting for a message

    def control(self, item: Item) -> None:
        """A control item for the worker (``start``, ``emotion``, ``face``), in order with the audio: it
        replaces one of its kind sent since the last audio (the later one wins anyway), and the worker
        is woken, so a client that sends only control messages holds at most one of each kind here."""
        since = len(self.pending)
        while since and self.pending[since - 1][0] in _CONTROLS:
            since -= 1
        self.pending[since:] = [*(i for i in self.pending[since:] if i[0] != item[0]), item]
        self.worker.wake.set()

    def add_audio(self, data: bytes) -> None:
        """PCM for the worker (whole samples), joined to the audio waiting since the last control item: a client
        that sends many small messages (one sample each) makes one item a tick, not one a message (each held
        ~300 bytes here and cost the worker a call: a flood of them grew the server by a GB and stalled the worker)."""
        if self.pending and self.pending[-1][0] == "audio":
            self.pending[-1][1].extend(data)
        else:
            self.pending.append(("audio", bytearray(data)))
        self.worker.wake.set()

    def work(self) -> list[Item]:
        """Take the items waiting for the worker (once a tick), their audio as PCM arrays."""
        items, self.pending = self.pending, []
        return [("audio", np.frombuffer(i[1], self.dtype)) if i[0] == "audio" else i for i in items]

    async def heard(self, message: Awaitable[Any]) -> Any:
        """Await the client's next message, marked as waiting meanwhile: `watchdogs.watch_idle` closes a stream
        that waits longer than the idle timeout (one sweep a second is far cheaper than a timer a message)."""
        self.waiting_since = time.monotonic()
        try:
            return await message
        finally:
            self.waiting_since = None

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


async def drain(c: Conn) -> None:
    """Send what waits in a stream's outbox, after what is being sent (at most 2 s, for a client that does not read)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2.0), c.sending:
            while c.outbox:
                item, _ = c.outbox.popleft()
                await c.send(item)
