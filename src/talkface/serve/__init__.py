"""`talkface serve`: the animation server (aiohttp): HTTP for files, a WebSocket for live audio.

    POST /v1/animate     an audio file in, an animation file out (any export format)
    GET  /v1/stream      WebSocket: PCM chunks and JSON control messages in, frames out
    GET  /healthz        liveness and load
    GET  /metrics        Prometheus text format
    GET  /openapi.json   the OpenAPI 3.1 description of the HTTP API

and with ``--grpc-port``, NVIDIA Audio2Face-3D's gRPC API (`grpc`, needs the grpc extra) on the same
model workers. See `app` for how the server works and its limits, `websocket` for the stream
protocol, `openapi` for the spec.
"""

from .app import create_app, serve
from .settings import ServerConfig

__all__ = ["ServerConfig", "create_app", "serve"]
