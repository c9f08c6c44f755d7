"""The server's watchdogs, each a background task of `Server`: streams whose clients went quiet, and
model workers that died between calls."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from .workers import Worker

if TYPE_CHECKING:
    from .server import Server


async def watch_idle(server: Server) -> None:
    """Close (1001) every stream whose client has sent nothing for `idle_timeout` while it was being read."""
    limit = server.config.idle_timeout
    while True:
        await asyncio.sleep(min(1.0, limit / 4))
        now = time.monotonic()
        for c in list(server.conns.values()):
            if c.waiting_since is not None and now - c.waiting_since > limit and not c.closed:
                server.metrics.count("talkface_stream_errors_total", kind="idle")
                server.end(c, 1001, f"idle for {limit:g} s")


async def watch_workers(server: Server) -> None:
    """Notice within a second a worker that died between calls (killed, out of memory): it is replaced
    at once (its streams closed with 1011, /healthz degraded meanwhile), not found dead by the next
    stream (closed 1011 having done nothing wrong) or file (503) while /healthz says ok."""
    while True:
        await asyncio.sleep(1.0)
        for w in server.workers:
            if w.healthy and not w.process.is_alive():
                w.wake.set()  # its batching loop replaces it
        for w in server.file_workers:  # an idle one waits in the queue; a busy one's request finds it dead
            if w.healthy and not w.process.is_alive() and _take_free(server, w):
                server.worker_failed(w, "the model worker exited")
                server.spawn(server.replace_worker(w))  # which queues it again once it is up


def _take_free(server: Server, worker: Worker) -> bool:
    """Take `worker` out of the free file workers' queue; whether it was there."""
    queue = server.free_file_workers
    waiting = [queue.get_nowait() for _ in range(queue.qsize())]
    for w in waiting:
        if w is not worker:
            queue.put_nowait(w)
    return worker in waiting
