"""`Animation`: frames × named channels at a frame rate; the one type that crosses every boundary."""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import TalkfaceError, shown
from .rig import ARKIT_NAMES, INDEX

#: Highest output frame rate talkface writes or streams (the CLI, the server and batch alike).
MAX_FPS = 240.0


def checked_fps(fps: object, most: float = MAX_FPS, what: str = "fps") -> float:
    """`fps` as a frame rate: a real number above 0 and at most `most`; TalkfaceError otherwise, for text
    or None too. `MAX_FPS` to animate at (a frame rate of millions would fill memory); `math.inf` for any
    finite rate, as a file may have."""
    if type(fps) is float and 0.0 < fps <= most and fps < math.inf:  # (the common case: every frame block)
        return fps
    if isinstance(fps, numbers.Real) and not isinstance(fps, bool):
        with contextlib.suppress(OverflowError):  # (an integer past any float)
            if 0 < float(fps) <= most and math.isfinite(fps):
                return float(fps)
    bound = "" if most == math.inf else f" and at most {most:g}"
    raise TalkfaceError(f"{what} must be a number above 0{bound}, got {shown(fps)}")


@dataclass(frozen=True)
class Animation:
    """Per-frame channel values (float32, shape [frames, channels]) sampled at `fps`.

    Channels named as ARKit blendshapes are weights in [0, 1]; other channels (head and eye
    angles in radians) are free. Frame ``i`` is at time ``i / fps`` seconds.
    """

    weights: np.ndarray
    fps: float
    names: tuple[str, ...] = ARKIT_NAMES

    def __post_init__(self) -> None:
        try:  # (None, a number, or a name that cannot be hashed was a TypeError)
            names = tuple(self.names)
            named = not isinstance(self.names, str) and _named(names)
        except TypeError:
            named = False
        if not named:
            raise TalkfaceError(f"animation channel names must be unique strings, got {shown(self.names)}")
        try:
            if np.iscomplexobj(self.weights):  # (numpy drops the imaginary part with a warning)
                raise TalkfaceError("animation weights must be real numbers, not complex")
            w = np.asarray(self.weights, dtype=np.float32)
        except (TypeError, ValueError):  # text, rows of unequal length
            raise TalkfaceError(f"animation weights must be numbers, [frames, {len(names)}]") from None
        if w.ndim != 2 or w.shape[1] != len(names):
            raise TalkfaceError(f"animation needs shape [frames, {len(names)}], got {list(np.shape(self.weights))}")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "fps", checked_fps(self.fps, math.inf))

    @classmethod
    def zeros(cls, frames: int, fps: float, names: Sequence[str] = ARKIT_NAMES) -> Animation:
        """A neutral (all-zero) animation."""
        return cls(np.zeros((frames, len(names)), np.float32), fps, tuple(names))

    @property
    def num_frames(self) -> int:
        return self.weights.shape[0]

    @property
    def duration(self) -> float:
        """Seconds covered: frames / fps."""
        return self.num_frames / self.fps

    @property
    def times(self) -> np.ndarray:
        """Time of each frame in seconds."""
        return np.arange(self.num_frames) / self.fps

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise TalkfaceError(f"unknown channel {name!r}") from None

    def __getitem__(self, name: str) -> np.ndarray:
        """The curve of one channel."""
        return self.weights[:, self.index(name)]

    def at(self, t: float) -> np.ndarray:
        """Channel values at time `t`, linearly interpolated between frames."""
        return self.resample_to([t])[0]

    def resample_to(self, times: np.ndarray) -> np.ndarray:
        """Channel values at arbitrary times (linear interpolation, clamped at the ends)."""
        if self.num_frames == 0:
            raise TalkfaceError("cannot sample an empty animation")
        try:
            t = np.asarray(times, dtype=np.float64)
        except (TypeError, ValueError):
            t = None
        if t is None or t.ndim != 1 or np.isnan(t).any():  # (NaN became a frame index of -2**63: IndexError)
            raise TalkfaceError(f"times must be a 1-D array of seconds, not NaN, got {shown(times)}")
        pos = np.clip(t * self.fps, 0, self.num_frames - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, self.num_frames - 1)
        frac = (pos - lo)[:, None].astype(np.float32)
        return self.weights[lo] * (1 - frac) + self.weights[hi] * frac

    def resample(self, fps: float) -> Animation:
        """The same motion at another frame rate, covering the same duration."""
        fps = checked_fps(fps, math.inf)
        if fps == self.fps:
            return self
        frames = max(1, round(self.duration * fps)) if self.num_frames else 0
        if frames == 0:
            return Animation.zeros(0, fps, self.names)
        return Animation(self.resample_to(np.arange(frames) / fps), fps, self.names)

    def slice(self, start: float, end: float | None = None) -> Animation:
        """Frames from `start` up to (not including) `end`, in seconds."""
        a = self._frame(start, "start")
        b = self.num_frames if end is None else max(a, self._frame(end, "end"))
        return Animation(self.weights[a:b], self.fps, self.names)

    def _frame(self, t: float, what: str) -> int:
        """The frame at `t` seconds, within the animation (infinity is its end); TalkfaceError for NaN or
        a non-number (round() raised ValueError, OverflowError or TypeError)."""
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or math.isnan(t):
            raise TalkfaceError(f"{what} must be a time in seconds, got {shown(t)}")
        return round(min(max(t * self.fps, 0.0), self.num_frames))

    @staticmethod
    def join(parts: Sequence[Animation]) -> Animation:
        """Concatenate animations of the same fps and channels in time."""
        if not parts:
            raise TalkfaceError("nothing to join")
        first = parts[0]
        for p in parts[1:]:
            if p.fps != first.fps or p.names != first.names:
                raise TalkfaceError("can only join animations with the same fps and channels")
        return Animation(np.concatenate([p.weights for p in parts]), first.fps, first.names)

    def with_channels(self, names: Sequence[str]) -> Animation:
        """The animation with exactly `names` as channels: missing ones are zero, extra ones dropped."""
        out = np.zeros((self.num_frames, len(names)), np.float32)
        for j, n in enumerate(names):
            if n in self.names:
                out[:, j] = self[n]
        return Animation(out, self.fps, tuple(names))

    def validate(self) -> Animation:
        """Raise `TalkfaceError` unless all values are finite and blendshape weights lie in [0, 1]."""
        if not np.isfinite(self.weights).all():
            raise TalkfaceError("animation has non-finite values")
        cols = [i for i, n in enumerate(self.names) if n in INDEX]
        w = self.weights[:, cols]
        if w.size and (w.min() < 0 or w.max() > 1):
            raise TalkfaceError("blendshape weights must lie in [0, 1]")
        return self


@functools.lru_cache(maxsize=64)
def _named(names: tuple[str, ...]) -> bool:
    """Whether every channel name is a string and none repeats (cached: a stream makes many animations
    with the same names)."""
    return all(isinstance(n, str) for n in names) and len(set(names)) == len(names)
