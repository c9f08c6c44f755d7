"""The OpenAPI 3.1 description of the server's HTTP API (served at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

from ..post import EMOTIONS, PARAMETERS

FORMATS = ["csv", "json", "npz", "rhubarb-tsv", "rhubarb-json", "rhubarb-xml", "rhubarb-dat", "glb", "gltf-anim", "usd"]
_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}


def _error(what: str) -> dict[str, Any]:
    return {"description": what, "content": {"application/json": {"schema": _ERROR}}}


def _health(status: str, description: str) -> dict[str, Any]:
    """A `/healthz` answer: its status and the stream counts."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {
            "type": "object",
            "properties": {"status": {"const": status}, "streams": {"type": "integer"},
                           "max_streams": {"type": "integer"}},
            "required": ["status", "streams"],
        }}},
    }  # fmt: skip


def spec(secured: bool) -> dict[str, Any]:
    """The spec; `secured` adds the bearer-token requirement the server enforces."""
    style_params = [
        {"name": "fps", "in": "query", "schema": {"type": "number", "minimum": 1, "maximum": 240, "default": 30},
         "description": "frame rate of the animation"},
        {"name": "emotion", "in": "query", "schema": {"type": "string", "example": "joy=0.7,sadness=0.2"},
         "description": f"'auto' (the default: from `text`), 'neutral', or weights 0–1 by name: {', '.join(EMOTIONS)}"},
        {"name": "face", "in": "query", "schema": {"type": "string", "example": "jawStrength=0.8,blinkStrength=0.5"},
         "description": f"face parameters: {', '.join(PARAMETERS)}"},
        {"name": "seed", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0},
         "description": "seed of blinks, gaze and head motion"},
        {"name": "style", "in": "query",
         "schema": {"type": "string", "example": '{"no-blink": true, "head-strength": 0.5}'},
         "description": "a JSON object of `talkface animate`'s style options by name without the dashes "
                        "(emotion, face and seed given beside it take precedence; face keeps its multiply and "
                        "offset); options left out take the command line's defaults"},
    ]  # fmt: skip
    out: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "talkface",
            "version": "1",
            "description": "Speech to ARKit blendshape animation. Live audio goes over the WebSocket "
            "/v1/stream (see the server's documentation); files over POST /v1/animate.",
        },
        "paths": {
            "/v1/animate": {
                "post": {
                    "summary": "Animate an audio file",
                    "operationId": "animate",
                    "parameters": [
                        {
                            "name": "format",
                            "in": "query",
                            "schema": {"type": "string", "enum": FORMATS, "default": "json"},
                        },
                        {
                            "name": "text",
                            "in": "query",
                            "schema": {"type": "string"},
                            "description": "transcript: aligned to the audio for exact lip sync",
                        },
                        *style_params,
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                            "audio/wav": {"schema": {"type": "string", "format": "binary"}},
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "the animation file in the asked format",
                            "content": {
                                "application/json": {"schema": {"type": "object"}},
                                "text/csv": {"schema": {"type": "string"}},
                                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                            },
                        },
                        "400": _error("bad parameters or no body"),
                        "401": _error("missing or wrong bearer token"),
                        "408": _error("the body did not arrive within the request timeout"),
                        "413": _error("body over the upload limit"),
                        "415": _error("a multipart form: send the audio file itself as the body"),
                        "422": _error("unreadable, empty, silent, non-finite or overlong audio"),
                        "500": _error("a bug (the message says which); the server goes on"),
                        "503": _error(
                            "too many requests waiting, the model worker failed (stuck or died), or the "
                            "server is shutting down: try again"
                        ),
                    },
                }
            },
            "/v1/stream": {
                "get": {
                    "summary": "WebSocket: PCM chunks in, animation frames out",
                    "operationId": "stream",
                    "parameters": [
                        {
                            "name": "sample_rate",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1000, "maximum": 384000, "default": 16000},
                        },
                        {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["s16", "f32"]}},
                        {"name": "output", "in": "query", "schema": {"type": "string", "enum": ["json", "binary"]}},
                        {"name": "subject", "in": "query", "schema": {"type": "string"}},
                        *style_params,
                    ],
                    "responses": {
                        "101": {"description": "switching to the WebSocket protocol"},
                        "400": _error("not a WebSocket request, or bad settings"),
                        "401": _error("missing or wrong bearer token"),
                        "503": _error("too many streams"),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness and load",
                    "operationId": "healthz",
                    "security": [],
                    "responses": {
                        "200": _health("ok", "serving"),
                        "503": _health("degraded", "degraded: a model worker that died or got stuck is being replaced"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "text format 0.0.4",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "401": _error("missing or wrong bearer token"),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
    }
    if secured:
        out["components"] = {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}
        out["security"] = [{"bearer": []}]
    return out
