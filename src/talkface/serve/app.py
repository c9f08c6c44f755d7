"""The animation server: aiohttp, one event loop for the sockets, worker processes for the model.

The server, module by module: `app` (here) wires the routes and runs them; `server` holds the state
and the engine that every stream runs on; the routes are `websocket` (``GET /v1/stream``, whose
docstring is the stream protocol), `animate` (``POST /v1/animate``) and `status` (health, metrics and
the API's description); `settings` validates what clients ask for, `http` answers every HTTP error as
JSON, `workers` are the model processes (`watchdogs` closes idle streams and replaces a worker that
died), `grpc` is Audio2Face-3D's API on the same engine (`a2f`
reads its messages).

A stream is a `Conn` (`connections`) whatever its transport: the WebSocket, Audio2Face-3D's gRPC API
in `grpc` (``--grpc-port``); both share the workers, the limits and the metrics below.

Each stream is given to one of the model worker processes (`workers`, one per CPU core by
default), the least busy; a worker advances all of its streams with new audio in one batched model
step per tick, and the ticks follow the audio (a tick starts as soon as the last one ends and
audio waits). Files (``POST /v1/animate``) go to `animate_jobs` workers of their own, started by
the first such request (a server that only streams does without their memory).

A stuck worker is a dead worker: one that dies, or gives no answer within `worker_timeout` seconds
for a tick (for a file: per minute of its audio, plus one), is killed and replaced; its streams are
closed with 1011, the request it was working on gets a 503, and ``/healthz`` answers 503
``{"status": "degraded"}`` until the replacement is up. A client gets `request_timeout` seconds to
send a request's headers, and again its body (408); an animation's answer that makes no progress for
as long closes its connection (`http.send`). Every HTTP error is one line of JSON,
``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import gc
import signal
from functools import partial

from aiohttp import web

from ..errors import TalkfaceError
from .animate import animate
from .http import SERVER_KEY, JsonErrorRunner, expect, json_errors
from .server import Server
from .settings import ServerConfig
from .status import healthz, metrics, openapi
from .websocket import stream


def create_app(config: ServerConfig | None = None) -> web.Application:
    """The aiohttp application (`serve` runs it; tests run it on a loopback port)."""
    config = config or ServerConfig()
    server = Server(config)
    app = web.Application(client_max_size=int(config.max_upload_mb * 1024 * 1024), middlewares=[json_errors])
    app[SERVER_KEY] = server
    app.router.add_post("/v1/animate", partial(animate, server), expect_handler=expect)
    app.router.add_get("/v1/stream", partial(stream, server), expect_handler=expect)
    app.router.add_get("/healthz", partial(healthz, server), expect_handler=expect)
    app.router.add_get("/metrics", partial(metrics, server), expect_handler=expect)
    app.router.add_get("/openapi.json", partial(openapi, server), expect_handler=expect)
    app.on_startup.append(server.start)
    app.on_shutdown.append(server.shutdown)
    app.on_cleanup.append(server.cleanup)
    return app


def make_runner(config: ServerConfig) -> web.AppRunner:
    """The app's runner with the server's connection limits: a connection that has not sent a whole
    request's headers within `request_timeout` (aiohttp's keep-alive timer runs from the connection's
    start) is closed, so is an idle keep-alive one; the unread rest of a refused body (408, 413) is
    taken for 2 s at most (so the client can read the answer before the close), not aiohttp's 10.
    Requests aiohttp's parser refuses get JSON errors too (`http.JsonErrorRunner`)."""
    return JsonErrorRunner(
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
        gc.freeze()  # what start-up made lives as long as the server: later collections skip it (`workers._work`)
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
