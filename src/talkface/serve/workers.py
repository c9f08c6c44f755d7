"""The server's model workers: processes that each hold a share of the streams and advance them.

A Python process runs Python on one core at a time, and a stream's model step and post-processing
are mostly Python, so one process tops out at one core. The server therefore keeps the sockets in
its event loop and hands the streams' audio to worker processes (one per core by default); each
worker advances all of its streams in one batched step per tick, as `stream.advance` does in
one process. A stream stays in the worker it was given for its whole life.

Messages to a worker are ticks: lists of (stream id, items), an item being ``("start", settings)``,
``("audio", pcm)``, ``("emotion", weights)``, ``("face", FaceParams)``, ``("end",)`` or
``("drop",)`` (the client went away). The answer is one `Result` per stream that still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

from ..animation import Animation
from ..animator import Animator
from ..errors import TalkfaceError
from ..post import Style
from ..stream import Engine, Stream, advance

Item = tuple[Any, ...]
_START_SECONDS = 120.0  # a worker that is not up by then has failed (imports, model load)


class Result(NamedTuple):
    """What a tick did to one stream: the frames it made final, or why it failed; whether it ended."""

    stream: int
    frames: Animation | None
    error: str | None
    ended: bool


def style_of(settings: dict[str, Any]) -> Style:
    """The post-processing style that validated settings (`app._stream_settings`) ask for."""
    return Style(emotion=settings["emotion"], face=settings["face"], seed=settings["seed"])


def new_session(engine: Engine, settings: dict[str, Any]) -> Stream:
    """A stream session for validated stream settings."""
    return Stream(engine, settings["fps"], style_of(settings), settings["sample_rate"])


def tick(engine: Engine, streams: dict[int, Stream], work: list[tuple[int, list[Item]]]) -> list[Result]:
    """Apply each stream's items in order, then advance the streams that go on in one batch."""
    going: list[int] = []
    ending: list[int] = []
    out: list[Result] = []
    early: dict[int, list[Animation]] = {}  # frames made before a control message took effect
    for sid, items in work:
        try:
            for item in items:
                kind = item[0]
                if kind == "start":
                    streams[sid] = new_session(engine, item[1])
                elif kind == "drop":
                    streams.pop(sid, None)
                elif kind == "audio":
                    streams[sid].write(item[1])
                elif kind in ("emotion", "face"):  # from the audio sent before it on: catch up first
                    session = streams[sid]
                    early.setdefault(sid, []).append(advance(engine, [session])[0])
                    (session.set_emotion if kind == "emotion" else session.set_face)(item[1])
            if sid in streams:
                (ending if items[-1][0] == "end" else going).append(sid)
        except TalkfaceError as e:
            streams.pop(sid, None)
            out.append(Result(sid, None, str(e), True))
    made = dict(zip(going, advance(engine, [streams[s] for s in going]), strict=True)) if going else {}
    for sid in ending:
        made[sid] = streams.pop(sid).flush()
    for sid, anim in made.items():
        if sid in early:
            anim = Animation.join([*early[sid], anim])
        out.append(Result(sid, anim, None, sid in ending))
    return out


def _work(conn: Connection, model: str | None) -> None:
    """A worker process: load the model, then answer ticks until told to stop (None) or orphaned."""
    from threadpoolctl import threadpool_limits

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops its workers itself
    threadpool_limits(1, "blas")  # many small matrix products: threads would only contend
    try:
        engine = Animator(model=model).stream_engine
    except TalkfaceError as e:
        conn.send(str(e))
        return
    conn.send("ready")
    streams: dict[int, Stream] = {}
    while True:
        try:
            work = conn.recv()
        except EOFError:  # the server is gone
            return
        if work is None:
            return
        conn.send(tick(engine, streams, work))


class Worker:
    """The server's handle on one worker process; `step` runs a tick there (call it from a thread)."""

    def __init__(self, model: str | None) -> None:
        self.model = model
        self.wake = asyncio.Event()  # set when a stream of this worker has work
        self.streams = 0  # streams given to it, for choosing the least busy worker
        self._start()

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads and sockets
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_work, args=(child, self.model), name="talkface-model", daemon=True)
        self.process.start()
        child.close()

    def ready(self) -> None:
        """Wait until the worker has loaded the model (blocking)."""
        if not self.conn.poll(_START_SECONDS):
            raise TalkfaceError(f"a model worker did not start in {_START_SECONDS:g} s")
        answer = self.conn.recv()
        if answer != "ready":
            raise TalkfaceError(f"a model worker failed to start: {answer}")

    def step(self, work: list[tuple[int, list[Item]]]) -> list[Result]:
        """Run one tick in the worker (blocking); EOFError or OSError if the worker died."""
        self.conn.send(work)
        return self.conn.recv()

    def restart(self) -> None:
        """Replace a worker that died (its streams are lost; the caller closes them)."""
        self.process.kill()
        self.process.join(5)
        self.conn.close()
        self._start()
        self.ready()

    def stop(self) -> None:
        """Ask the worker to exit; kill it if it does not within 5 s."""
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()
