"""The server's status routes: ``GET /healthz`` (for load balancers), ``GET /metrics`` (Prometheus)
and ``GET /openapi.json`` (the HTTP API's description)."""

from __future__ import annotations

from aiohttp import web

from .openapi import spec
from .server import Server


async def healthz(server: Server, request: web.Request) -> web.Response:
    """200 {"status": "ok"} when every worker works; 503 {"status": "degraded"} while one is being replaced."""
    ok = all(w.healthy for w in server.workers + server.file_workers)
    streams, most = len(server.conns), server.config.max_streams
    body = {"status": "ok" if ok else "degraded", "streams": streams, "max_streams": most}
    return web.json_response(body, status=200 if ok else 503)


async def metrics(server: Server, request: web.Request) -> web.Response:
    """The metrics in Prometheus text format (behind the bearer token, when the server has one)."""
    server.authorise(request)
    server.metrics.gauge("talkface_streams_active", len(server.conns))
    down = sum(not w.healthy for w in server.workers + server.file_workers)
    server.metrics.gauge("talkface_workers_down", down)
    return web.Response(text=server.metrics.text(), content_type="text/plain", charset="utf-8")


async def openapi(server: Server, request: web.Request) -> web.Response:
    """The OpenAPI description of the HTTP API."""
    return web.json_response(spec(server.config.token is not None))
