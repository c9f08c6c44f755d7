"""Low-pass filters along time, in numpy without a loop over frames, that carry their state from one
block of frames to the next, so a stream cut anywhere gives the frames of one long block."""

from __future__ import annotations

import math

import numpy as np


def coefficient(tau: float, fps: float) -> float:
    """The share of the way a one-pole low-pass with time constant `tau` (s) moves in one frame."""
    return 1.0 - math.exp(-1.0 / (fps * tau)) if tau > 0 else 1.0


def lowpass(x: np.ndarray, a: float, start: np.ndarray | float | None = None, backward: bool = False) -> np.ndarray:
    """y[i] = y[i-1] + a (x[i] - y[i-1]) along axis 0, from y[-1] = `start` (a float or float64 row;
    None: the first input), run from the last frame to the first when `backward`.

    Computed as a prefix scan: log2 of the filter's memory passes of whole-array operations."""
    x = np.asarray(x, np.float64)
    if backward:
        x = x[::-1]
    if not len(x):
        return x.copy()
    r = 1.0 - a
    y = a * x
    y[0] += r * (x[0] if start is None else start)
    shift, decay = 1, r
    while shift < len(y) and decay > 1e-18:  # y[i] sums the inputs of the last 2·shift frames
        y[shift:] = y[shift:] + decay * y[:-shift]
        shift, decay = 2 * shift, decay * decay
    return y[::-1] if backward else y


class Smoother:
    """A critically damped low-pass: two one-pole stages with time constant `tau` (s) each, lagging
    by about 2·`tau` and spreading a frame over about √2·`tau` (standard deviation). With
    `zero_lag` (a whole clip in one block) the same filter runs forwards and then backwards over
    the clip: no lag, and a little more smoothing (a spread of about 2·`tau`)."""

    def __init__(self, tau: float, fps: float, zero_lag: bool = False) -> None:
        self.fps, self.zero_lag = fps, zero_lag
        self.retime(tau)
        self.state: list[np.ndarray] | None = None  # each stage's last output

    def retime(self, tau: float) -> None:
        """A new time constant from the next frame on."""
        self.a = coefficient(tau, self.fps)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The next frames [n, ...] smoothed (the first frame ever starts the filter at rest)."""
        if not len(x):
            return np.asarray(x, np.float64)
        first, second = self.state or (None, None)
        one = lowpass(x, self.a, first)
        two = lowpass(one, self.a, second)
        self.state = [one[-1], two[-1]]
        if self.zero_lag:
            two = lowpass(lowpass(two, self.a, backward=True), self.a, backward=True)
        return two


def window_max(x: np.ndarray, past: np.ndarray, behind: int, ahead: int) -> np.ndarray:
    """Per frame, the most of `x` over the `behind` frames before it (`past` holds those before this
    block, oldest first) to the `ahead` frames after it (within x)."""
    if not len(x):
        return np.zeros(0)
    before = np.concatenate([np.full(behind, -np.inf), past])[len(past) :]  # the last `behind`
    padded = np.concatenate([before, x, np.full(ahead, -np.inf)])
    out = padded[: len(x)].copy()
    for shift in range(1, behind + ahead + 1):  # a loop over the window, not the frames
        np.maximum(out, padded[shift : shift + len(x)], out=out)
    return out
