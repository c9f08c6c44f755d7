"""The server's state and engine (`Server`): the model workers and their batching loops, the live
streams whatever their transport (`Conn`), a failed worker's replacement, and the server's life from
start to shutdown. The routes are `websocket`, `animate` and `status` (and `grpc`'s service); `app`
wires them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..animation import Animation
from ..animator import Animator
from ..audio import SAMPLE_RATE
from ..engine import Engine
from ..errors import TalkfaceError
from ..livelink import LiveLinkSender, resolve
from ..stream import PIECE
from .connections import Conn, drain
from .http import json_error
from .metrics import Metrics
from .settings import ServerConfig
from .watchdogs import watch_idle, watch_workers
from .workers import FileJob, Item, Result, Worker, WorkerFailed, stop_all

if TYPE_CHECKING:
    from .grpc import A2FServer

log = logging.getLogger("talkface.serve")
#: Messages other than frames (ready, errors) a stream may leave unread before it is closed as too slow.
UNREAD_NOTES = 256
#: Seconds within which a stream's chunks of audio share one arrival time (the frame latency is measured from it).
_ARRIVAL_GRAIN = 1e-3


class Server:
    """The state behind the routes: the model engine, the live streams, the workers' batching loops."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.livelink = resolve(config.livelink)[1][:2] if config.livelink else None  # looked up once
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
            if not worker.process.is_alive():  # died between ticks (`watchdogs.watch_workers` woke the loop)
                self.worker_failed(worker, "the model worker exited")
                await self.replace_worker(worker)
                continue
            mine = [c for c in self.conns.values() if c.worker is worker and (c.pending or c.unheard) and not c.closed]
            work = [(c.id, c.work()) for c in mine] + [(sid, [("drop",)]) for sid in self.dropped[worker]]
            self.dropped[worker] = []
            if not work:
                continue
            started = time.perf_counter()
            try:
                results = await self.call_worker(worker, work, self.config.worker_timeout)
            except WorkerFailed as e:  # its streams are gone
                self.worker_failed(worker, str(e))
                await self.replace_worker(worker)
                continue
            self.metrics.observe("talkface_tick_seconds", time.perf_counter() - started)
            now = time.monotonic()
            for c in mine:  # (a stream the worker no longer holds reports nothing: nothing of it is left)
                c.unheard = 0
            for result in results:
                c = self.conns.get(result.stream)
                if c is not None:
                    c.unheard = result.unheard
                    self._deliver(c, result, now)
            for c in mine:  # (audio a step left for the next counts for backpressure, and is worked on at once)
                waiting = sum(len(i[1]) // c.dtype.itemsize for i in c.pending if i[0] == "audio")
                waiting *= SAMPLE_RATE / c.sample_rate
                c.pending_samples = waiting + c.unheard
                c.drained.set()
                if c.unheard and not c.closed:
                    worker.wake.set()

    async def call_worker(self, worker: Worker, message: list[tuple[int, list[Item]]] | FileJob, seconds: float) -> Any:
        """A worker's answer to a message; WorkerFailed if it died or gave none in `seconds` (then it is killed)."""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self.threads, worker.call, message), seconds)
        except TimeoutError:
            worker.kill()  # the thread waiting on its pipe sees it close and ends
            raise WorkerFailed(f"the model worker made no progress in {seconds:.3g} s and was replaced") from None

    def worker_failed(self, worker: Worker, reason: str) -> None:
        """A worker died or is stuck: mark it down (/healthz degraded) and close its streams with 1011."""
        log.warning("model worker %d: %s", worker.process.pid or 0, reason)
        worker.healthy = False
        self.metrics.count("talkface_worker_restarts_total")
        for c in list(self.conns.values()):
            if c.worker is worker:
                self.end(c, 1011, "the model worker of this stream failed")
        if worker in self.dropped:
            self.dropped[worker] = []  # the replacement never knew those sessions

    async def replace_worker(self, worker: Worker) -> None:
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

    def spawn(self, coro: Awaitable[None]) -> None:
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
            # max_pending_seconds of audio is fine, more than that is a client that does not read, unless it
            # had read all but a send buffer's worth before this step or did so within send_buffer_seconds (one
            # chunk of audio may be long: its steps come back to back, before even the server's sender has
            # handed the first one's frames on); more than two steps' worth beyond is too slow however recently
            unsent = c.queued_frames + c.unsent_frames(message, anim.num_frames)
            if unsent - anim.num_frames <= self.config.send_buffer_seconds * anim.fps:
                c.caught_up = now
            most = (self.config.send_buffer_seconds + self.config.max_pending_seconds) * anim.fps
            late = now - c.caught_up > self.config.send_buffer_seconds
            if unsent > most and (late or unsent > most + 2 * PIECE / SAMPLE_RATE * anim.fps):
                self.metrics.count("talkface_stream_errors_total", kind="slow_client")
                self.end(c, 1008, "client too slow: it does not read its frames")
                return
        if c.ended:
            c.outbox.extend((m, 0) for m in c.end_messages())
            c.wake_sender.set()
            c.finished.set()

    def tell(self, c: Conn, message: Any) -> None:
        """A message other than frames (ready, an error) into the stream's outbox. A client that leaves
        `UNREAD_NOTES` of them unread is closed (1008): one that sends bad messages and never reads the
        answers holds a bounded outbox, and nothing waits on its socket but the send loop."""
        if c.closed:
            return
        if sum(frames == 0 for _, frames in c.outbox) >= UNREAD_NOTES:
            self.metrics.count("talkface_stream_errors_total", kind="slow_client")
            self.end(c, 1008, "client too slow: it does not read its messages")
            return
        c.outbox.append((message, 0))
        c.wake_sender.set()

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
        if self.livelink is not None:
            c.livelink = LiveLinkSender(self.livelink, subject or f"talkface-{c.id}", fps)

    def take_audio(self, c: Conn, data: bytes) -> bool:
        """A chunk of the stream's PCM (in its sample format) for its worker; False if it ended the stream."""
        if len(data) % c.dtype.itemsize:
            self.metrics.count("talkface_stream_errors_total", kind="bad_audio")
            self.end(c, 1007, f"a {c.dtype.itemsize}-byte sample format needs whole samples")
            return False
        samples = len(data) // c.dtype.itemsize * SAMPLE_RATE / c.sample_rate
        if (c.received + samples) / SAMPLE_RATE > self.config.max_stream_seconds:
            self.end(c, 1009, f"stream longer than {self.config.max_stream_seconds:g} s")
            return False
        c.received += samples
        c.pending_samples += samples
        now = time.monotonic()
        if c.arrivals and now - c.arrivals[-1][1] < _ARRIVAL_GRAIN:  # (a burst of small messages: one entry)
            c.arrivals[-1] = (c.received, c.arrivals[-1][1])
        else:
            c.arrivals.append((c.received, now))
        c.add_audio(data)
        self.metrics.count("talkface_audio_seconds_total", samples / SAMPLE_RATE)
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
            await drain(c)
            self.end(c, 1000, "")

    async def _send_loop(self, c: Conn) -> None:
        while True:
            await c.wake_sender.wait()
            c.wake_sender.clear()
            while c.outbox and not c.closed:
                async with c.sending:
                    if not c.outbox:  # `drain` sent it
                        break
                    item, frames = c.outbox.popleft()
                    try:
                        await c.send(item)
                    except ConnectionResetError:  # the client went away: end the stream, so that what waits on
                        self.end(c, 1001, "")  # it wakes (a `finish` waiting for the flush the worker no longer
                        return  # runs for a closed stream waited for ever, and the stream kept its slot)
                    c.queued_frames -= frames

    # --- access ---

    def authorise(self, request: web.Request) -> None:
        """Refuse a request (401) without the server's bearer token, when it has one (header or ``token`` query)."""
        token = self.config.token
        if token is None:
            return
        given = request.headers.get("Authorization", "")
        given = given[7:] if given.startswith("Bearer ") else request.query.get("token", "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            self.metrics.count("talkface_rejected_total", reason="unauthorised")
            raise json_error(web.HTTPUnauthorized, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})

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
            self.spawn(self.run(w))
        self.spawn(watch_idle(self))
        self.spawn(watch_workers(self))
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
            await drain(c)
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
