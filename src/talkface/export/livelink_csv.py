"""Live Link Face CSV: the take format of Epic's Live Link Face app, read by Unreal's Live Link Face
importer (MetaHuman) and by Maya / Blender ARKit import scripts.

One row per frame: ``Timecode``, ``BlendShapeCount`` (61), then the 52 ARKit weights in Live Link
order and the 9 head / eye angles (radians). The timecode is ``HH:MM:SS:FF.mmm``: hours, minutes,
seconds, the frame within the second, and a sub-frame fraction (always ``.000`` for talkface's
own files at whole frame rates).
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterator

import numpy as np

from ..animation import Animation
from ..errors import TalkfaceError
from ..rig import ARKIT_NAMES, LIVE_LINK_HEADER, LIVE_LINK_ORDER, POSE_NAMES, live_link_column

#: Channels of an animation read from a CSV: the 52 ARKit shapes in Apple's order, then head / eyes.
READ_NAMES: tuple[str, ...] = (*ARKIT_NAMES, *POSE_NAMES)

_TIMECODE = re.compile(r"^(\d+):(\d\d):(\d\d)[:;](\d+)(?:\.(\d+))?$")
#: Relative distance from a whole number below which an inferred frame rate is snapped to it.
_SNAP = 1e-4


def timecode_rate(fps: float) -> int:
    """Frames per timecode second: `fps` itself when whole, else rounded up (29.97 → 30)."""
    return max(1, math.ceil(fps - 1e-9))


def timecode(frame: int, fps: float) -> str:
    """Live Link Face timecode ``HH:MM:SS:FF.mmm`` of frame `frame` (0-based) at `fps`."""
    rate = timecode_rate(fps)
    millis = round(frame * rate * 1000 / fps)  # position in thousandths of a timecode frame
    seconds, rest = divmod(millis, rate * 1000)
    ff, sub = divmod(rest, 1000)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{ff:02d}.{sub:03d}"


def csv_text(anim: Animation) -> str:
    """The CSV text of `anim`: channels it lacks (often the head and eye angles) are written as 0."""
    return "".join(csv_chunks(anim))


def csv_chunks(anim: Animation, rows: int = 2000) -> Iterator[str]:
    """`csv_text` in pieces of `rows` frames, so that an hour is never one string in memory."""
    weights = anim.with_channels(LIVE_LINK_ORDER).weights
    count = str(len(LIVE_LINK_ORDER))
    line = ",".join(["%.6f"] * len(LIVE_LINK_ORDER)) + "\n"  # one format per row: a tenth of the time of one per value
    yield ",".join(LIVE_LINK_HEADER) + "\n"
    for start in range(0, len(weights), rows):
        values = np.round(weights[start : start + rows].astype(np.float64), 6) + 0.0  # + 0.0: -0.0 as 0.0
        yield "".join(
            f"{timecode(start + i, anim.fps)},{count}," + line % tuple(row) for i, row in enumerate(values.tolist())
        )


def read(path: str | os.PathLike, fps: float | None = None) -> Animation:
    """Load a Live Link Face CSV (talkface's or the app's) into the 61 channels of `READ_NAMES`.

    Columns are matched by name, ignoring case, so files that spell the shapes in camelCase or in
    another order load too; missing channels are zero. With `fps` the rows are taken as
    consecutive frames at that rate. Without it the rate comes from the timecodes, which needs them
    to cross at least one second; rows that are unevenly timed (frames dropped by the app) are
    resampled onto an even grid.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise TalkfaceError(f"{path}: not a readable CSV file ({e})") from None
    if not rows:
        raise TalkfaceError(f"{path}: empty CSV file")
    header = [h.strip().lower() for h in rows[0]]
    if not header or header[0] != "timecode":
        raise TalkfaceError(f"{path}: not a Live Link Face CSV (first column must be Timecode)")
    columns = {live_link_column(n).lower(): n for n in READ_NAMES}
    found = [(j, READ_NAMES.index(columns[h])) for j, h in enumerate(header) if h in columns]
    if not found:
        raise TalkfaceError(f"{path}: no ARKit blendshape columns in the header")
    body = rows[1:]
    weights = np.zeros((len(body), len(READ_NAMES)), np.float32)
    src, dst = zip(*found, strict=True)
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise TalkfaceError(f"{path}: row {i + 2} has {len(row)} columns, the header {len(header)}")
        try:
            weights[i, list(dst)] = [float(row[j]) for j in src]
        except ValueError:
            raise TalkfaceError(f"{path}: row {i + 2} has a value that is not a number") from None
    if fps is not None:
        return Animation(weights, fps, READ_NAMES)
    times = np.array([_seconds_and_frames(row[0], path, i + 2) for i, row in enumerate(body)])
    return _from_timecodes(weights, times, path)


def _seconds_and_frames(code: str, path: str | os.PathLike, line: int) -> tuple[int, float]:
    """(whole seconds, frames within the second including the sub-frame) of one timecode."""
    m = _TIMECODE.match(code.strip())
    if not m:
        raise TalkfaceError(f"{path}: line {line}: bad timecode {code!r} (expected HH:MM:SS:FF.mmm)")
    h, mi, s, ff, sub = m.groups()
    return int(h) * 3600 + int(mi) * 60 + int(s), int(ff) + float(f"0.{sub or 0}")


def _from_timecodes(weights: np.ndarray, times: np.ndarray, path: str | os.PathLike) -> Animation:
    """An evenly sampled animation from rows stamped with (second, frame) timecodes."""
    seconds, frames = times[:, 0], times[:, 1]
    if len(seconds) < 2 or seconds.min() == seconds.max():
        raise TalkfaceError(f"{path}: the timecodes span less than a second, so the frame rate is unknown; pass fps")
    rate = int(frames.max()) + 1  # the frame before a second's rollover is rate - 1
    t = seconds + frames / rate
    steps = np.diff(t)
    if (steps <= 0).any():
        raise TalkfaceError(f"{path}: timecodes do not increase from row to row")
    fps = _snap((len(t) - 1) / (t[-1] - t[0]))
    grid = t[0] + np.arange(len(t)) / fps
    if np.abs(t - grid).max() <= 0.5 / fps:
        return Animation(weights, fps, READ_NAMES)
    # dropped frames: the typical step gives the rate; interpolate onto an even grid
    fps = _snap(1.0 / float(np.median(steps)))
    grid = t[0] + np.arange(round((t[-1] - t[0]) * fps) + 1) / fps
    even = np.stack([np.interp(grid, t, weights[:, j]) for j in range(weights.shape[1])], axis=1)
    return Animation(even, fps, READ_NAMES)


def _snap(fps: float) -> float:
    """`fps`, or the whole number it is within rounding noise of."""
    whole = round(fps)
    return float(whole) if whole > 0 and abs(fps - whole) <= _SNAP * fps else fps
