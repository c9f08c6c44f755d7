"""Animation files: Live Link Face CSV, JSON, NPZ and Rhubarb Lip Sync compatible mouth cues.

`write` picks the format from ``--format`` or the file extension and writes atomically (via
`talkface.files`), so a failed export never leaves a half-written or clobbered file. `read` loads
the lossless formats (CSV, JSON, NPZ) back into an `Animation`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..animation import Animation
from ..errors import TalkfaceError
from . import gltf, json_format, livelink_csv, npz, rhubarb, usd

#: Every format `write` accepts.
FORMATS: tuple[str, ...] = ("csv", "json", "npz", *rhubarb.FORMATS, *gltf.FORMATS, "usd")

#: Format of each recognised extension; ``.json`` means talkface JSON, Rhubarb JSON needs ``--format``.
EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".json": "json",
    ".npz": "npz",
    ".tsv": "rhubarb-tsv",
    ".xml": "rhubarb-xml",
    ".dat": "rhubarb-dat",
    ".glb": "glb",
    ".usd": "usd",
    ".usda": "usd",
    ".usdc": "usd",
}


def format_for(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The format to write `path` in: `fmt` when given, else by extension; TalkfaceError if neither fits."""
    if fmt is not None:
        if fmt.lower() not in FORMATS:
            raise TalkfaceError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
        return fmt.lower()
    ext = Path(path).suffix.lower()
    if ext not in EXTENSIONS:
        known = ", ".join(EXTENSIONS)
        raise TalkfaceError(
            f"{path}: cannot tell the output format from the extension {ext or '(none)'!r}; "
            f"use one of {known} or pass a format ({', '.join(FORMATS)})"
        )
    return EXTENSIONS[ext]


def write(
    anim: Animation,
    path: str | os.PathLike,
    fmt: str | None = None,
    *,
    sound_file: str | None = None,
    dat_fps: float = rhubarb.DAT_FPS,
) -> str:
    """Write `anim` to `path` atomically and return the format used.

    `sound_file` is recorded in Rhubarb JSON/XML metadata; `dat_fps` is the frame rate of the
    Moho switch-data (``rhubarb-dat``) timeline, 24 like Rhubarb's default.
    """
    fmt = format_for(path, fmt)
    if not np.isfinite(anim.weights).all():
        raise TalkfaceError("animation has non-finite values; refusing to export it")
    if fmt == "csv":
        livelink_csv.write(anim, path)
    elif fmt == "json":
        json_format.write(anim, path)
    elif fmt == "npz":
        npz.write(anim, path)
    elif fmt in gltf.FORMATS:
        gltf.write(anim, path, fmt)
    elif fmt == "usd":
        usd.write(anim, path)
    else:
        rhubarb.write(anim, path, fmt, sound_file=sound_file, dat_fps=dat_fps)
    return fmt


def read(path: str | os.PathLike, fps: float | None = None) -> Animation:
    """Load a CSV, JSON or NPZ animation by extension; `fps` overrides a CSV's timecode rate."""
    fmt = EXTENSIONS.get(Path(path).suffix.lower())
    if fmt not in ("csv", "json", "npz"):
        raise TalkfaceError(f"{path}: can only read .csv, .json and .npz animations")
    if not Path(path).is_file():
        raise TalkfaceError(f"{path}: no such file")
    if fmt == "csv":
        return livelink_csv.read(path, fps)
    return json_format.read(path) if fmt == "json" else npz.read(path)
