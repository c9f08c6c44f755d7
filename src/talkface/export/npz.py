"""NumPy NPZ: arrays ``weights`` (float32 [frames, channels]), ``fps`` and ``names``; lossless. A
``metadata`` array, when there is one, holds a JSON object as a string (see the JSON format).

Loads without pickle (`names` is a unicode array), so reading an untrusted file runs no code.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..animation import Animation
from ..errors import TalkfaceError
from ..files import atomic_path

#: The most weights an NPZ animation may hold: four hours at 60 fps of 61 channels is 53 million.
MAX_VALUES = 64_000_000
#: The most channels read (a rig file of 1 MB holds under 70 000 targets), and the most bytes of their names
#: (4 a character, each as wide as the longest): an empty weights array [0, n] is no bound on its names.
MAX_CHANNELS = 100_000
MAX_NAME_BYTES = 128 << 20


def write(anim: Animation, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> None:
    """Write `anim` (and `metadata`, JSON values, when given) as a compressed NPZ, atomically."""
    extra = {"metadata": np.array(json.dumps(dict(metadata)))} if metadata else {}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: savez adds no ".npz"
        names = np.array(anim.names, dtype=str)
        np.savez_compressed(f, weights=anim.weights, fps=np.float64(anim.fps), names=names, **extra)


def read(path: str | os.PathLike) -> Animation:
    """Load an NPZ animation; TalkfaceError if it is not one."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise TalkfaceError(f"{path}: not a readable NPZ file ({e})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise TalkfaceError(f"{path}: a single .npy array, not an NPZ archive")
    with data:
        missing = {"weights", "fps", "names"} - set(data.files)
        if missing:
            raise TalkfaceError(f"{path}: not a talkface animation (missing {', '.join(sorted(missing))})")
        try:
            _check_headers(path, data.zip)
            weights, fps, names = data["weights"], data["fps"], data["names"]
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise TalkfaceError(f"{path}: damaged NPZ file ({e})") from None
    return Animation(weights, float(fps), tuple(str(n) for n in names))


def _header(path: str | os.PathLike, archive: zipfile.ZipFile, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype of the array `name` from its header alone (no data is read)."""
    if f"{name}.npy" not in archive.namelist():  # a member "weights" without .npy: bytes, not an array
        raise TalkfaceError(f"{path}: not a talkface animation ({name} is not a .npy array)")
    with archive.open(f"{name}.npy") as f:
        major, _ = np.lib.format.read_magic(f)
        header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = header(f)
    return shape, dtype


def _check_headers(path: str | os.PathLike, archive: zipfile.ZipFile) -> None:
    """The headers of the three arrays checked before any is read (a few KB compressed can hold gigabytes
    of zeros): weights real numbers [frames, channels], at most `MAX_VALUES`; fps one real number;
    names one string per channel."""
    shape, dtype = _header(path, archive, "weights")
    if dtype.kind not in "fiu" or len(shape) != 2:
        raise TalkfaceError(f"{path}: not a talkface animation (weights must be a 2-D array of real numbers)")
    if shape[0] * shape[1] > MAX_VALUES:
        raise TalkfaceError(f"{path}: {shape[0]} frames of {shape[1]} weights: more than talkface reads "
                            f"({MAX_VALUES:,} values)")  # fmt: skip
    if shape[1] > MAX_CHANNELS:
        raise TalkfaceError(f"{path}: {shape[1]} channels: more than talkface reads ({MAX_CHANNELS:,})")
    fps_shape, fps_dtype = _header(path, archive, "fps")
    names_shape, names_dtype = _header(path, archive, "names")
    if fps_shape != () or fps_dtype.kind not in "fiu" or names_dtype.kind != "U" or names_shape != shape[1:]:
        raise TalkfaceError(f"{path}: not a talkface animation (bad fps or names array)")
    if names_dtype.itemsize * shape[1] > MAX_NAME_BYTES:
        raise TalkfaceError(f"{path}: not a talkface animation (names of {names_dtype.itemsize // 4} characters "
                            f"each: over {MAX_NAME_BYTES >> 20} MB)")  # fmt: skip
