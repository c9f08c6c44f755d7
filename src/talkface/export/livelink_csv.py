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
from .npz import MAX_VALUES  # (a take resampled over dropped frames holds no more than an NPZ)

#: Channels of an animation read from a CSV: the 52 ARKit shapes in Apple's order, then head / eyes.
READ_NAMES: tuple[str, ...] = (*ARKIT_NAMES, *POSE_NAMES)

# (hours and frames of at most 6 digits: an integer of hundreds overflowed every float it met)
_TIMECODE = re.compile(r"^(\d{1,6}):(\d\d):(\d\d)[:;](\d{1,6})(?:\.(\d+))?$")
#: Relative distance from a whole number below which an inferred frame rate is snapped to it.
_SNAP = 1e-4
#: Seconds in a day, after which a time-of-day timecode starts again.
_DAY = 24 * 3600


def timecode_rate(fps: float) -> int:
    """Frames per timecode second: `fps` itself when whole, else rounded up (29.97 → 30)."""
    return max(1, math.ceil(fps - 1e-9))


def timecode(frame: int, fps: float) -> str:
    """Live Link Face timecode ``HH:MM:SS:FF.mmm`` of frame `frame` (0-based) at `fps`."""
    return timecodes(frame, 1, fps)[0]


def timecodes(start: int, n: int, fps: float) -> list[str]:
    """The timecodes of frames start..start+n-1 at `fps`."""
    rate = timecode_rate(fps)
    frames = np.arange(start, start + n, dtype=np.int64)
    millis = np.rint(frames * (rate * 1000) / fps).astype(np.int64)  # position in thousandths of a timecode frame
    seconds, rest = np.divmod(millis, rate * 1000)
    ff, sub = np.divmod(rest, 1000)
    parts = zip((seconds // 3600).tolist(), (seconds // 60 % 60).tolist(), (seconds % 60).tolist(), ff.tolist(),
                sub.tolist(), strict=True)  # fmt: skip
    return [f"{h:02d}:{m:02d}:{s:02d}:{f:02d}.{u:03d}" for h, m, s, f, u in parts]


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
        block = weights[start : start + rows].astype(np.float64)
        fast = _block_text(block, start, anim.fps, count)
        if fast is not None:
            yield fast
            continue
        values = np.round(block, 6) + 0.0  # + 0.0: -0.0 as 0.0
        codes = timecodes(start, len(values), anim.fps)
        yield "".join(f"{code},{count}," + line % tuple(row) for code, row in zip(codes, values.tolist(), strict=True))


def _block_text(values: np.ndarray, start: int, fps: float, count: str) -> str | None:
    """The CSV rows of frames `start`... with these values [rows, channels] (float64), the same text as
    formatting each with "%.6f" after rounding to 6 decimals, built as bytes in a few array operations
    (a fifth of the time); None where that does not apply: a value of 10 or more (or not a number),
    or timecodes that differ in width (100 hours and more, or over 100 frames a timecode second)."""
    micros = np.rint(values * 1e6)  # np.round(values, 6) before its division by 1e6: the decimals as whole numbers
    if not values.size or not np.abs(micros).max() < 1e7:  # (not <: NaN falls back too)
        return None
    heads = [f"{code},{count}," for code in timecodes(start, len(values), fps)]
    width = len(heads[0])
    if any(len(h) != width for h in heads):
        return None
    n, m = micros.shape
    # each value as 10 bytes: sign, units, point, six decimals, then "," ("\n" after the last); the sign is kept
    # only where the value is negative (not for -0.0, which "%.6f" of np.round(v, 6) + 0.0 writes as 0.000000)
    digits = np.abs(micros).astype(np.int64)
    cells = np.empty((n, m, 10), np.uint8)
    cells[..., 0] = ord("-")
    cells[..., 1] = digits // 1_000_000 + ord("0")
    cells[..., 2] = ord(".")
    for place in range(8, 2, -1):
        cells[..., place] = digits % 10 + ord("0")
        digits //= 10
    cells[..., 9] = ord(",")
    cells[:, -1, 9] = ord("\n")
    text = np.empty((n, width + 10 * m), np.uint8)
    text[:, :width] = np.frombuffer("".join(heads).encode("ascii"), np.uint8).reshape(n, width)
    text[:, width:] = cells.reshape(n, -1)
    keep = np.ones(text.shape, bool)
    keep[:, width::10] = micros < 0
    return text[keep].tobytes().decode("ascii")


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
    times = np.array([_seconds_and_frames(row[0], path, i + 2) for i, row in enumerate(body)]).reshape(-1, 2)
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
        raise TalkfaceError(
            f"{path}: the timecodes span less than a second, so the frame rate is unknown; pass fps "
            f'(or write it beside the file, as {os.path.basename(path)}.json holding {{"fps": 60}})'
        )
    rate = int(frames.max()) + 1  # the frame before a second's rollover is rate - 1
    t = seconds + frames / rate
    # a take that runs past midnight: its time-of-day timecode starts again from 00:00:00
    t += _DAY * np.cumsum(np.diff(t, prepend=t[0]) < -_DAY / 2)
    steps = np.diff(t)
    if (steps <= 0).any():
        line = int(np.argmax(steps <= 0)) + 3  # (the header is line 1)
        raise TalkfaceError(f"{path}: line {line}: timecodes do not increase from row to row (a repeated or "
                            "earlier timecode)")  # fmt: skip
    fps = _snap((len(t) - 1) / (t[-1] - t[0]))
    grid = t[0] + np.arange(len(t)) / fps
    if np.abs(t - grid).max() <= 0.5 / fps:
        return Animation(weights, fps, READ_NAMES)
    # dropped frames: the typical step gives the rate; interpolate onto an even grid
    fps = _snap(1.0 / float(np.median(steps)))
    frames = round((t[-1] - t[0]) * fps) + 1
    if frames * weights.shape[1] > MAX_VALUES:  # a few rows whose timecodes jump by hours asked for gigabytes
        raise TalkfaceError(f"{path}: the timecodes span {t[-1] - t[0]:.0f} s at {fps:g} fps with gaps: {frames} "
                            f"frames, more than talkface reads ({MAX_VALUES:,} values); pass fps")  # fmt: skip
    grid = t[0] + np.arange(frames) / fps
    even = np.empty((frames, weights.shape[1]), np.float32)
    for j in range(weights.shape[1]):
        even[:, j] = np.interp(grid, t, weights[:, j])
    return Animation(even, fps, READ_NAMES)


def _snap(fps: float) -> float:
    """`fps`, or the whole number it is within rounding noise of."""
    whole = round(fps)
    return float(whole) if whole > 0 and abs(fps - whole) <= _SNAP * fps else fps
