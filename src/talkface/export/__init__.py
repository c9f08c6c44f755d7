"""Animation files: Live Link Face CSV, JSON, NPZ and Rhubarb Lip Sync compatible mouth cues.

`write` picks the format from ``--format`` or the file extension and writes atomically (via
`talkface.files`), so a failed export never leaves a half-written or clobbered file. `text` gives
the text formats as a string (``-o -`` sends it to standard output). `read` loads the lossless
formats (CSV, JSON, NPZ) back into an `Animation`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..animation import Animation
from ..errors import TalkfaceError
from ..files import write_text
from . import gltf, json_format, livelink_csv, npz, rhubarb, usd

#: Every format `write` accepts.
FORMATS: tuple[str, ...] = ("csv", "json", "npz", *rhubarb.FORMATS, *gltf.FORMATS, "usd")
#: The formats that are text, which `text` returns; the others are binary.
TEXT_FORMATS: tuple[str, ...] = ("csv", "json", *rhubarb.FORMATS)

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
#: The file suffix each format is written with when only the format is given (a batch line, a server answer).
SUFFIXES: dict[str, str] = {
    "csv": ".csv",
    "json": ".json",
    "npz": ".npz",
    "rhubarb-tsv": ".tsv",
    "rhubarb-json": ".json",
    "rhubarb-xml": ".xml",
    "rhubarb-dat": ".dat",
    "glb": ".glb",
    "gltf-anim": ".glb",
    "usd": ".usda",
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


def _check_finite(anim: Animation) -> None:
    if not np.isfinite(anim.weights).all():
        raise TalkfaceError("animation has non-finite values; refusing to export it")


def text(
    anim: Animation,
    fmt: str,
    *,
    sound_file: str | None = None,
    dat_fps: float | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """`anim` in the text format `fmt` (one of `TEXT_FORMATS`); TalkfaceError for a binary format.

    `sound_file` is recorded in Rhubarb JSON/XML metadata; `dat_fps` is the frame rate of the Moho
    switch-data (``rhubarb-dat``) timeline, by default the animation's own (``--fps``); `metadata`
    (JSON values: how the animation was made) goes into talkface JSON and NPZ files.
    """
    return "".join(_pieces(anim, format_for("", fmt), sound_file, dat_fps, metadata))


def _pieces(
    anim: Animation, fmt: str, sound_file: str | None, dat_fps: float | None, metadata: Mapping[str, Any] | None
) -> Iterable[str]:
    """The text of `anim` in `fmt`, in pieces (a long Live Link CSV is made a block at a time)."""
    _check_finite(anim)
    if fmt == "csv":
        return livelink_csv.csv_chunks(anim)
    if fmt == "json":
        return [json_format.json_text(anim, metadata)]
    if fmt in rhubarb.FORMATS:
        return [rhubarb.text(anim, fmt, sound_file=sound_file or "", dat_fps=dat_fps)]
    raise TalkfaceError(f"{fmt} is a binary format; text formats are {', '.join(TEXT_FORMATS)}")


def write(
    anim: Animation,
    path: str | os.PathLike,
    fmt: str | None = None,
    *,
    sound_file: str | None = None,
    dat_fps: float | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Write `anim` to `path` atomically and return the format used (`sound_file`, `dat_fps`,
    `metadata`: see `text`)."""
    fmt = format_for(path, fmt)
    if fmt in TEXT_FORMATS:
        write_text(path, _pieces(anim, fmt, sound_file, dat_fps, metadata))
        return fmt
    _check_finite(anim)
    if fmt == "npz":
        npz.write(anim, path, metadata)
    elif fmt in gltf.FORMATS:
        gltf.write(anim, path, fmt)
    else:
        usd.write(anim, path)
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
