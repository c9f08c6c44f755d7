"""What the viseme head decides, causally: lip closures, lip-to-teeth and tongue poses enforced where it
hears their class, and a floor of lip rounding on rounded vowels (`Articulations`)."""

from __future__ import annotations

import math

import numpy as np

from .coarticulation import RELEASE, critical_columns
from .model import CRITICAL_VISEMES, MIN_CRITICAL_FRAMES, MIN_HOLD, ROUNDED_VISEMES, ROUNDING_FLOOR, ROUNDING_RELEASE
from .phonemes import BILABIALS, TARGETS, VISEMES
from .rig import INDEX

_CLOSE, _JAW_OPEN = INDEX["mouthClose"], INDEX["jawOpen"]
_ROUNDING = np.array([INDEX["mouthPucker"], INDEX["mouthFunnel"]])
_ROUNDING_FLOORS = {v: ROUNDING_FLOOR * TARGETS[p][_ROUNDING] for v, p in ROUNDED_VISEMES.items()}
_ACTING = frozenset(i for i, v in enumerate(VISEMES) if v in CRITICAL_VISEMES or v in ROUNDED_VISEMES)


def _eased_out(frames: int, seconds: float, rate: float) -> float:
    """Strength of a pose `frames` into its release over `seconds`: from 1 eased to 0, then 0."""
    ramp = frames / (seconds * rate)
    return 0.5 + 0.5 * math.cos(math.pi * ramp) if ramp < 1 else 0.0


class Articulations:
    """What the viseme head decides, causally, where it hears a class two frames running. Lip
    closure on /p b m/, lip-to-teeth on /f v/ and tongue on /th dh/ are enforced (as
    `coarticulation.enforce`, without looking ahead), held whole for at least `MIN_HOLD`, then
    released over `RELEASE`. Rounded vowels get a floor of lip rounding, released over
    `ROUNDING_RELEASE`."""

    def __init__(self, rate: float, bias: np.ndarray | None = None) -> None:
        self.rate = rate
        self.bias = np.zeros(len(VISEMES), np.float32) if bias is None else bias  # the model's `viseme_bias`
        self.viseme, self.run = -1, 0
        self.phone: str | None = None
        self.since = 0
        self.min_hold = max(1, round(MIN_HOLD * rate))
        self.hold = 0  # frames the current articulation is still held whole
        self.rounding: np.ndarray | None = None  # the floor of pucker and funnel now in force
        self.unrounding = 0  # frames since a rounded class was last heard

    def apply(self, weights: np.ndarray, visemes: np.ndarray) -> np.ndarray:
        """Enforce in `weights` [k, 52] in place; which of the k frames hold an articulation whole."""
        return self.follow(weights, (visemes + self.bias).argmax(axis=1).tolist())

    def follow(self, weights: np.ndarray, heard: list[int]) -> np.ndarray:
        """`apply`, given the viseme heard best at each frame (the argmax of the viseme logits plus the bias)."""
        whole = np.zeros(weights.shape[0], bool)
        for i, best in enumerate(heard):
            self.viseme, self.run = (best, self.run + 1) if best == self.viseme else (best, 1)
            if self.phone is None and self.rounding is None and best not in _ACTING:
                continue  # nothing held and nothing to start: most frames (a stream's every frame)
            viseme = VISEMES[best]
            whole[i] = self._enforce(weights[i], viseme)
            self._round(weights[i], viseme)
        return whole

    def _enforce(self, frame: np.ndarray, viseme: str) -> bool:
        phone = CRITICAL_VISEMES.get(viseme)
        if phone and self.run >= MIN_CRITICAL_FRAMES:
            if self.run == MIN_CRITICAL_FRAMES:
                self.hold = self.min_hold
            self.phone, self.since, strength = phone, 0, 1.0
            self.hold -= 1
        elif self.phone is not None and self.hold > 0:
            self.hold -= 1
            strength = 1.0
        elif self.phone is not None:
            self.since += 1
            strength = _eased_out(self.since, RELEASE, self.rate)
            if not strength:
                self.phone = None
                return False
        else:
            return False
        cols = critical_columns(self.phone)
        target = TARGETS[self.phone].copy()
        if self.phone in BILABIALS:  # the lips meet however open the jaw is
            target[_CLOSE] = max(target[_CLOSE], frame[_JAW_OPEN])
        frame[cols] = (1 - strength) * frame[cols] + strength * target[cols]
        return strength == 1.0

    def _round(self, frame: np.ndarray, viseme: str) -> None:
        if viseme in _ROUNDING_FLOORS and self.run >= MIN_CRITICAL_FRAMES:
            self.rounding, self.unrounding, strength = _ROUNDING_FLOORS[viseme], 0, 1.0
        elif self.rounding is None:
            return
        else:
            self.unrounding += 1
            strength = _eased_out(self.unrounding, ROUNDING_RELEASE, self.rate)
            if not strength:
                self.rounding = None
                return
        frame[_ROUNDING] = np.maximum(frame[_ROUNDING], strength * self.rounding)
