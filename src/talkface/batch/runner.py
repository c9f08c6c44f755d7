"""Running a batch's lines: `run`, on a pool of worker processes or as Ray tasks on a cluster.

A pool process that dies fails only its own line and is replaced. Ctrl-C lets the lines in
progress finish, then stops; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from ..errors import TalkfaceError
from ..files import file_key
from .animate import LineResult, Settings, Task, _run_key, animate_line
from .manifest import REPORT, Line, check_outputs, read_manifest
from .report import _clear_temps, _Report

log = logging.getLogger(__name__)


class _Worker:
    """A pool process and the task it is working on."""

    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child,), name="talkface-batch", daemon=True)
        with _sigint_ignored():  # inherited: a Ctrl-C while it starts up is the parent's too
            self.process.start()
        child.close()
        self.task: Task | None = None

    def result(self) -> LineResult:
        """The answer to its task, or the task failed if the process died on it."""
        task, self.task = self.task, None
        assert task is not None
        try:
            if self.conn.poll():
                return self.conn.recv()
        except (EOFError, OSError):
            pass
        self.process.join(5)
        died = f"the worker process died on this line (exit status {self.process.exitcode})"
        return LineResult(task.line.number, task.line.source, task.line.output, "failed", error=died)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored meanwhile (in the main thread, where signals arrive)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _serve(conn: Connection) -> None:
    """A pool process: animate the tasks it is sent until told to stop (None) or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while True:
        try:
            task = conn.recv()
            if task is None:
                return
            conn.send(animate_line(task))
        except (EOFError, OSError):  # the parent is gone
            return


def _pooled(tasks: Iterator[Task], jobs: int, stop: threading.Event) -> Iterator[LineResult]:
    """Results of `tasks` from up to `jobs` worker processes, as they finish. A process that dies
    fails only its own line (none, if it was idle) and is replaced. Once `stop` is set no task is started."""
    ctx = multiprocessing.get_context("spawn")  # a clean process, no fork of this one's threads
    workers: list[_Worker] = []
    try:
        while True:
            while not stop.is_set():
                worker = next((w for w in workers if w.task is None), None)
                if worker is None and len(workers) == jobs:
                    break
                task = next(tasks, None)
                if task is None:
                    break
                if worker is not None and not worker.process.is_alive():  # it died while idle
                    workers.remove(worker)
                    worker.conn.close()
                    worker = None
                if worker is None:
                    worker = _Worker(ctx)
                    workers.append(worker)
                with contextlib.suppress(OSError):  # it died just now: the line fails below, as on any death
                    worker.conn.send(task)
                worker.task = task
            busy = [w for w in workers if w.task is not None]
            if not busy:
                return
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
            for worker in busy:
                if worker.conn in ready or worker.process.sentinel in ready:
                    result = worker.result()
                    if not worker.process.is_alive():
                        workers.remove(worker)
                        worker.conn.close()
                    yield result
    finally:
        for worker in workers:
            if worker.task is None:
                with contextlib.suppress(OSError):
                    worker.conn.send(None)
            else:
                worker.process.kill()
        for worker in workers:
            worker.process.join(5)
            if worker.process.is_alive():
                worker.process.kill()
            worker.conn.close()


def _on_ray(tasks: Iterator[Task], address: str, stop: threading.Event) -> Iterator[LineResult]:
    """Results of `tasks` run as Ray tasks (the same `animate_line`), as they finish: on the Ray
    instance this process is connected to, else on the cluster at `address` ("auto": the one this
    machine is part of; "ray://HOST:10001": through Ray Client; "local": a new one on this machine)."""
    try:
        import ray
    except ImportError:
        raise TalkfaceError("--ray needs the batch extra: pip install 'talkface[batch]'") from None
    started = not ray.is_initialized()
    if started:
        _answers(address)
        try:
            ray.init(
                address=address,
                logging_level=logging.WARNING,
                **({"include_dashboard": False} if address == "local" else {}),
            )
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise TalkfaceError(f"cannot use the Ray cluster at {address}: {e}") from None
    remote = ray.remote(num_cpus=1)(animate_line)
    room = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))  # a queue per core keeps them all busy
    running: dict[Any, Task] = {}
    try:
        while True:
            while not stop.is_set() and len(running) < room and (task := next(tasks, None)) is not None:
                running[remote.remote(task)] = task
            if not running:
                return
            ready, _ = ray.wait(list(running), num_returns=1)
            task = running.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayError as e:
                error = f"Ray could not run this line: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                result = LineResult(task.line.number, task.line.source, task.line.output, "failed", error=error)
            yield result
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


def _answers(address: str) -> None:
    """TalkfaceError at once if nothing listens at a cluster's HOST:PORT (its GCS): `ray.init` waits for
    one there for ever, a warning every 40 s. "auto", "local" and "ray://..." are Ray's to judge."""
    host, sep, port = address.rpartition(":")
    if address in ("auto", "local") or "://" in address or not sep or not (port.isascii() and port.isdigit()):
        return
    try:
        socket.create_connection((host.removeprefix("[").removesuffix("]"), int(port)), timeout=10).close()
    except (OSError, OverflowError, UnicodeError) as e:  # (a port past 65535; a label over 63 characters)
        raise TalkfaceError(f"cannot use the Ray cluster at {address}: nothing answers there ({e})") from None


@contextlib.contextmanager
def _interruptible() -> Iterator[threading.Event]:
    """An event set by the first Ctrl-C (the lines in progress finish, no more start); the second
    raises KeyboardInterrupt as usual. Only in the main thread, where signals arrive."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def interrupted(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log.warning("stopping once the lines in progress are done (Ctrl-C again to stop at once)")

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def run(
    manifest: str | os.PathLike | Sequence[Line],
    out_dir: str | os.PathLike,
    settings: Settings | None = None,
    *,
    fmt: str | None = None,
    jobs: int | None = None,
    ray: str | None = None,
    force: bool = False,
) -> Iterator[LineResult]:
    """Animate every line of `manifest` (a path, see `read_manifest` and its `fmt`, or its lines)
    into `out_dir`, yielding each line's result as it is done (bad rows first).

    Runs on `jobs` worker processes (default: one per core), or with `ray` on a Ray cluster (an
    address, see `_on_ray`). Lines done before whose output and inputs are unchanged are skipped
    unless `force`. Ctrl-C (in the main thread) stops after the lines in progress and then raises
    KeyboardInterrupt. TalkfaceError before any work for bad settings or an unusable folder.

    >>> for result in run("lines.csv", "out/", jobs=4):
    ...     print(result.line, result.status, result.error or "")
    """
    if jobs is not None and (not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1):
        # (-1, joblib's "every core", or 2.5 never equalled the pool's size: a process for every line)
        raise TalkfaceError(f"jobs must be a whole number of worker processes, at least 1, not {jobs!r}")
    lines = read_manifest(manifest, fmt) if isinstance(manifest, str | os.PathLike) else list(manifest)
    settings = settings or Settings()
    jobs = jobs or len(os.sched_getaffinity(0))  # (None: one per core)
    key = _run_key(settings)
    out = Path(out_dir).absolute()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TalkfaceError(f"{out_dir}: cannot make the output folder ({e.strerror or e})") from None
    report_key = file_key(out / REPORT)
    for source in {line.manifest for line in lines if line.manifest}:
        if file_key(source) == report_key:  # (the report's records are a manifest's lines: a re-run of failed ones)
            raise TalkfaceError(f"{source}: is the report of {out_dir}, which the run rewrites; copy it elsewhere "
                                "to use it as the manifest, or give another output folder")  # fmt: skip
    lines = check_outputs(lines, out)
    report = _Report(out)
    try:
        _clear_temps(out, lines)
        with _interruptible() as stop:
            for line in lines:
                if line.error:
                    result = LineResult(line.number, line.source, line.output, "failed", error=line.error)
                    report.add(result)
                    yield result
            tasks = (
                Task(line, settings, key, str(out), None if force else report.previous(line.output))
                for line in lines
                if not line.error
            )
            with contextlib.closing(_on_ray(tasks, ray, stop) if ray else _pooled(tasks, jobs, stop)) as results:
                for result in results:
                    report.add(result)
                    yield result
            if stop.is_set():
                raise KeyboardInterrupt
    finally:
        report.close(lines)
