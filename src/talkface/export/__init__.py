"""Animation files: Live Link Face CSV, JSON, NPZ and Rhubarb Lip Sync compatible mouth cues.

`write` picks the format from ``--format`` or the file extension and writes atomically (via
`talkface.files`), so a failed export never leaves a half-written or clobbered file. `text` gives
the text formats as a string (``-o -`` sends it to standard output). `read` loads the lossless
formats (CSV, JSON, NPZ) back into an `Animation`.

`metadata` (how the animation was made, see `provenance`) goes into JSON and NPZ ``metadata``, glTF
``asset.extras`` and USD layer metadata; Live Link Face CSV and the Rhubarb formats, whose importers
expect the file exactly as it is, get it in a sidecar ``NAME.EXT.json``. `rig` (a `retarget.Rig`)
writes the weights on another rig's targets: JSON and NPZ name its targets as channels, glTF and USD
give the head (or the placeholder) morph targets by its names; Live Link Face CSV is ARKit only and
Rhubarb cues have their own mouth shapes, so neither takes one.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..animation import Animation, checked_fps
from ..errors import TalkfaceError
from ..files import atomic_path, read_text, write_text
from . import gltf, json_format, livelink_csv, npz, rhubarb, usd

if TYPE_CHECKING:
    from ..retarget import Rig

#: Every format `write` accepts.
FORMATS: tuple[str, ...] = ("csv", "json", "npz", *rhubarb.FORMATS, *gltf.FORMATS, "usd")
#: The formats that are text, which `text` returns; the others are binary.
TEXT_FORMATS: tuple[str, ...] = ("csv", "json", *rhubarb.FORMATS)

#: The formats that take a `rig`; the others are ARKit (Live Link) or their own shapes (Rhubarb).
RIG_FORMATS: tuple[str, ...] = ("json", "npz", *gltf.FORMATS, "usd")
#: The formats whose metadata goes in a sidecar ``NAME.EXT.json``: their importers take nothing else.
SIDECAR_FORMATS: tuple[str, ...] = ("csv", *rhubarb.FORMATS)
#: Largest sidecar read back (for a CSV's frame rate); talkface's own are a few hundred bytes.
SIDECAR_LIMIT = 1 << 20

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
    """The format to write `path` in: `fmt` when given, else by extension; TalkfaceError if neither fits,
    or if `fmt` is not what an extension talkface knows says (NPZ bytes in `face.usda`, USD in `face.out`)."""
    ext = Path(path).suffix.lower()
    if fmt is not None:
        if not isinstance(fmt, str) or fmt.lower() not in FORMATS:  # (a number was an AttributeError)
            raise TalkfaceError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
        fmt = fmt.lower()
        if ext in EXTENSIONS and fmt != EXTENSIONS[ext] and SUFFIXES[fmt] != ext:
            raise TalkfaceError(f"{path}: a {ext} file is {EXTENSIONS[ext]}, not {fmt}; name it {SUFFIXES[fmt]} "
                                f"or leave the format to the extension")  # fmt: skip
        if fmt == "usd" and os.fspath(path) and ext not in usd.SUFFIXES:  # USD could neither save nor open it
            raise TalkfaceError(f"{path}: USD tells a file's encoding by its extension; name it .usda, .usdc or .usd")
        return fmt
    if ext not in EXTENSIONS:
        known = ", ".join(EXTENSIONS)
        raise TalkfaceError(
            f"{path}: cannot tell the output format from the extension {ext or '(none)'!r}; "
            f"use one of {known} or pass a format ({', '.join(FORMATS)})"
        )
    return EXTENSIONS[ext]


def check_rig(fmt: str) -> None:
    """TalkfaceError unless the format `fmt` can carry a rig's targets."""
    if fmt == "csv":
        raise TalkfaceError(
            f"Live Link Face CSV is ARKit only and takes no --rig; write {', '.join(RIG_FORMATS)} for a rig"
        )
    if fmt not in RIG_FORMATS:
        raise TalkfaceError(f"{fmt} mouth cues have Rhubarb's own shapes (A-H, X) and take no --rig")


def sidecar_path(path: str | os.PathLike, fmt: str) -> Path | None:
    """Where the metadata of a `fmt` file at `path` goes beside it (``NAME.EXT.json``), or None when
    the format keeps it inside."""
    return Path(f"{os.fspath(path)}.json") if fmt in SIDECAR_FORMATS else None


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
    rig: Rig | None = None,
) -> str:
    """`anim` in the text format `fmt` (one of `TEXT_FORMATS`); TalkfaceError for a binary format.

    `sound_file` is recorded in Rhubarb JSON/XML metadata; `dat_fps` is the frame rate of the Moho
    switch-data (``rhubarb-dat``) timeline, by default the animation's own (``--fps``); `metadata`
    (JSON values: how the animation was made) goes into talkface JSON (the other text formats keep
    it only in a file's sidecar, see `write`); `rig`: the weights on that rig's targets (JSON only).
    """
    fmt, metadata = format_for("", fmt), _metadata(metadata)
    if rig is not None:
        check_rig(fmt)
        anim, metadata = rig.apply(anim), {**(metadata or {}), "rig": rig.name}
    return "".join(_pieces(anim, fmt, sound_file, dat_fps, metadata))


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
    path: str | bytes | os.PathLike,
    fmt: str | None = None,
    *,
    sound_file: str | None = None,
    dat_fps: float | None = None,
    metadata: Mapping[str, Any] | None = None,
    rig: Rig | None = None,
) -> str:
    """Write `anim` to `path` atomically and return the format used (`sound_file`, `dat_fps`: see
    `text`). `metadata` goes where the module says, a sidecar put in place with the file (neither if
    either fails); `rig`: the weights on that rig's targets (TalkfaceError for a format that takes none)."""
    path, metadata = _path(path), _metadata(metadata)
    fmt = format_for(path, fmt)
    poses = None
    if rig is not None:
        check_rig(fmt)
        anim, poses, metadata = rig.apply(anim), rig.poses(), {**(metadata or {}), "rig": rig.name}
    sidecar = sidecar_path(path, fmt) if metadata else None
    # the sidecar's temporary file is made first and put in place last: a run that cannot write
    # either leaves both files as they were
    with atomic_path(sidecar) if sidecar is not None else contextlib.nullcontext() as side:
        if side is not None:  # a CSV's rate is in its timecodes only from a second on: the sidecar keeps it
            extra = {"fps": anim.fps} if fmt == "csv" else {}
            side.write_text(json.dumps({**(metadata or {}), **extra}, indent=2) + "\n", encoding="utf-8")
        if fmt in TEXT_FORMATS:
            write_text(path, _pieces(anim, fmt, sound_file, dat_fps, metadata))
        else:
            _check_finite(anim)
            if fmt == "npz":
                npz.write(anim, path, metadata)
            elif fmt in gltf.FORMATS:
                gltf.write(anim, path, fmt, metadata=metadata, poses=poses)
            else:
                usd.write(anim, path, metadata=metadata, poses=poses)
    return fmt


def read(path: str | bytes | os.PathLike, fps: float | None = None) -> Animation:
    """Load a CSV, JSON or NPZ animation by extension; `fps` overrides a CSV's timecode rate."""
    path = _path(path)
    fmt = EXTENSIONS.get(Path(path).suffix.lower())
    if fmt not in ("csv", "json", "npz"):
        raise TalkfaceError(f"{path}: can only read .csv, .json and .npz animations")
    if not Path(path).is_file():
        raise TalkfaceError(f"{path}: no such file")
    if fmt == "csv" and fps is None:
        fps = _sidecar_fps(path)
    readers = {"csv": lambda: livelink_csv.read(path, fps), "json": lambda: json_format.read(path)}
    anim = readers.get(fmt, lambda: npz.read(path))()
    if not np.isfinite(anim.weights).all():  # (NaN would pass every later check and reach a client's JSON)
        raise TalkfaceError(f"{path}: has weights that are not finite numbers (NaN or infinity)")
    return anim


def _metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`metadata` as JSON values, checked before anything is written: numpy's numbers and arrays as Python's
    (they were a TypeError from `json.dumps`, as was anything else JSON cannot hold: now a TalkfaceError).
    NaN and infinity are refused too: JSON has no such number, and glTF, JSON and sidecars holding one were
    files that the Khronos validator and JavaScript's JSON.parse reject."""
    if not metadata:
        return None
    try:
        return json.loads(json.dumps(dict(metadata), default=_plain, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise TalkfaceError(f"metadata must be a mapping of JSON values ({e})") from None


def _plain(value: object) -> object:
    """A numpy number or array as the Python value JSON writes (`json.dumps`'s `default`)."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _path(path: str | bytes | os.PathLike) -> str | os.PathLike:
    """An animation file's path as `Path` takes it: a bytes path (as `os.listdir(b".")` gives, and `load_audio`
    takes) as text; TalkfaceError for what is no path (None or a number were a TypeError)."""
    if isinstance(path, bytes):
        return os.fsdecode(path)
    if not isinstance(path, str | os.PathLike):
        raise TalkfaceError(f"an animation file's path must be a str or os.PathLike, not {type(path).__name__}")
    return path


def _sidecar_fps(path: str | os.PathLike) -> float | None:
    """The frame rate a CSV's metadata sidecar (``NAME.csv.json``, as `write` makes it) records, or None
    (no sidecar, or none that says): a clip of under a second tells it by no timecode."""
    side = sidecar_path(path, "csv")
    try:  # bounded and never blocking: a sidecar that is a link to /dev/zero or a FIFO is no sidecar
        fps = json.loads(read_text(side, "sidecar", SIDECAR_LIMIT)).get("fps") if side is not None else None
        return None if fps is None else checked_fps(fps)
    except (TalkfaceError, ValueError, AttributeError, RecursionError):
        return None
