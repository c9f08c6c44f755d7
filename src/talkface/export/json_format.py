"""talkface JSON: ``{"fps": F, "names": [...], "frames": [[...], ...]}`` for web players and scripts.

One frame per line, values rounded to 6 decimals (the CSV's precision), names as the animation has
them (ARKit camelCase, plus any head / eye channels). A ``"metadata"`` object, when there is one, says
how the animation was made (e.g. how many words of a transcript matched the audio).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..animation import Animation
from ..errors import TalkfaceError


def json_text(anim: Animation, metadata: Mapping[str, Any] | None = None) -> str:
    """The JSON text of `anim`, with `metadata` (JSON values) when given."""
    frames = (np.round(anim.weights.astype(np.float64), 6) + 0.0).tolist()
    meta = f'"metadata": {json.dumps(dict(metadata))}, ' if metadata else ""
    head = f'{{"fps": {json.dumps(anim.fps)}, {meta}"names": {json.dumps(list(anim.names))}, "frames": ['
    body = ",\n".join(json.dumps(row) for row in frames)
    return f"{head}\n{body}\n]}}\n" if frames else f"{head}]}}\n"


def read(path: str | os.PathLike) -> Animation:
    """Load a talkface JSON animation; TalkfaceError if it is not one."""
    try:
        with open(path, encoding="utf-8-sig") as f:  # (a byte-order mark, as Windows tools write, was refused)
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TalkfaceError(f"{path}: not a readable JSON file ({e})") from None
    except RecursionError:
        raise TalkfaceError(f"{path}: not a readable JSON file (nested too deeply)") from None
    if not isinstance(data, dict) or not {"fps", "names", "frames"} <= data.keys():
        raise TalkfaceError(f'{path}: not a talkface animation (needs "fps", "names" and "frames")')
    names, frames, fps = data["names"], data["frames"], data["fps"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise TalkfaceError(f'{path}: "names" must be a list of strings')
    if not isinstance(fps, int | float) or isinstance(fps, bool):
        raise TalkfaceError(f'{path}: "fps" must be a number')
    try:
        fps = float(fps)
    except OverflowError:  # an integer of hundreds of digits
        raise TalkfaceError(f'{path}: "fps" must be a frame rate, not an integer of {len(str(fps))} digits') from None
    try:
        with np.errstate(over="ignore"):  # (a value past float32's range is refused below as not finite)
            weights = np.asarray(frames, dtype=np.float32).reshape(-1, len(names))
    except (TypeError, ValueError):
        raise TalkfaceError(f'{path}: "frames" must be rows of {len(names)} numbers each') from None
    except OverflowError:  # an integer past any float
        raise TalkfaceError(f"{path}: has weights that are not finite numbers (an integer too large)") from None
    if weights.size and np.shape(frames) != weights.shape:
        raise TalkfaceError(f'{path}: "frames" must be rows of {len(names)} numbers each')
    return Animation(weights, fps, tuple(names))
