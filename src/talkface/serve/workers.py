"""The server's model workers: processes that each hold a share of the streams and advance them.

A Python process runs Python on one core at a time, and a stream's model step and post-processing
are mostly Python, so one process tops out at one core. The server therefore keeps the sockets in
its event loop and hands the streams' audio to worker processes (one per core by default); each
worker advances all of its streams in one batched step per tick, as `stream.advance` does in
one process. A stream stays in the worker it was given for its whole life. Files sent to
``POST /v1/animate`` go to workers of their own (`FileJob`), so a long file never holds up a stream.

Messages to a worker are ticks: lists of (stream id, items), an item being ``("start", settings)``,
``("audio", pcm)``, ``("emotion", weights)``, ``("face", FaceParams)``, ``("end",)`` or
``("drop",)`` (the client went away). The answer is one `Result` per stream that still runs.
A `FileJob` is answered with the animation file's bytes or a `JobError`.

Work runs in processes, not threads, so that the server can kill it: a worker that does not answer
within its deadline is stuck (a bug, a runaway input) and is killed and replaced (see `server.Server`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import io
import multiprocessing
import signal
import tempfile
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple

import soundfile as sf

from .. import export
from ..animation import Animation
from ..animator import Animator
from ..audio import SAMPLE_RATE, load_audio
from ..engine import Engine
from ..errors import TalkfaceError
from ..export.provenance import clip_provenance
from ..post import Style
from ..stream import PIECE, Stream, advance

Item = tuple[Any, ...]
_START_SECONDS = 120.0  # a worker that is not up by then has failed (imports, model load)


class Result(NamedTuple):
    """What a tick did to one stream: the frames it made final, or why it failed; whether it ended."""

    stream: int
    frames: Animation | None
    error: str | None
    ended: bool
    unheard: int = 0  # 16 kHz samples left for the next ticks (`Stream.unheard`): the server ticks again


class FileJob(NamedTuple):
    """An audio file to animate (``POST /v1/animate``): the file's bytes, the export format and its
    file suffix, an optional transcript, validated settings (`settings.stream_settings`)."""

    body: bytes
    fmt: str
    suffix: str
    text: str | None
    settings: dict[str, Any]


class JobError(NamedTuple):
    """Why a `FileJob` failed: bad input (a `TalkfaceError`), or a bug (`internal`)."""

    message: str
    internal: bool = False


class WorkerFailed(Exception):
    """A worker died or was stuck past its deadline (and was killed): its work is lost."""


def style_of(settings: dict[str, Any]) -> Style:
    """The post-processing style that validated settings (`settings.stream_settings`) ask for: their
    style options, with the emotion, face and seed given beside them (or by gRPC's header)."""
    return replace(settings["style"], emotion=settings["emotion"], emotion_settings=settings["emotion_settings"],
                   face=settings["face"], seed=settings["seed"])  # fmt: skip


def new_session(engine: Engine, settings: dict[str, Any]) -> Stream:
    """A stream session for validated stream settings."""
    return Stream(engine, settings["fps"], style_of(settings), settings["sample_rate"])


def tick(engine: Engine, streams: dict[int, Stream], work: list[tuple[int, list[Item]]],
         closing: set[int]) -> list[Result]:  # fmt: skip
    """Apply each stream's items in order, then advance the streams that go on in one batch.

    A step analyses at most 30 s of a stream's audio (`Stream.unheard`), so one long chunk (minutes,
    at a low sample rate) cannot stall every stream of the worker nor outlast its timeout: the rest
    waits for the next ticks, which the server runs for it (items may be empty), and a stream that
    asked to end (`closing`) ends once no more than a step's audio is left."""
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
                    closing.discard(sid)
                elif kind == "end":
                    closing.add(sid)
                elif kind == "audio":
                    streams[sid].write(item[1])
                elif kind in ("emotion", "face"):  # from the audio sent before it on: catch up first
                    session = streams[sid]
                    early.setdefault(sid, []).append(advance(engine, [session])[0])
                    (session.set_emotion if kind == "emotion" else session.set_face)(item[1])
            if sid in streams:
                (ending if sid in closing and streams[sid].unheard <= PIECE else going).append(sid)
        except TalkfaceError as e:
            streams.pop(sid, None)
            closing.discard(sid)
            out.append(Result(sid, None, str(e), True))
    made = dict(zip(going, advance(engine, [streams[s] for s in going]), strict=True)) if going else {}
    for sid in ending:
        closing.discard(sid)
        made[sid] = streams.pop(sid).flush()
    for sid, anim in made.items():
        if sid in early:
            anim = Animation.join([*early[sid], anim])
        out.append(Result(sid, anim, None, sid in ending, streams[sid].unheard if sid in streams else 0))
    return out


def audio_error(e: Exception) -> TalkfaceError:
    """A soundfile failure as the user's error, without the repr of the in-memory file it names."""
    return TalkfaceError(f"not a readable audio file: {getattr(e, 'error_string', None) or e}")


def animate_file(animator: Animator, job: FileJob) -> bytes:
    """The animation file for a `FileJob`, made as `talkface animate` and `talkface batch` make one
    (`Animator.clip`, over the worker's loaded model)."""
    try:
        audio, rate = sf.read(io.BytesIO(job.body), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise audio_error(e) from None
    pcm = load_audio(audio, int(rate))
    clip = animator.clip(pcm, job.text, job.settings["fps"], SAMPLE_RATE, style=style_of(job.settings))
    made = clip_provenance(clip, animator, hashlib.sha256(job.body).hexdigest())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"animation{job.suffix}"
        export.write(clip.animation, path, job.fmt, metadata=made | clip.metadata, rig=job.settings["rig"])
        return path.read_bytes()


def _answer_file(animator: Animator, job: FileJob) -> bytes | JobError:
    try:
        return animate_file(animator, job)
    except TalkfaceError as e:
        return JobError(str(e))
    except Exception as e:  # a bug: one request fails, the worker and its model stay
        return JobError(f"{type(e).__name__}: {e}", internal=True)


def _work(conn: Connection, model: str | None, files: bool) -> None:
    """A worker process: load the model (for files, or for live streams), then answer ticks and file
    jobs until told to stop (None) or orphaned."""
    from threadpoolctl import threadpool_limits

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops its workers itself
    threadpool_limits(1, "blas")  # many small matrix products: threads would only contend
    try:
        animator = Animator(model=model)
        engine = animator.file_engine if files else animator.stream_engine
    except TalkfaceError as e:
        conn.send(str(e))
        return
    # The libraries and the model (~30 000 objects) live as long as the worker: frozen, they are left out
    # of the collector's full passes, each of which took 10-20 ms with them, all streams of the worker waiting.
    gc.freeze()
    conn.send("ready")
    streams: dict[int, Stream] = {}
    closing: set[int] = set()  # streams whose end waits for their long audio (`tick`)
    while True:
        try:
            work = conn.recv()
        except (EOFError, OSError):  # the server is gone (a reset pipe: it was killed with an answer unread)
            return
        if work is None:
            return
        answer = _answer_file(animator, work) if isinstance(work, FileJob) else tick(engine, streams, work, closing)
        try:
            conn.send(answer)
        except OSError:  # the server is gone
            return


class Worker:
    """The server's handle on one worker process; `call` runs a message there (call it from a thread)."""

    def __init__(self, model: str | None, files: bool = False) -> None:
        self.model, self.files = model, files
        self.wake = asyncio.Event()  # set when a stream of this worker has work
        self.streams = 0  # streams given to it, for choosing the least busy worker
        self.healthy = True  # False from a failure until the replacement is up
        self.busy = False  # a message is out and its answer not yet in
        self._start()

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads and sockets
        self.conn, child = ctx.Pipe()
        args = (child, self.model, self.files)
        self.process = ctx.Process(target=_work, args=args, name="talkface-model", daemon=True)
        self.process.start()
        child.close()

    def ready(self) -> None:
        """Wait until the worker has loaded the model (blocking); TalkfaceError if it did not."""
        try:
            if not self.conn.poll(_START_SECONDS):
                raise TalkfaceError(f"a model worker did not start in {_START_SECONDS:g} s")
            answer = self.conn.recv()
        except (EOFError, OSError):
            raise TalkfaceError("a model worker exited while starting") from None
        if answer != "ready":
            raise TalkfaceError(f"a model worker failed to start: {answer}")

    def call(self, message: list[tuple[int, list[Item]]] | FileJob) -> Any:
        """Send a tick or a file job and wait for the answer (blocking); WorkerFailed if the worker died.

        `kill` from another thread ends the wait: a killed worker's pipe reads as closed."""
        self.busy = True
        try:
            self.conn.send(message)
            return self.conn.recv()
        except (EOFError, OSError):
            raise WorkerFailed("the model worker exited") from None
        finally:
            self.busy = False

    def kill(self) -> None:
        """Kill the process at once (a stuck one too: SIGKILL also ends a stopped process)."""
        self.process.kill()

    def restart(self) -> None:
        """Replace a worker that died or was killed (its streams are lost; the caller closes them)."""
        self.process.kill()
        self.process.join(5)
        self.conn.close()
        self._start()
        self.ready()


def stop_all(workers: list[Worker], grace: float = 1.0) -> None:
    """Kill busy workers, ask idle ones to exit and give them `grace` seconds together, then kill what is left."""
    for worker in workers:
        if worker.busy:  # its answer would go nowhere now
            worker.kill()
        else:
            with contextlib.suppress(OSError):  # already gone
                worker.conn.send(None)
    deadline = time.monotonic() + grace
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
    for worker in workers:
        if worker.process.is_alive():
            worker.kill()
            worker.process.join(5)
        worker.conn.close()
