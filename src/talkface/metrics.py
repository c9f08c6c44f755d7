"""Mouth-quality measures on ARKit curves, shared by tests, benchmarks and model evaluation.

They sample the animation at each phone's midpoint and ask what a viewer would: are the lips
closed on /p b m/, open on open vowels, rounded on /uw ow w/, at rest in pauses? And the price of
those: lips shut on other speech sounds, rounded on unrounded vowels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .animation import Animation
from .phonemes import BILABIALS, OPEN_VOWELS, SILENCE, TimedPhone

#: Lip aperture below this counts as closed lips; above OPEN_AT as an open mouth.
CLOSED_BELOW = 0.05
OPEN_AT = 0.2
ROUNDED_AT = 0.3
REST_BELOW = 0.1
MIN_PAUSE = 0.25  # s: shorter silences are not scored as pauses
ROUNDED_PHONES = frozenset({"uw", "ow", "w"})
UNROUNDED_VOWELS = frozenset({"iy", "ih", "ey", "eh", "ae", "aa", "ay"})
#: Phones where shut lips are not wrong: /p b m/, the lip-to-teeth /f v/ and pauses.
_MAY_SHUT = frozenset({"f", "v", SILENCE, *BILABIALS})


def lip_aperture(anim: Animation) -> np.ndarray:
    """Per-frame lip opening estimated from ARKit weights (the proxy of DESIGN.md)."""

    def both(name: str) -> np.ndarray:
        return 0.5 * (anim[name + "Left"] + anim[name + "Right"])

    return (
        np.maximum(0.0, anim["jawOpen"] - anim["mouthClose"])
        + 0.5 * both("mouthLowerDown")
        + 0.5 * both("mouthUpperUp")
        - 0.5 * both("mouthPress")
        - 0.3 * (anim["mouthRollLower"] + anim["mouthRollUpper"])
    )


def rounding(anim: Animation) -> np.ndarray:
    """Per-frame lip rounding: pucker plus funnel."""
    return anim["mouthPucker"] + anim["mouthFunnel"]


@dataclass(frozen=True)
class MouthScores:
    """Fractions of phone midpoints where the mouth does the right thing (nan where none occur)."""

    closed_on_bilabials: float
    open_on_open_vowels: float
    rounded_on_rounded: float
    rest_in_pauses: float
    counts: dict[str, int]
    closed_elsewhere: float = float("nan")  # lips shut on speech sounds other than /p b m f v/
    rounded_elsewhere: float = float("nan")  # lips rounded on unrounded vowels


def _frac(values: list[bool]) -> float:
    return float(np.mean(values)) if values else float("nan")


def mouth_scores(anim: Animation, phones: Sequence[TimedPhone], min_pause: float = MIN_PAUSE) -> MouthScores:
    """Score an animation against timed phones at each phone's midpoint (nearest frame)."""
    ap = lip_aperture(anim)
    rd = rounding(anim)
    last = anim.num_frames - 1

    def at(series: np.ndarray, t: float) -> float:
        return float(series[min(last, max(0, round(t * anim.fps)))])

    closed = [at(ap, p.mid) < CLOSED_BELOW for p in phones if p.phone in BILABIALS]
    opened = [at(ap, p.mid) > OPEN_AT for p in phones if p.phone in OPEN_VOWELS]
    rounded = [at(rd, p.mid) > ROUNDED_AT for p in phones if p.phone in ROUNDED_PHONES]
    pauses = [p for p in phones if p.phone == SILENCE and p.end - p.start >= min_pause]
    rest = [at(ap, p.mid) < REST_BELOW and at(rd, p.mid) < REST_BELOW for p in pauses]
    shut = [at(ap, p.mid) < CLOSED_BELOW for p in phones if p.phone not in _MAY_SHUT]
    pursed = [at(rd, p.mid) > ROUNDED_AT for p in phones if p.phone in UNROUNDED_VOWELS]
    counts = {"bilabials": len(closed), "open_vowels": len(opened), "rounded": len(rounded), "pauses": len(rest),
              "other_speech": len(shut), "unrounded": len(pursed)}  # fmt: skip
    return MouthScores(_frac(closed), _frac(opened), _frac(rounded), _frac(rest), counts, _frac(shut), _frac(pursed))
