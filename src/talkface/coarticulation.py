"""Coarticulation: timed phones → smooth ARKit curves at any frame rate.

A dominance model in the spirit of Cohen & Massaro (1993). Each phone pulls the face towards its
target pose with a strength that is flat over the middle of the phone and falls off before and
after it; every frame is the dominance-weighted mean of the nearby targets. The lips, the jaw and
the tongue are blended separately, so that a consonant that hardly uses the jaw (/t s k/) lets the
neighbouring vowels' jaw carry through, while rounded vowels reach far back (anticipatory
rounding). Articulations that a viewer must see — lip closure on /p b m/, lip-to-teeth on /f v/,
the tongue on /th dh/ — are then enforced over the middle of the phone, so that they are always
reached however short the phone and whatever the frame rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .animation import Animation, checked_fps
from .audio import MAX_SECONDS
from .errors import TalkfaceError
from .phonemes import (
    BILABIALS,
    DENTALS,
    DIPHTHONG_END,
    LABIODENTALS,
    OPEN_VOWELS,
    SILENCE,
    TARGETS,
    VOWELS,
    TimedPhone,
    merge_silences,
)
from .rig import ARKIT_NAMES, INDEX

#: Channels moved by each articulator; each is blended with its own dominance.
ARTICULATORS: dict[str, np.ndarray] = {
    "lips": np.array([INDEX[n] for n in ARKIT_NAMES if n.startswith("mouth") or n == "cheekPuff"]),
    "jaw": np.array([INDEX[n] for n in ARKIT_NAMES if n.startswith("jaw")]),
    "tongue": np.array([INDEX["tongueOut"]]),
}
_MOUTH_CLOSE, _JAW_OPEN = INDEX["mouthClose"], INDEX["jawOpen"]
_REST_DOMINANCE = 1e-3  # a faint pull to rest everywhere, so frames far from any phone are neutral
_HOLD = 0.35  # fraction of a phone, each side of its middle, over which it dominates fully
RELEASE = 0.03  # seconds over which an enforced articulation is released


@dataclass(frozen=True)
class Dominance:
    """How strongly a phone controls each articulator, and how far before/after it reaches (s)."""

    lips: float
    jaw: float
    tongue: float
    before: float = 0.05
    after: float = 0.05


def _dominance(phone: str) -> Dominance:
    if phone == SILENCE:
        return Dominance(0.6, 0.6, 0.6, before=0.06, after=0.06)
    if phone in BILABIALS or phone in LABIODENTALS:
        return Dominance(1.0, 0.5, 0.3)
    if phone in DENTALS:
        return Dominance(0.5, 0.5, 1.0)
    if phone in {"uw", "ow", "uh", "oy", "w"}:
        return Dominance(0.9, 0.8, 0.3, before=0.14, after=0.07)  # rounding starts early
    if phone in OPEN_VOWELS:
        return Dominance(0.7, 1.0, 0.3, before=0.06, after=0.06)
    if phone in VOWELS:
        return Dominance(0.7, 0.8, 0.3, before=0.06, after=0.06)
    if phone in {"sh", "zh", "ch", "jh", "r"}:
        return Dominance(0.7, 0.4, 0.3, before=0.08, after=0.05)
    if phone in {"s", "z"}:
        return Dominance(0.5, 0.5, 0.3)
    return Dominance(0.25, 0.35, 0.3, before=0.04, after=0.04)  # t d n l k g ng hh y


@dataclass(frozen=True)
class _Segment:
    start: float
    end: float
    target: np.ndarray
    dominance: Dominance
    phone: str


def _segments(phones: Sequence[TimedPhone]) -> list[_Segment]:
    """Phones as articulation segments; a diphthong becomes its onset and its glide."""
    out = []
    for p in phones:
        dom = _dominance(p.phone)
        glide = DIPHTHONG_END.get(p.phone)
        if glide is None:
            out.append(_Segment(p.start, p.end, TARGETS[p.phone], dom, p.phone))
            continue
        split = p.start + 0.55 * (p.end - p.start)
        out.append(_Segment(p.start, split, TARGETS[p.phone], dom, p.phone))
        out.append(_Segment(split, p.end, TARGETS[glide], dom, p.phone))
    return out


def _frame_range(times: np.ndarray, start: float, end: float) -> slice:
    return slice(int(np.searchsorted(times, start)), int(np.searchsorted(times, end, side="right")))


def _blend(segments: Sequence[_Segment], times: np.ndarray) -> np.ndarray:
    """Dominance-weighted mean of the targets, per articulator."""
    out = np.zeros((times.size, len(ARKIT_NAMES)), np.float32)
    for name, cols in ARTICULATORS.items():
        num = np.zeros((times.size, cols.size))
        den = np.full(times.size, _REST_DOMINANCE)
        for s in segments:
            strength = getattr(s.dominance, name)
            mid, hold = 0.5 * (s.start + s.end), _HOLD * (s.end - s.start)
            reach_before, reach_after = 3 * s.dominance.before, 3 * s.dominance.after
            win = _frame_range(times, mid - hold - reach_before, mid + hold + reach_after)
            t = times[win] - mid
            tau = np.where(t < 0, s.dominance.before, s.dominance.after)
            d = np.maximum(0.0, np.abs(t) - hold) / tau
            dom = strength * np.exp(-(d**2))
            num[win] += dom[:, None] * s.target[cols]
            den[win] += dom
        out[:, cols] = num / den[:, None]
    return out


def critical_columns(phone: str) -> np.ndarray | None:
    """The channels a critical articulation takes over (lips for /p b m f v/, tongue for /th dh/),
    or None for a phone whose articulation is not enforced."""
    if phone in BILABIALS or phone in LABIODENTALS:
        return ARTICULATORS["lips"]
    return ARTICULATORS["tongue"] if phone in DENTALS else None


def enforce(weights: np.ndarray, phones: Sequence[TimedPhone], fps: float) -> None:
    """Make the critical articulations of `phones` (lip closure on /p b m/, lip-to-teeth on /f v/,
    tongue on /th dh/) reach their target in ARKit `weights` [frames, 52] at `fps`, in place.

    The phone-driven path applies it after blending; `stream` applies the same targets causally
    where the neural model's viseme head hears a closure.
    """
    times = np.arange(weights.shape[0]) / fps
    for s in _segments(phones):
        cols = critical_columns(s.phone)
        if cols is None:
            continue
        mid = 0.5 * (s.start + s.end)
        # at least the frame nearest the middle is held, however short the phone
        hold = max(0.3 * (s.end - s.start), 0.5 / fps + 1e-6)
        win = _frame_range(times, mid - hold - RELEASE, mid + hold + RELEASE)
        ramp = np.clip((np.abs(times[win] - mid) - hold) / RELEASE, 0.0, 1.0)
        weight = (0.5 + 0.5 * np.cos(np.pi * ramp))[:, None]  # 1 inside the hold, eased to 0
        target = np.broadcast_to(s.target, (weight.shape[0], s.target.size)).copy()
        if s.phone in BILABIALS:
            # the lips meet however open the jaw is: mouthClose cancels jawOpen
            target[:, _MOUTH_CLOSE] = np.maximum(target[:, _MOUTH_CLOSE], weights[win, _JAW_OPEN])
        weights[win, cols] = (1 - weight) * weights[win, cols] + weight * target[:, cols]


def animate_phones(phones: Sequence[TimedPhone], fps: float = 30.0, duration: float | None = None) -> Animation:
    """ARKit curves at `fps` for timed ARPAbet phones, covering `duration` seconds (default: the phones)."""
    fps = checked_fps(fps, math.inf)
    _check_times(phones, duration)
    phones = merge_silences(phones)
    unknown = sorted({p.phone for p in phones} - TARGETS.keys())
    if unknown:
        raise TalkfaceError(f"unknown phones: {' '.join(unknown)}")
    end = max([duration or 0.0] + [p.end for p in phones])
    frames = max(1, int(np.ceil(end * fps - 1e-9)))
    times = np.arange(frames) / fps
    out = _blend(_segments(phones), times)
    enforce(out, phones, fps)
    return Animation(np.clip(out, 0.0, 1.0), fps)


def _check_times(phones: Sequence[TimedPhone], duration: float | None) -> None:
    """TalkfaceError unless every phone time is finite and no phone (nor `duration`) ends past
    `MAX_SECONDS`: NaN would fail deep in numpy, and a table in milliseconds would ask for
    frames of weeks (gigabytes) before anything else failed."""
    for p in phones:
        if not (math.isfinite(p.start) and math.isfinite(p.end)) or p.end > MAX_SECONDS:
            raise TalkfaceError(f"phone {p.phone!r} from {p.start:g} to {p.end:g} s: times must be finite seconds, "
                                f"ending within {MAX_SECONDS // 3600} hours")  # fmt: skip
    if duration is not None and not (math.isfinite(duration) and duration <= MAX_SECONDS):
        raise TalkfaceError(f"duration {duration:g} s must be finite and at most {MAX_SECONDS // 3600} hours")
