"""Rhubarb Lip Sync compatible 2D mouth cues: shapes A–H and X, in Rhubarb's tsv, json, xml and
Moho ``.dat`` layouts, so tools built around Rhubarb (After Effects, Moho, OpenToonz, game engine
plugins) take talkface output unchanged.

The shape of each frame is classified from its ARKit weights, not from phones, so cues come out of
every animation source (phone-driven or neural). The shapes, as Rhubarb defines them:

A  closed lips pressed together (P B M)        E  slightly rounded (AO, ER)
B  slightly open, clenched teeth (K S T, EE)   F  puckered (UW OW W)
C  open (EH AE)                                G  upper teeth on the lower lip (F V)
D  wide open (AA)                              H  tongue showing, mouth open (long L)
X  idle, relaxed and closed
"""

from __future__ import annotations

import json
import math
import re
from itertools import pairwise
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from ..animation import Animation, checked_fps
from ..errors import TalkfaceError
from ..metrics import CLOSED_BELOW, REST_BELOW, lip_aperture, rounding
from ..rig import ARKIT_NAMES

FORMATS: tuple[str, ...] = ("rhubarb-tsv", "rhubarb-json", "rhubarb-xml", "rhubarb-dat")
#: What XML 1.0 cannot hold even escaped: C0 controls but tab, newline and return; lone surrogates; U+FFFE, U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
SHAPES = "ABCDEFGHX"

#: Rhubarb's time resolution: cue boundaries fall on whole centiseconds.
CUE_RATE = 100.0

# Thresholds on the metrics.py measures (aperture: jaw + lips opening; rounding: pucker + funnel).
#: Lower lip rolled in past the upper by this much: tucked under the teeth (G).
TUCKED_AT = 0.3
#: Lip pressure (press + half the rolls) that makes closed lips A rather than X.
PRESSED_AT = 0.15
#: Rounding for F (puckered) and for E (slightly rounded).
PUCKERED_AT = 0.8
ROUNDED_AT = 0.4
#: Aperture for C (open) and D (wide open); below C the mouth is B.
OPEN_AT = 0.4
WIDE_AT = 0.6
#: mouthStretch that marks lips spread sideways: a wide-open mouth with spread lips (AE) stays C.
SPREAD_AT = 0.15
#: tongueOut that shows the tongue (H) when the mouth is open at least as far as C.
TONGUE_AT = 0.3


def mouth_shapes(anim: Animation) -> list[str]:
    """The Rhubarb shape of every frame, from its ARKit mouth weights."""
    a = anim.with_channels(ARKIT_NAMES)
    aperture, rounded = lip_aperture(a), rounding(a)
    tucked = a["mouthRollLower"] - a["mouthRollUpper"]
    spread = 0.5 * (a["mouthStretchLeft"] + a["mouthStretchRight"])
    pressure = 0.5 * (a["mouthPressLeft"] + a["mouthPressRight"]) + 0.5 * (a["mouthRollLower"] + a["mouthRollUpper"])
    rules = [  # first match wins
        ("G", (tucked >= TUCKED_AT) & (aperture < OPEN_AT)),
        ("A", (aperture < CLOSED_BELOW) & (pressure >= PRESSED_AT)),
        ("F", rounded >= PUCKERED_AT),
        ("E", rounded >= ROUNDED_AT),
        ("X", aperture < REST_BELOW),
        ("H", (a["tongueOut"] >= TONGUE_AT) & (aperture >= OPEN_AT)),
        ("D", (aperture >= WIDE_AT) & (spread < SPREAD_AT)),
        ("C", aperture >= OPEN_AT),
    ]
    shapes = np.select([cond for _, cond in rules], [shape for shape, _ in rules], default="B")
    return [str(s) for s in shapes]


def mouth_cues(anim: Animation, rate: float = CUE_RATE) -> list[tuple[float, float, str]]:
    """(start, end, shape) cues covering the animation, boundaries on a grid of `rate` steps a second.

    Runs of equal frames become one cue. A cue that rounds to less than one grid step (a one-frame
    flicker at a high frame rate, or one a frame long on a slower ``.dat`` timeline) is dropped: the
    neighbours on either side take its time, and merge if they are the same shape.
    """
    shapes = mouth_shapes(anim)
    if not shapes:
        return []
    starts = [0] + [i for i in range(1, len(shapes)) if shapes[i] != shapes[i - 1]]
    ticks = [round(frame * rate / anim.fps) for frame in [*starts, len(shapes)]]
    cues: list[list] = []
    for (a, b), frame in zip(pairwise(ticks), starts, strict=True):
        if b <= a:
            continue
        if cues and cues[-1][2] == shapes[frame]:
            cues[-1][1] = b
        else:
            cues.append([a, b, shapes[frame]])
    return [(a / rate, b / rate, shape) for a, b, shape in cues]


def _end(cues: list[tuple[float, float, str]]) -> float:
    return cues[-1][1] if cues else 0.0


def tsv_text(cues: list[tuple[float, float, str]]) -> str:
    """Rhubarb TSV: ``start<TAB>shape`` per cue, then the end time with X."""
    lines = [f"{start:.2f}\t{shape}" for start, _, shape in cues]
    return "\n".join([*lines, f"{_end(cues):.2f}\tX"]) + "\n"


def json_text(cues: list[tuple[float, float, str]], sound_file: str = "") -> str:
    """Rhubarb JSON: metadata (sound file, duration) and the mouthCues array."""
    rows = [f'    {{ "start": {s:.2f}, "end": {e:.2f}, "value": "{shape}" }}' for s, e, shape in cues]
    return (
        "{\n"
        '  "metadata": {\n'
        f'    "soundFile": {json.dumps(sound_file)},\n'
        f'    "duration": {_end(cues):.2f}\n'
        "  },\n"
        '  "mouthCues": [\n' + ",\n".join(rows) + ("\n" if rows else "") + "  ]\n"
        "}\n"
    )


def xml_text(cues: list[tuple[float, float, str]], sound_file: str = "") -> str:
    """Rhubarb XML: ``<rhubarbResult>`` with metadata and one ``<mouthCue>`` per cue (a character of the
    sound file's name that XML cannot hold, a control character, as U+FFFD)."""
    rows = [
        f"    <mouthCue start={quoteattr(f'{s:.2f}')} end={quoteattr(f'{e:.2f}')}>{shape}</mouthCue>"
        for s, e, shape in cues
    ]
    return "\n".join(
        [
            '<?xml version="1.0" encoding="utf-8"?>',
            "<rhubarbResult>",
            "  <metadata>",
            f"    <soundFile>{escape(_NOT_XML.sub(chr(0xFFFD), sound_file))}</soundFile>",
            f"    <duration>{_end(cues):.2f}</duration>",
            "  </metadata>",
            "  <mouthCues>",
            *rows,
            "  </mouthCues>",
            "</rhubarbResult>",
            "",
        ]
    )


def dat_text(cues: list[tuple[float, float, str]], fps: float) -> str:
    """Moho switch data: ``MohoSwitch1``, then ``frame shape`` at each cue start (frames counted from
    1 at `fps`) and X at the end. `cues` should lie on the `fps` grid (``mouth_cues(anim, fps)``)."""
    lines = ["MohoSwitch1"]
    lines += [f"{round(start * fps) + 1} {shape}" for start, _, shape in cues]
    lines.append(f"{round(_end(cues) * fps) + 1} X")
    return "\n".join(lines) + "\n"


def text(anim: Animation, fmt: str, *, sound_file: str = "", dat_fps: float | None = None) -> str:
    """The mouth cues of `anim` in one of `FORMATS`. The ``.dat`` timeline runs at `dat_fps`, by
    default the animation's own frame rate (Rhubarb's ``--datFrameRate``; set the Moho project to it)."""
    dat_fps = anim.fps if dat_fps is None else dat_fps
    if fmt == "rhubarb-dat":
        dat_fps = checked_fps(dat_fps, math.inf, "dat frame rate")
        return dat_text(mouth_cues(anim, dat_fps), dat_fps)
    cues = mouth_cues(anim)
    if fmt == "rhubarb-tsv":
        return tsv_text(cues)
    if fmt == "rhubarb-json":
        return json_text(cues, sound_file)
    if fmt == "rhubarb-xml":
        return xml_text(cues, sound_file)
    raise TalkfaceError(f"unknown Rhubarb format {fmt!r}; choose one of: {', '.join(FORMATS)}")
