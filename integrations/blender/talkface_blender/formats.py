"""Reading talkface animations without talkface: its JSON export, Live Link Face CSV and ``--rig`` mapping files.

Plain Python (no bpy, no numpy), so that the add-on runs in any Blender and this module can be tested
outside it. The formats are talkface's own (``talkface.export.json_format``, ``talkface.export.livelink_csv``,
``talkface.retarget``); this is a second reader of them, not a second definition.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass

#: Apple's 52 ARKit blend shapes, the channel names of talkface's animations.
ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)  # fmt: skip
#: Terms of a rig mapping this reader computes: the ARKit shapes and the blink split.
BLINKS: tuple[str, ...] = ("blink", "blinkLeft", "blinkRight")
#: Largest file read (an hour at 60 fps of talkface JSON is about 40 MB).
FILE_LIMIT = 256 << 20
#: Frame rates read, from the lower up to the upper (not included): beyond, the times overflow or mean nothing.
FPS_RANGE = (1e-3, 10_000.0)
_TIMECODE = re.compile(r"^(\d{1,9}):(\d\d):(\d\d)[:;](\d{1,9})(?:\.(\d{1,9})\d*)?$")


class FormatError(ValueError):
    """A file that is not what it should be; the message is one line for the user."""


@dataclass(frozen=True)
class Track:
    """An animation: `rows[i]` (one value per name) at `times[i]` seconds; `fps` its frame rate."""

    fps: float
    names: tuple[str, ...]
    times: tuple[float, ...]
    rows: tuple[tuple[float, ...], ...]

    def column(self, name: str) -> list[float]:
        """The values of channel `name` (zeros if the track lacks it)."""
        if name not in self.names:
            return [0.0] * len(self.rows)
        j = self.names.index(name)
        return [row[j] for row in self.rows]


def read(path: str, csv_fps: float | None = None) -> Track:
    """The track of a talkface JSON (``.json``) or Live Link Face CSV (``.csv``, `csv_fps`: see `read_csv`) file."""
    if not os.path.isfile(path):
        raise FormatError(f"{path}: no such file")
    if os.path.getsize(path) > FILE_LIMIT:
        raise FormatError(f"{os.path.basename(path)}: larger than {FILE_LIMIT >> 20} MB")
    if path.lower().endswith(".csv"):
        return read_csv(path, csv_fps)
    return read_json(path)


def read_json(path: str) -> Track:
    """A talkface JSON export: ``{"fps": F, "names": [...], "frames": [[...], ...]}``."""
    name = os.path.basename(path)
    data = _json(path, "JSON file")
    if not isinstance(data, dict) or not {"fps", "names", "frames"} <= data.keys():
        raise FormatError(f'{name}: not a talkface animation (needs "fps", "names" and "frames")')
    fps, names, frames = data["fps"], data["names"], data["frames"]
    if not _rate(fps):
        raise FormatError(f'{name}: "fps" must be a number from {FPS_RANGE[0]:g} to under {FPS_RANGE[1]:g}')
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise FormatError(f'{name}: "names" must be a list of strings')
    if not isinstance(frames, list) or not all(_numbers(row, len(names)) for row in frames):
        raise FormatError(f'{name}: "frames" must be rows of {len(names)} numbers each')
    times = tuple(i / fps for i in range(len(frames)))
    return Track(float(fps), tuple(names), times, tuple(tuple(float(v) for v in row) for row in frames))


def _finite(v: object) -> bool:
    """Whether `v` is a finite JSON number (an integer too large for a float is not: it would overflow)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return -1e308 < v < 1e308 if isinstance(v, int) else math.isfinite(v)


def _rate(fps: object) -> bool:
    """Whether `fps` is a frame rate this reader takes (`FPS_RANGE`)."""
    return _finite(fps) and FPS_RANGE[0] <= fps < FPS_RANGE[1]


def _numbers(row: object, width: int) -> bool:
    return isinstance(row, list) and len(row) == width and all(_finite(v) for v in row)


def read_csv(path: str, fps: float | None = None) -> Track:
    """A Live Link Face CSV: ``Timecode, BlendShapeCount`` and one column per shape (``EyeBlinkLeft`` …).

    Each row is placed at its timecode ``HH:MM:SS:FF.mmm``; the frames per timecode second are the
    largest ``FF`` plus one, which needs the take to cross a second. Shorter takes need `fps`. Column
    names become talkface's (first letter lower case: ``jawOpen``); the head and eye angles are kept
    under their names (``headYaw`` …) and match no shape key."""
    name = os.path.basename(path)
    if fps is not None and not _rate(fps):
        raise FormatError(f"{name}: the frame rate must be from {FPS_RANGE[0]:g} to under {FPS_RANGE[1]:g}, got {fps}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise FormatError(f"{name}: not a readable CSV file ({_one_line(e)})") from None
    if not rows or rows[0][0].strip().lower() != "timecode":
        raise FormatError(f"{name}: not a Live Link Face CSV (the first column must be Timecode)")
    header = [h.strip() for h in rows[0]]
    columns = [j for j, h in enumerate(header[1:], 1) if h.lower() != "blendshapecount"]
    names = tuple(header[j][:1].lower() + header[j][1:] for j in columns)
    stamps, values = [], []
    for i, row in enumerate(rows[1:], 2):
        if len(row) != len(header):
            raise FormatError(f"{name}: row {i} has {len(row)} columns, the header {len(header)}")
        match = _TIMECODE.match(row[0].strip())
        if not match:
            shown = row[0] if len(row[0]) <= 40 else row[0][:40] + "…"
            raise FormatError(f"{name}: row {i}: bad timecode {shown!r} (expected HH:MM:SS:FF.mmm)")
        h, m, s, ff, sub = match.groups()
        stamps.append((int(h) * 3600 + int(m) * 60 + int(s), int(ff) + float(f"0.{sub or 0}")))
        try:
            values.append(tuple(float(row[j]) for j in columns))
        except ValueError:
            raise FormatError(f"{name}: row {i} has a value that is not a number") from None
        if not all(math.isfinite(v) for v in values[-1]):
            raise FormatError(f"{name}: row {i} has a value that is not a finite number")
    if not values:
        raise FormatError(f"{name}: no frames")
    if fps is None:
        if stamps[0][0] == stamps[-1][0]:
            raise FormatError(f"{name}: the timecodes span less than a second, so the frame rate is unknown; set it")
        rate = int(max(f for _, f in stamps)) + 1
        seconds = [s + f / rate for s, f in stamps]
        if any(b <= a for a, b in zip(seconds, seconds[1:])):
            raise FormatError(f"{name}: timecodes do not increase from row to row")
        steps = sorted(b - a for a, b in zip(seconds, seconds[1:]))
        fps = _snap(1.0 / steps[len(steps) // 2])
        if not _rate(fps):
            raise FormatError(f"{name}: the timecodes give {fps:g} fps, not from {FPS_RANGE[0]:g} to under "
                              f"{FPS_RANGE[1]:g}; set the frame rate")  # fmt: skip
        times = tuple(t - seconds[0] for t in seconds)
    else:
        times = tuple(i / fps for i in range(len(values)))
    return Track(fps, names, times, tuple(values))


def _snap(fps: float) -> float:
    """`fps`, or the whole number it is within rounding noise of (59.9999 → 60)."""
    whole = round(fps)
    return float(whole) if whole > 0 and abs(fps - whole) <= 1e-3 * fps else fps


def read_mapping(path: str) -> dict[str, dict[str, float]]:
    """A talkface ``--rig`` mapping file, ``{"target": {"term": weight, ...}, ...}``, with terms this
    reader computes (`ARKIT_NAMES`, `BLINKS`); Oculus-viseme and emotion terms need talkface itself."""
    name = os.path.basename(path)
    data = _json(path, "JSON rig file")
    if not isinstance(data, dict) or not data:
        raise FormatError(f'{name}: a rig file is a JSON object {{"target": {{"term": weight, ...}}, ...}}')
    known = set(ARKIT_NAMES) | set(BLINKS)
    mapping = {}
    for target, terms in data.items():
        if not isinstance(terms, dict) or not terms:
            raise FormatError(f"{name}: target {target!r} must map at least one term to a weight")
        for term, weight in terms.items():
            if term not in known:
                raise FormatError(
                    f"{name}: term {term!r} (of {target!r}) needs talkface: export with "
                    f"`talkface animate --rig {name}` and import that file without a mapping"
                )
            if not _finite(weight):
                raise FormatError(f"{name}: target {target!r}: the weight of {term!r} must be a finite number")
        mapping[target] = {term: float(w) for term, w in terms.items()}
    return mapping


def retarget(track: Track, mapping: dict[str, dict[str, float]]) -> Track:
    """`track`'s ARKit channels mapped onto the mapping's targets as talkface's ``--rig`` does: each
    target the weighted sum of its terms, clipped to [0, 1]; ``blink`` is the closure both eyes share,
    ``blinkLeft`` / ``blinkRight`` what each eye adds. Raises FormatError if the track has no ARKit channels."""
    if not set(track.names) & set(ARKIT_NAMES):
        raise FormatError("the file has no ARKit channels for the rig mapping to read")
    columns = {n: track.column(n) for n in {t for terms in mapping.values() for t in terms} & set(ARKIT_NAMES)}
    left, right = track.column("eyeBlinkLeft"), track.column("eyeBlinkRight")
    both = [min(a, b) for a, b in zip(left, right)]
    columns["blink"] = both
    columns["blinkLeft"] = [a - s for a, s in zip(left, both)]
    columns["blinkRight"] = [b - s for b, s in zip(right, both)]
    targets = tuple(mapping)
    out = [
        [min(1.0, max(0.0, sum(w * columns[term][i] for term, w in mapping[t].items()))) for t in targets]
        for i in range(len(track.rows))
    ]
    return Track(track.fps, targets, track.times, tuple(tuple(row) for row in out))


def _json(path: str, what: str) -> object:
    """The JSON document in the file at `path`; FormatError (one line) if it cannot be read as one."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FormatError(f"{os.path.basename(path)}: not a readable {what} ({_one_line(e)})") from None


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())
