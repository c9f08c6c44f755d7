"""Liveliness's numbers and shapes: the one table of its timing, the curves of a blink, a saccade
and a breath, the eyeLook* shapes of a gaze, and `Layers`, what `life.Life` hands on a block at a time."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

DEG = math.pi / 180
#: Gaze angle (rad) at which an eyeLook* shape reaches 1.
LOOK_RANGE = 30 * DEG

# --- the one table of liveliness timing (seconds, degrees, probabilities) ---
FIRST_BLINK = (0.3, 2.0)  # the first blink comes early, even in a short clip
REFRACTORY = 0.6  # between the blinks of the schedule (a double blink's second comes sooner)
BLINK_SHAPE = 3.0  # gamma shape of the intervals (mean 60 / blink_rate)
DOUBLE_BLINK, DOUBLE_GAP = 0.07, (0.28, 0.45)
LONG_BLINK, LONG_LENGTH, SHORT_LENGTH = 0.15, (0.3, 0.4), (0.12, 0.3)
BLINK_DEPTH, EYE_LAG, EYE_LESS = (0.85, 1.0), 0.015, 0.08  # the second eye lags by ±15 ms, closes up to 8 % less
BLINK_CLOSE, BLINK_HOLD = 0.3, 0.1  # shares of a blink spent closing and closed
BLINK_DUE = 0.02  # a blink is drawn this long before it starts
PHRASE_END, PHRASE_END_BLINK, PHRASE_END_DELAY = 0.25, 0.45, (0.02, 0.17)  # a pause this long invites a blink
BIG_SHIFT, BIG_SHIFT_BLINK = 10.0, 0.3  # a saccade over 10° invites a blink
GAZE_BACK = 0.4  # a pause this long brings the eyes back; the next phrase draws them away
AWAY_AT_PHRASE, AWAY_SPEAKING, AWAY_SILENT = 0.7, 0.5, 0.3  # chances of looking away
LISTENER_SPREAD = (1.5, 1.0)  # yaw, pitch standard deviation of looking at the listener
AWAY_YAW, AWAY_PITCH = (6.0, 15.0), (-10.0, 4.0)
HOLD = {(True, True): (0.5, 1.5), (True, False): (0.4, 1.2), (False, True): (1.0, 3.0), (False, False): (2.0, 4.0)}
FIRST_SWITCH = (2.0, 4.0)  # (holds by (looking away, speaking))
MICRO_FIRST, MICRO_NEXT, MICRO_SPREAD, MICRO_CLEAR = (0.4, 1.0), (0.5, 1.0), (0.6, 0.4), 0.2  # fixational saccades
EVENT_AFTER, AWAY_AFTER = 0.3, 0.3  # a pause turns the gaze this long after a fixation starts, and not at the start
SACCADE = (0.021, 0.0022)  # duration: s + s per degree
WANDER = (1.5, 1.0, 0.8), (0.05, 0.4)  # head yaw, pitch, roll standard deviation; sinusoid frequencies (Hz)
TALKING_TAU, TALKING_GAIN = 0.2, (0.6, 0.8)  # the head moves 0.6× silent, 1.4× speaking
PITCH_TAU, PITCH_GAIN, PITCH_MAX = 0.125, 0.25, 3.0  # the chin follows the voice: deg per semitone
NOD_STRESS, NOD_GAP, NOD_AMP, NOD_SPREAD = 0.6, 0.4, (1.5, 3.0), (0.7, 1.2)  # amp deg: 1.5 at 0.6, 4.5 at 1
NOD_PEAK, NOD_RISE, NOD_FALL, NOD_ROLL, NOD_LENGTH = 0.1, 0.06, 0.15, 0.3, 0.8
FOLLOW_TAU, FOLLOW = 0.15, (0.25, 0.15)  # the head turns with the eyes: share of yaw, pitch
BREATH_PAUSE, BREATH_TAU, BREATH_LIFT = (0.25, 0.8), 0.025, 1.0  # a stream's breath: from .25 to .8 s into a pause
BREATH_BEFORE, BREATH_LENGTH, BREATH_AFTER = 0.35, 0.55, 0.05  # a whole clip's: in pauses over .35 s, up to
# .55 s long, starting at least .05 s into the pause and ending as the phrase starts
BREATH = {"jawOpen": 0.05, "mouthLowerDownLeft": 0.03, "mouthLowerDownRight": 0.03,
          "noseSneerLeft": 0.08, "noseSneerRight": 0.08}  # fmt: skip


def ease(x: np.ndarray) -> np.ndarray:
    """Smoothstep on [0, 1]."""
    x = x.clip(0.0, 1.0)
    return x * x * (3 - 2 * x)


def breath_in(x: np.ndarray) -> np.ndarray:
    """A breath in over x from 0 to 1: quickly in, slowly let go."""
    return np.where((x > 0) & (x < 1), np.sin(np.pi * x.clip(0.0, 1.0) ** 0.7), 0.0)


def min_jerk(x: np.ndarray) -> np.ndarray:
    x = x.clip(0.0, 1.0)
    return x**3 * (10 - 15 * x + 6 * x * x)


#: The eyeLook* shapes, each following one gaze angle one way (`_LOOK_AXIS`, `_LOOK_SIGN`): left, right, up, down.
LOOKS = ("eyeLookOutLeft", "eyeLookInRight", "eyeLookInLeft", "eyeLookOutRight",
         "eyeLookUpLeft", "eyeLookUpRight", "eyeLookDownLeft", "eyeLookDownRight")  # fmt: skip
_LOOK_AXIS = np.array([0, 0, 0, 0, 1, 1, 1, 1])
_LOOK_SIGN = np.array([1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0])


def gaze_shapes(gaze: np.ndarray) -> np.ndarray:
    """The weights [frames, 8] of the `LOOKS` shapes for gaze angles [frames, 2] (yaw, pitch)."""
    return (gaze[:, _LOOK_AXIS] / LOOK_RANGE * _LOOK_SIGN).clip(0.0, 1.0)


@dataclass(frozen=True)
class Layers:
    """A block's motion before face parameters scale it: blinks [n, 2] (left, right lid closure
    0–1), gaze [n, 2] (yaw, pitch), head [n, 3] (yaw, pitch, roll), breath [n] (how far breathed in,
    0–1, in pauses: `BREATH` gives the shapes), and the times of the blinks, saccades and nods that
    started in the block."""

    blinks: np.ndarray
    gaze: np.ndarray
    head: np.ndarray
    breath: np.ndarray
    blink_times: list[float] = field(default_factory=list)
    saccade_times: list[float] = field(default_factory=list)
    nod_times: list[float] = field(default_factory=list)


@dataclass
class Saccade:
    """A jump of the eyes from `prev` to `target` (yaw, pitch) starting at time `start`, `dur` long."""

    frame: int  # the first frame that shows it
    start: float
    dur: float
    prev: np.ndarray
    target: np.ndarray

    def at(self, t: np.ndarray) -> np.ndarray:
        """Where the eyes are [len(t), 2] at times t."""
        return self.prev + (self.target - self.prev) * min_jerk((t - self.start) / self.dur)[:, None]
