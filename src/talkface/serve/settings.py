"""What the server may be told: its operator's limits and settings (`ServerConfig`, the options of
`talkface serve`), and a client's settings for a stream or a file, validated (`stream_settings`),
shared by the WebSocket (`websocket`), ``POST /v1/animate`` (`animate`) and the gRPC API (`grpc`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..animation import MAX_FPS
from ..audio import SAMPLE_RATE
from ..errors import TalkfaceError, checked_number
from ..post import FaceParams, Style, parse_assignments
from ..retarget import BUILTIN, Rig, checked_mapping, load_rig

#: A stream's sample formats (its ``format`` setting) as numpy dtypes.
SAMPLE_FORMATS = {"s16": np.dtype("<i2"), "f32": np.dtype("<f4")}
ERROR_CHARS = 300  # an error message quotes at most this much of what it refuses


@dataclass(frozen=True)
class ServerConfig:
    """Limits and settings of `talkface serve` (the CLI options of the same names)."""

    host: str = "127.0.0.1"
    port: int = 8000
    http: bool = True  # serve HTTP and the WebSocket on `port` (False: gRPC only)
    grpc_port: int | None = None  # serve Audio2Face-3D's gRPC API there too (0: a free port; see `grpc`)
    token: str | None = None  # bearer token every request but /healthz needs (None: open)
    fps: float = 30.0
    model: str | None = None
    livelink: str | None = None  # HOST:PORT: every stream's frames also go out as Live Link Face packets
    max_streams: int = 200
    max_upload_mb: float = 50.0
    max_audio_seconds: float = 600.0  # longest file /v1/animate takes
    max_stream_seconds: float = 4 * 3600.0
    max_message_bytes: int = 1 << 20
    idle_timeout: float = 30.0
    send_buffer_seconds: float = 5.0
    max_pending_seconds: float = 10.0
    animate_jobs: int = 2  # worker processes for POST /v1/animate
    workers: int | None = None  # model worker processes for streams (None: one per CPU core)
    worker_timeout: float = 30.0  # a worker silent this long on a tick (or per minute of a file) is stuck
    request_timeout: float = 30.0  # for a request's headers, and again for its body


def text_setting(value: object, what: str) -> str:
    """A setting that must be a string (`what` names it in the error)."""
    if not isinstance(value, str):
        raise TalkfaceError(f"{what} must be a string, got {value!r}")
    return value


def face_setting(value: object, under: FaceParams | None = None) -> FaceParams:
    """The ``face`` setting: an object of face parameters, or a string of assignments ("jawStrength=0.8").
    They replace the face parameters of `under` (the style in use), but its per-channel multipliers and
    offsets stay: those are the ``multiply`` and ``offset`` style options, which ``face`` does not name."""
    if isinstance(value, str):
        given = parse_assignments(value, "face")
    elif isinstance(value, dict):
        given = value
    else:
        raise TalkfaceError('face must be an object like {"jawStrength": 0.8} or a string like "jawStrength=0.8"')
    return FaceParams.from_mapping(given, *((under.multipliers, under.offsets) if under else ()))


def stream_settings(values: dict[str, Any], fps: float, http: bool = False) -> dict[str, Any]:
    """Validated settings of a stream or an HTTP request, with defaults."""
    known = {"fps", "emotion", "face", "seed", "rig", "style"}
    known |= set() if http else {"sample_rate", "format", "output", "subject"}
    unknown = sorted(set(values) - known - {"token"})
    if unknown:
        raise TalkfaceError(f"unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
    style = _style(values)
    out: dict[str, Any] = {"fps": fps, "emotion": style.emotion, "face": style.face, "seed": style.seed,
                           "sample_rate": SAMPLE_RATE, "format": "s16", "output": "json", "subject": None,
                           "emotion_settings": style.emotion_settings, "style": style, "rig": None}  # fmt: skip
    for key, lo, hi, whole in (("fps", 1, MAX_FPS, False), ("sample_rate", 1000, 384000, True)):
        if key in values:  # (a number, or its text in a query)
            out[key] = checked_number(values[key], key, lo, hi, whole)
    for key, choices in (("format", SAMPLE_FORMATS), ("output", ("json", "binary"))):
        if key in values:
            if values[key] not in choices:
                raise TalkfaceError(f"{key} must be one of {', '.join(choices)}, got {values[key]!r}")
            out[key] = values[key]
    if "subject" in values:
        out["subject"] = text_setting(values["subject"], "subject")[:200]
    if "rig" in values:
        out["rig"] = _rig(values["rig"])
    return out


def _style(values: dict[str, Any]) -> Style:
    """The style of a stream's or request's settings: its ``style``, `animate`'s style options by name
    (an object, or its JSON in a query), with ``emotion``, ``face`` and ``seed`` beside it in place of the
    style's own; all parsed by `Style.from_options`, so what is left out takes the command line's
    defaults whether or not a ``style`` was given (``emotion`` "auto" among them)."""
    options = values.get("style", {})
    if isinstance(options, str):
        try:
            options = json.loads(options)
        except ValueError:
            options = None
    if not isinstance(options, dict):
        raise TalkfaceError('style must be an object of style options, like {"no-blink": true, "head-strength": 0.5}')
    options = dict(options)
    if "emotion" in values:
        options["emotion"] = text_setting(values["emotion"], "emotion")
    if "seed" in values:  # (a number, or its text in a query)
        options["seed"] = int(checked_number(values["seed"], "seed", 0, 2**63 - 1, True))
    style = Style.from_options(options)
    return replace(style, face=face_setting(values["face"], style.face)) if "face" in values else style


def _rig(value: object) -> Rig | None:
    """A built-in rig by name, or a mapping {target: {term: weight}} (a client names no server file)."""
    if isinstance(value, dict):  # checked as a rig file is
        return Rig.from_terms("rig", checked_mapping(value, "rig"))
    name = text_setting(value, "rig")
    if name not in BUILTIN:
        raise TalkfaceError(f"rig must be one of {', '.join(BUILTIN)} or a mapping, got {name!r}")
    return load_rig(name)
