"""The file route, ``POST /v1/animate``: an audio file in, an animation file out (`animate`), on file
workers of its own that the first such request starts (a server that only streams does without their
memory); a file worker that fails is replaced like a stream worker (`Server.replace_worker`).
"""

from __future__ import annotations

import asyncio
import io
import logging
from typing import TYPE_CHECKING

import soundfile as sf
from aiohttp import web

from ..errors import TalkfaceError
from ..export import SUFFIXES, check_rig
from .http import json_error, read_body, send
from .settings import stream_settings
from .workers import FileJob, JobError, Worker, WorkerFailed, audio_error

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("talkface.serve")
_MEDIA = {".csv": "text/csv", ".json": "application/json", ".tsv": "text/tab-separated-values",
          ".xml": "application/xml", ".dat": "text/plain", ".glb": "model/gltf-binary",
          ".usda": "text/plain"}  # fmt: skip
_NOT_A_FORM = "send the audio file itself as the request body (curl --data-binary @speech.wav), not a multipart form"


async def animate(server: Server, request: web.Request) -> web.StreamResponse:
    """An audio file in the body, the animation file back (see the OpenAPI spec); `create_app` binds the server."""
    server.authorise(request)
    try:
        query = dict(request.query)
        fmt = query.pop("format", "json").lower()
        if fmt not in SUFFIXES:
            raise TalkfaceError(f"unknown format {fmt!r}; choose one of: {', '.join(SUFFIXES)}")
        text = query.pop("text", None)
        settings = stream_settings(query, server.config.fps, http=True)
        if settings["rig"] is not None:
            check_rig(fmt)
    except TalkfaceError as e:
        raise json_error(web.HTTPBadRequest, str(e)) from None
    if request.content_type.startswith("multipart/"):  # a form upload (curl -F) would read as a corrupt audio file
        raise json_error(web.HTTPUnsupportedMediaType, _NOT_A_FORM)
    try:
        async with asyncio.timeout(server.config.request_timeout):
            body = await read_body(request)
    except TimeoutError:
        raise json_error(
            web.HTTPRequestTimeout, f"the request body did not arrive within {server.config.request_timeout:g} s"
        ) from None
    if not body:
        raise json_error(web.HTTPBadRequest, "send the audio file (WAV, FLAC or Ogg) as the request body")
    try:
        seconds = _duration(body)
        if seconds > server.config.max_audio_seconds:
            raise TalkfaceError(f"audio longer than {server.config.max_audio_seconds:g} s; stream it instead")
    except TalkfaceError as e:
        raise json_error(web.HTTPUnprocessableEntity, str(e)) from None
    if server.stopping:
        raise json_error(web.HTTPServiceUnavailable, "the server is shutting down")
    if server.waiting_jobs >= 4 * server.config.animate_jobs:
        server.metrics.count("talkface_rejected_total", reason="too_many_requests")
        raise json_error(web.HTTPServiceUnavailable, "too many animation requests waiting; try again")
    server.waiting_jobs += 1
    try:
        job = FileJob(body, fmt, SUFFIXES[fmt], text, settings)
        answer = await _file_job(server, job, server.config.worker_timeout * (1 + seconds / 60))
    except WorkerFailed as e:
        raise json_error(web.HTTPServiceUnavailable, f"{e}; try again") from None
    finally:
        server.waiting_jobs -= 1
    if isinstance(answer, JobError):
        if answer.internal:
            log.error("POST /v1/animate failed: %s", answer.message)
            raise json_error(web.HTTPInternalServerError, f"internal error: {answer.message}")
        raise json_error(web.HTTPUnprocessableEntity, answer.message)
    server.metrics.count("talkface_animations_total")
    kind = _MEDIA.get(SUFFIXES[fmt], "application/octet-stream")
    return await send(request, answer, kind, server.config.request_timeout)


async def _file_job(server: Server, job: FileJob, seconds: float) -> bytes | JobError:
    """Run a file job on the next free file worker, with `seconds` for it; WorkerFailed if it failed.

    A worker whose answer did not come (stuck, dead, or this request cancelled) is replaced: its
    pipe may still carry an answer meant for this job."""
    if server.file_workers_started is None:
        server.file_workers_started = asyncio.ensure_future(_start_file_workers(server))
    await asyncio.shield(server.file_workers_started)
    worker = await server.free_file_workers.get()
    if worker is None or server.stopping:
        if worker is not None:
            server.free_file_workers.put_nowait(worker)
        raise WorkerFailed("the server is shutting down")
    answered = False
    try:
        answer = await server.call_worker(worker, job, seconds)
        answered = True
        return answer
    except WorkerFailed as e:
        if server.stopping:  # killed by `shutdown`
            raise WorkerFailed("the server is shutting down") from None
        server.worker_failed(worker, str(e))
        raise
    finally:
        if answered:
            server.free_file_workers.put_nowait(worker)
        else:
            worker.kill()
            worker.healthy = False
            server.spawn(server.replace_worker(worker))


async def _start_file_workers(server: Server) -> None:
    """Start the file workers (on the first POST: a server that only streams does without their memory)."""
    server.file_workers = [Worker(server.config.model, files=True) for _ in range(server.config.animate_jobs)]
    loop = asyncio.get_running_loop()
    try:
        await asyncio.gather(*(loop.run_in_executor(server.threads, w.ready) for w in server.file_workers))
    except TalkfaceError as e:
        for w in server.file_workers:
            w.kill()
        server.file_workers, server.file_workers_started = [], None  # the next request tries again
        raise WorkerFailed(str(e)) from None
    for w in server.file_workers:
        server.free_file_workers.put_nowait(w)


def _duration(body: bytes) -> float:
    """Seconds of audio in an audio file, from its header; TalkfaceError if it is not one."""
    try:
        info = sf.info(io.BytesIO(body))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise audio_error(e) from None
    return info.frames / info.samplerate
