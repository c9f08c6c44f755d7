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
            weights, fps, names = data["weights"], data["fps"], data["names"]
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise TalkfaceError(f"{path}: damaged NPZ file ({e})") from None
    if fps.shape != () or names.ndim != 1 or names.dtype.kind != "U":
        raise TalkfaceError(f"{path}: not a talkface animation (bad fps or names array)")
    return Animation(weights, float(fps), tuple(str(n) for n in names))
