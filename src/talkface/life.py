"""Liveliness: blinks, eye gaze, head motion and breathing, so that a talking face looks alive.

Everything is drawn from a seeded random generator (each part from its own stream, so switching
one off leaves the others unchanged) and timed by the speech's prosody:

- Blinks come every few seconds (gamma-distributed intervals, 10 a minute by default) and
  more often at phrase ends and with large gaze shifts, which brings speech with pauses to
  about 20 a minute, as in conversation; each lasts 120–400 ms,
  closes fast and opens slowly, and the eyes differ a little in timing and depth. One in
  fourteen is a double blink.
- Gaze rests in fixations and jumps between them in saccades whose duration follows the main
  sequence (about 21 ms + 2.2 ms per degree). A speaker looks away at the start of a phrase and
  back at its end; small fixational saccades keep the eyes from freezing.
- The head wanders slowly, moves more while speaking, follows the voice's pitch a little, nods
  on stressed syllables and turns partly with large gaze shifts.
- Before a phrase that follows a pause the speaker breathes in: the lips part slightly, the
  nostrils flare and the chin lifts.

Angles are radians. Yaw > 0 turns towards the character's left, pitch > 0 looks up, roll > 0
tilts the top of the head towards the character's left shoulder.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from .errors import TalkfaceError
from .prosody import Prosody
from .rig import ARKIT_NAMES, INDEX

_DEG = math.pi / 180
#: Gaze angle (rad) at which an eyeLook* shape reaches 1.
LOOK_RANGE = 30 * _DEG


@dataclass(frozen=True)
class LifeConfig:
    """Which parts of liveliness are on, how often the eyes blink and how much the head moves.

    blink_rate: mean blinks per minute before phrase-end and gaze-shift blinks (2–60, default 10).
    head_strength: scales all head rotation (0–3, default 1).
    """

    blink: bool = True
    gaze: bool = True
    head: bool = True
    breathing: bool = True
    blink_rate: float = 10.0
    head_strength: float = 1.0

    def __post_init__(self) -> None:
        if not 2.0 <= self.blink_rate <= 60.0:
            raise TalkfaceError(f"blink rate {self.blink_rate:g} per minute is out of range [2, 60]")
        if not 0.0 <= self.head_strength <= 3.0:
            raise TalkfaceError(f"head strength {self.head_strength:g} is out of range [0, 3]")

    @classmethod
    def off(cls) -> LifeConfig:
        """No blinks, gaze, head motion or breathing: the speech alone."""
        return cls(blink=False, gaze=False, head=False, breathing=False)


@dataclass(frozen=True)
class Life:
    """The motion layers for one clip, before face parameters scale them.

    blinks [frames, 2] (left, right eyelid closure 0–1), gaze [frames, 2] (yaw, pitch), head
    [frames, 3] (yaw, pitch, roll), breath [frames, 52] (ARKit weights added in pauses), and the
    times of the blinks and saccades that were drawn.
    """

    blinks: np.ndarray
    gaze: np.ndarray
    head: np.ndarray
    breath: np.ndarray
    blink_times: tuple[float, ...]
    saccade_times: tuple[float, ...]


def generate(prosody: Prosody, config: LifeConfig, seed: int = 0) -> Life:
    """Blinks, gaze, head motion and breathing for a clip with this prosody; the same seed gives the same motion."""
    n = prosody.num_frames
    streams = [np.random.default_rng([seed, k]) for k in range(4)]
    gaze, saccades, big_shifts = _gaze(prosody, streams[1]) if config.gaze else (np.zeros((n, 2)), [], [])
    blinks, blink_times = (
        _blinks(prosody, config.blink_rate, big_shifts, streams[0]) if config.blink else (np.zeros((n, 2)), [])
    )
    breath, inhale = _breathing(prosody) if config.breathing else (np.zeros((n, len(ARKIT_NAMES))), np.zeros(n))
    head = np.zeros((n, 3))
    if config.head:
        head = _head(prosody, gaze, streams[2]) * config.head_strength
    if config.breathing and config.head:
        head[:, 1] += 1.0 * _DEG * inhale * config.head_strength
    f32 = np.float32
    return Life(
        blinks.astype(f32), gaze.astype(f32), head.astype(f32), breath.astype(f32), tuple(blink_times), tuple(saccades)
    )


def _ease(x: np.ndarray) -> np.ndarray:
    """Smoothstep on [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _blinks(
    prosody: Prosody, rate: float, big_shifts: list[float], rng: np.random.Generator
) -> tuple[np.ndarray, list[float]]:
    """Eyelid closure per frame for both eyes, and the blink times."""
    n, fps = prosody.num_frames, prosody.fps
    end = n / fps
    mean, shape, refractory = 60.0 / rate, 3.0, 0.6
    # phrase ends invite a blink (p 0.45), so do large gaze shifts (p 0.3)
    triggers = sorted([(a + rng.uniform(0.05, 0.25), 0.45) for a, _ in prosody.pauses(0.25)] + [
        (t, 0.3) for t in big_shifts
    ])  # fmt: skip
    times: list[float] = []
    last, nxt = -refractory, rng.uniform(0.3, 2.0)  # the first blink comes early, even in a short clip
    while True:
        hit = next((t for t, p in triggers if last + refractory < t < nxt and rng.random() < p), None)
        t = nxt if hit is None else hit
        if t >= end:
            break
        times.append(t)
        if rng.random() < 0.07:  # a double blink
            times.append(t + rng.uniform(0.28, 0.45))
        last = times[-1]
        nxt = last + max(refractory, rng.gamma(shape, mean / shape))
    times = [t for t in times if t < end]
    out = np.zeros((n, 2))
    frame_t = np.arange(n) / fps
    for t in times:
        dur = rng.uniform(0.3, 0.4) if rng.random() < 0.15 else rng.uniform(0.12, 0.3)
        depth = rng.uniform(0.85, 1.0)
        for eye, (lag, less) in enumerate([(0.0, 0.0), (rng.uniform(-0.015, 0.015), rng.uniform(0, 0.08))]):
            start = t + lag
            close, hold = 0.3 * dur, 0.1 * dur
            u = frame_t - start
            lid = np.where(u < close, _ease(u / close), 1 - _ease((u - close - hold) / (dur - close - hold)))
            lid = np.where(u < 0, 0.0, lid) * (depth - less)
            mid = min(n - 1, max(0, round((start + close + 0.5 * hold) * fps)))
            lid[mid] = depth - less  # the closed frame is reached whatever the frame rate
            out[:, eye] = np.maximum(out[:, eye], lid)
    return out, times


def _min_jerk(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x**3 * (10 - 15 * x + 6 * x * x)


def _gaze(prosody: Prosody, rng: np.random.Generator) -> tuple[np.ndarray, list[float], list[float]]:
    """Gaze (yaw, pitch) per frame, saccade times, and times of large (>10°) shifts."""
    n, fps = prosody.num_frames, prosody.fps
    end = n / fps
    # phrase starts draw the eyes away, phrase ends bring them back
    onsets = {round(b, 3) for _, b in prosody.pauses(0.4) if b < end - 0.2}
    offsets = {round(a, 3) for a, _ in prosody.pauses(0.4) if a > 0.2}
    events = sorted([(t, "away") for t in onsets] + [(t, "back") for t in offsets])

    def listener() -> tuple[float, float]:
        return rng.normal(0, 1.5) * _DEG, rng.normal(0, 1.0) * _DEG

    def away() -> tuple[float, float]:
        return rng.choice([-1, 1]) * rng.uniform(6, 15) * _DEG, rng.uniform(-10, 4) * _DEG

    fixations: list[tuple[float, tuple[float, float]]] = [(0.0, listener())]
    looking_away, t = False, 0.0
    while t < end:
        speaking = prosody.activity[min(n - 1, int(t * fps))] > 0.5
        if looking_away:
            hold = rng.uniform(0.5, 1.5) if speaking else rng.uniform(0.4, 1.2)
        else:
            hold = rng.uniform(1.0, 3.0) if speaking else rng.uniform(2.0, 4.0)
        nxt = t + hold
        due = [(et, kind) for et, kind in events if t + 0.3 < et < nxt]
        if due:
            nxt, kind = due[0]
            looking_away = kind == "away" and rng.random() < 0.7
        else:
            looking_away = not looking_away and rng.random() < (0.5 if speaking else 0.3)
        # between the big shifts the eyes make small fixational saccades
        for micro in np.arange(t + rng.uniform(0.4, 1.0), nxt - 0.2, rng.uniform(0.5, 1.0)):
            y, p = fixations[-1][1]
            fixations.append((float(micro), (y + rng.normal(0, 0.6) * _DEG, p + rng.normal(0, 0.4) * _DEG)))
        fixations.append((nxt, away() if looking_away else listener()))
        t = nxt
    out = np.zeros((n, 2))
    frame_t = np.arange(n) / fps
    out[:] = fixations[0][1]
    saccades, big = [], []
    for (_, prev), (start, target) in itertools.pairwise(fixations):
        if start >= end:
            break
        amp = math.hypot(target[0] - prev[0], target[1] - prev[1]) / _DEG
        dur = 0.021 + 0.0022 * amp
        k = int(np.searchsorted(frame_t, start))
        ramp = _min_jerk((frame_t[k:] - start) / dur)[:, None]
        out[k:] = np.asarray(prev) + (np.asarray(target) - np.asarray(prev)) * ramp
        saccades.append(start)
        if amp > 10:
            big.append(start)
    return out, saccades, big


def gaze_shapes(gaze: np.ndarray) -> dict[str, np.ndarray]:
    """The eyeLook* weights (and the lids following the eyes) for gaze angles [frames, 2]."""
    yaw, pitch = gaze[:, 0] / LOOK_RANGE, gaze[:, 1] / LOOK_RANGE
    left, right, up, down = (np.clip(v, 0.0, 1.0) for v in (yaw, -yaw, pitch, -pitch))
    return {
        "eyeLookOutLeft": left, "eyeLookInRight": left, "eyeLookInLeft": right, "eyeLookOutRight": right,
        "eyeLookUpLeft": up, "eyeLookUpRight": up, "eyeLookDownLeft": down, "eyeLookDownRight": down,
    }  # fmt: skip


def _wander(t: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
    """Slow random motion: three sinusoids between 0.05 and 0.4 Hz, standard deviation ~`std`."""
    freqs = rng.uniform(0.05, 0.4, 3)
    amps = rng.uniform(0.5, 1.0, 3)
    amps *= std * math.sqrt(2) / np.sqrt((amps**2).sum())
    phases = rng.uniform(0, 2 * math.pi, 3)
    return (amps[None, :] * np.sin(2 * math.pi * freqs[None, :] * t[:, None] + phases[None, :])).sum(axis=1)


def _lowpass(x: np.ndarray, fps: float, tau: float) -> np.ndarray:
    """Forward-backward first-order low-pass (zero lag) with time constant `tau` (s)."""
    a = 1.0 - math.exp(-1.0 / (fps * tau))
    out = x.astype(np.float64).copy()
    for rng_ in (range(1, len(out)), range(len(out) - 2, -1, -1)):
        step = 1 if rng_.step > 0 else -1
        for i in rng_:
            out[i] = out[i - step] + a * (out[i] - out[i - step])
    return out


def _head(prosody: Prosody, gaze: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Head yaw, pitch, roll per frame (rad)."""
    n, fps = prosody.num_frames, prosody.fps
    t = np.arange(n) / fps
    talking = 0.6 + 0.8 * _lowpass(prosody.activity, fps, 0.4)
    head = np.stack([_wander(t, rng, s * _DEG) for s in (1.5, 1.0, 0.8)], axis=1) * talking[:, None]
    # the chin rises a little with the voice's pitch
    pitch = np.nan_to_num(prosody.pitch, nan=0.0) * prosody.activity
    head[:, 1] += np.clip(0.25 * _DEG * _lowpass(pitch, fps, 0.25), -3 * _DEG, 3 * _DEG)
    # a nod (down and back) on each clearly stressed syllable, at least 0.4 s apart
    last = -1.0
    for at, strength in prosody.accents:
        if strength < 0.6 or at - last < 0.4:
            continue
        last = at
        amp = (1.5 + 3.0 * (strength - 0.6) / 0.4) * _DEG * rng.uniform(0.7, 1.2)
        u = t - at
        bump = np.where(u < 0.05, np.exp(-0.5 * (u - 0.05) ** 2 / 0.07**2), np.exp(-0.5 * (u - 0.05) ** 2 / 0.15**2))
        head[:, 1] -= amp * bump
        head[:, 2] += 0.3 * amp * bump * rng.choice([-1, 1])
    # the head follows large gaze shifts part of the way, more slowly
    head[:, 0] += 0.25 * _lowpass(gaze[:, 0], fps, 0.3)
    head[:, 1] += 0.15 * _lowpass(gaze[:, 1], fps, 0.3)
    return head


def _breathing(prosody: Prosody) -> tuple[np.ndarray, np.ndarray]:
    """ARKit weights added for breaths in (before the next phrase), and the inhale curve 0–1."""
    n, fps = prosody.num_frames, prosody.fps
    t = np.arange(n) / fps
    inhale = np.zeros(n)
    for a, b in prosody.pauses(0.35):
        if b >= n / fps - 0.05:  # no phrase follows
            continue
        start = max(a + 0.05, b - 0.55)
        x = (t - start) / (b - start)
        inhale = np.maximum(inhale, np.where((x > 0) & (x < 1), np.sin(np.pi * np.clip(x, 0, 1) ** 0.7), 0.0))
    out = np.zeros((n, len(ARKIT_NAMES)))
    for name, amp in (("jawOpen", 0.05), ("mouthLowerDownLeft", 0.03), ("mouthLowerDownRight", 0.03),
                      ("noseSneerLeft", 0.08), ("noseSneerRight", 0.08)):  # fmt: skip
        out[:, INDEX[name]] = amp * inhale
    return out, inhale
