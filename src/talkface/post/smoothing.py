"""Filters along time, in numpy without a loop over frames, that carry their state from one block of
frames to the next, so a stream cut anywhere gives the frames of one long block.

Many streams' blocks can go through at once (`Blocks`: each stream's new frames one after another
along axis 0), so a server pays one numpy call per step for all of its streams, not one per stream."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Blocks:
    """Several streams' blocks of frames laid one after another along axis 0: block i is rows
    firsts[i] .. firsts[i] + sizes[i] - 1 (every block has a frame)."""

    sizes: np.ndarray

    @classmethod
    def of(cls, sizes: Sequence[int]) -> Blocks:
        return cls(np.asarray(sizes, np.int64))

    @cached_property
    def firsts(self) -> np.ndarray:
        return np.cumsum(self.sizes) - self.sizes

    @cached_property
    def lasts(self) -> np.ndarray:
        return np.cumsum(self.sizes) - 1

    @property
    def count(self) -> int:
        """The number of blocks."""
        return len(self.sizes)

    @cached_property
    def total(self) -> int:
        """The number of rows."""
        return int(self.sizes.sum())

    @cached_property
    def local(self) -> np.ndarray:
        """Each row's place in its block."""
        return np.arange(self.total) - self.rows(self.firsts)

    def rows(self, values: np.ndarray | Sequence) -> np.ndarray:
        """Per-block values [blocks, ...] repeated for each row of the block."""
        return np.repeat(np.asarray(values), self.sizes, axis=0)

    def split(self, x: np.ndarray) -> list[np.ndarray]:
        """Rows [total, ...] cut back into the blocks."""
        edges = np.append(self.firsts, self.total).tolist()  # (slices: np.split costs a stream a few calls more)
        return [x[a:b] for a, b in itertools.pairwise(edges)]

    def subset(self, which: Sequence[int]) -> tuple[Blocks, np.ndarray | slice]:
        """Blocks `which` (in order) as blocks of their own, and their rows here (a slice if all)."""
        if len(which) == self.count:
            return self, slice(None)
        sub = Blocks(self.sizes[list(which)])
        return sub, sub.local + sub.rows(self.firsts[list(which)])

    def cumsum(self, x: np.ndarray) -> np.ndarray:
        """The running sum of 1-D `x` within each block (the same sums as `np.cumsum` of each)."""
        return self.accumulate(x, np.add)

    def accumulate(self, x: np.ndarray, ufunc: np.ufunc) -> np.ndarray:
        """`ufunc.accumulate` of 1-D `x` within each block (np.add: running sums; np.maximum: running maxima)."""
        if self.count == 1:
            return ufunc.accumulate(x)
        longest = int(self.sizes.max())
        if longest > 8:  # a few long blocks: block by block
            return np.concatenate([ufunc.accumulate(part) for part in self.split(x)])
        out = x.copy()
        for j in range(1, longest):  # many short blocks (a server's): a pass per frame of the longest
            at = self.firsts[self.sizes > j] + j
            out[at] = ufunc(out[at - 1], out[at])
        return out


def coefficient(tau: float, fps: float) -> float:
    """The share of the way a one-pole low-pass with time constant `tau` (s) moves in one frame."""
    return 1.0 - math.exp(-1.0 / (fps * tau)) if tau > 0 else 1.0


def lowpass(x: np.ndarray, a: float | np.ndarray, start: np.ndarray | float | None = None, backward: bool = False,
            blocks: Blocks | None = None) -> np.ndarray:  # fmt: skip
    """y[i] = y[i-1] + a (x[i] - y[i-1]) along axis 0, from y[-1] = `start` (a float or float64 row;
    None: the first input), run from the last frame to the first when `backward`.

    With `blocks`, each block is filtered on its own: `a` is then per row and `start` per block
    ([blocks, ...]; its first input where a block has none). Computed as a prefix scan: log2 of the
    filter's memory passes of whole-array operations."""
    x = np.asarray(x, np.float64)
    if backward:
        x = x[::-1]
    if not len(x):
        return x.copy()
    firsts = [0] if blocks is None else blocks.firsts
    across = (slice(None),) + (None,) * (x.ndim - 1)  # a per-row factor over the other axes
    a = np.asarray(a, np.float64)
    gain = a[across] if a.ndim else a
    y = gain * x
    decay = 1.0 - (a if a.ndim else np.full(len(x), a))  # a row's weight of the row before
    y[firsts] += decay[firsts][across] * (x[firsts] if start is None else start)
    decay[firsts] = 0.0  # (a block starts afresh)
    shift = 1
    while shift < len(y) and decay.max() > 1e-18:  # y[i] sums the inputs of the last 2·shift frames
        y[shift:] = y[shift:] + decay[shift:][across] * y[:-shift]
        decay[shift:] = decay[shift:] * decay[:-shift]
        shift *= 2
    return y[::-1] if backward else y


class Smoother:
    """A critically damped low-pass: two one-pole stages with time constant `tau` (s) each, lagging
    by about 2·`tau` and spreading a frame over about √2·`tau` (standard deviation). With
    `zero_lag` (a whole clip in one block) the same filter runs forwards and then backwards over
    the clip: no lag, and a little more smoothing (a spread of about 2·`tau`)."""

    def __init__(self, tau: float, fps: float, zero_lag: bool = False) -> None:
        self.fps, self.zero_lag = fps, zero_lag
        self.tau = math.nan
        self.retime(tau)
        self.state: list[np.ndarray] | None = None  # each stage's last output

    def retime(self, tau: float) -> None:
        """A new time constant from the next frame on."""
        if tau != self.tau:
            self.tau, self.a = tau, coefficient(tau, self.fps)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The next frames [n, ...] smoothed (the first frame ever starts the filter at rest)."""
        if not len(x):
            return np.asarray(x, np.float64)
        return smooth([self], x, Blocks.of([len(x)]))


def smooth(smoothers: Sequence[Smoother], x: np.ndarray, blocks: Blocks) -> np.ndarray:
    """Each block of `x` [rows, ...] through its own `Smoother` (as `Smoother.__call__` on each)."""
    a = blocks.rows([s.a for s in smoothers]) if blocks.count > 1 else smoothers[0].a
    x = np.asarray(x, np.float64)
    one = lowpass(x, a, _starts(smoothers, 0, x, blocks), blocks=blocks)
    two = lowpass(one, a, _starts(smoothers, 1, one, blocks), blocks=blocks)
    ends = list(zip(one[blocks.lasts], two[blocks.lasts], strict=True))
    for s, end in zip(smoothers, ends, strict=True):
        s.state = list(end)
    if smoothers[0].zero_lag:  # (a whole clip: one block)
        two = lowpass(lowpass(two, a, backward=True), a, backward=True)
    return two


def _starts(smoothers: Sequence[Smoother], stage: int, x: np.ndarray, blocks: Blocks) -> np.ndarray:
    """Where each block's filter `stage` starts: its last output, or a fresh smoother's first input."""
    return np.array([x[f] if s.state is None else s.state[stage]
                     for s, f in zip(smoothers, blocks.firsts.tolist(), strict=True)])  # fmt: skip


def window_max(x: np.ndarray, past: np.ndarray, behind: int, ahead: int,
               blocks: Blocks | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per frame, the most of `x` over the `behind` frames before it (`past` [blocks, behind] holds
    each block's frames before it, oldest first; fewer, or 1-D for one block, if there were fewer)
    to the `ahead` frames after it (within its block); and the new `past` [blocks, behind]."""
    count = 1 if blocks is None else blocks.count
    past = np.asarray(past, np.float64).reshape(count, -1)
    if past.shape[1] < behind:  # (-inf before the start)
        past = np.concatenate([np.full((count, behind - past.shape[1]), -np.inf), past], axis=1)
    if not len(x):
        return np.zeros(0), past[:, past.shape[1] - behind :]
    blocks = blocks or Blocks.of([len(x)])
    span = behind + ahead
    base = np.arange(blocks.count) * span + blocks.firsts  # where each block's padded run starts
    padded = np.full(blocks.total + blocks.count * span, -np.inf)
    padded[(base[:, None] + np.arange(behind)).ravel()] = past[:, past.shape[1] - behind :].ravel()
    at = np.arange(blocks.total) + blocks.rows(base - blocks.firsts)  # each row's first frame in its window
    padded[at + behind] = x
    out = np.lib.stride_tricks.sliding_window_view(padded, span + 1)[at].max(axis=1)
    return out, padded[(base + blocks.sizes)[:, None] + np.arange(behind)]
