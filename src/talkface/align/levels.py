"""The sound's level frame by frame: whether there is speech, the pauses where long audio is cut into
pieces, and each piece as the 16-bit PCM the decoder takes."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from .decoder import _HOP, FRAME_RATE

_MAX_PIECE = 30 * FRAME_RATE  # frames: longest piece of audio decoded at once, when a pause allows
_MIN_PIECE = 10 * FRAME_RATE  # frames: shortest piece cut off a longer stretch
_MIN_PAUSE = 20  # frames of quiet that make a pause where audio may be cut
_LOOKAHEAD = 2 * FRAME_RATE  # frames: at least this much of the next piece is aligned with each piece
#: Dither added before decoding, relative to the loud speech level (-48 dB): digital silence, as TTS
#: engines write it, derails pocketsphinx's search; real recordings have a noise floor above this.
_DITHER = 4e-3


def has_speech(audio: np.ndarray) -> bool:
    """Whether 16 kHz audio holds anything like speech: 10 ms levels that rise at least 15 dB over
    its quiet parts and above -60 dBFS. Digital silence and steady noise do not."""
    levels = _frame_levels(audio)
    if not len(levels):
        return False
    loud, quiet = np.percentile(levels, [99, 5])
    return bool(loud >= -60 and loud - quiet >= 15)


def _frame_levels(audio: np.ndarray) -> np.ndarray:
    """Level (dB) of each 10 ms frame, computed in blocks so that no copy of long audio is made."""
    n = len(audio) // _HOP
    levels = np.empty(n, np.float32)
    block = 6000  # frames
    for i in range(0, n, block):
        frames = _float(audio[i * _HOP : min(i + block, n) * _HOP]).reshape(-1, _HOP)
        levels[i : i + len(frames)] = 10 * np.log10(np.einsum("ij,ij->i", frames, frames) / _HOP + 1e-10)
    if len(audio) > n * _HOP:  # the last, partial frame
        tail = _float(audio[n * _HOP :])
        levels = np.append(levels, np.float32(10 * np.log10(np.mean(tail * tail) + 1e-10)))
    return levels


def _loud_level(levels: np.ndarray) -> float:
    """RMS amplitude of loud speech: the 99th percentile of the frame levels."""
    return float(10 ** (np.percentile(levels, 99) / 20)) if len(levels) else 0.0


def _quiet_threshold(levels: np.ndarray) -> float:
    """Frames below this level (dB) are pauses: 40 dB under loud speech, or just above the noise floor."""
    if not len(levels):
        return 0.0
    return max(float(np.percentile(levels, 5)) + 6, float(np.percentile(levels, 99)) - 40)


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, past-last) frame of each run of True in `mask`."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))).tolist()
    return list(zip(edges[::2], edges[1::2], strict=True))


def _runs(mask: np.ndarray, shortest: int) -> np.ndarray:
    """`mask` with its runs of True shorter than `shortest` frames cleared."""
    out = np.zeros_like(mask)
    for a, b in _spans(mask):
        out[a:b] = b - a >= shortest
    return out


def _pauses(quiet: np.ndarray) -> list[tuple[int, int]]:
    """(middle frame, length) of each run of at least `_MIN_PAUSE` quiet frames."""
    return [((a + b) // 2, b - a) for a, b in _spans(quiet) if b - a >= _MIN_PAUSE]


def _cuts(levels: np.ndarray, pauses: Sequence[tuple[int, int]]) -> list[int]:
    """Frames where long audio is cut into pieces of at most `_MAX_PIECE` frames: first 0, last the end.

    Each cut is at the middle of the longest pause 10–30 s after the one before; with no pause there,
    at the quietest 50 ms of the piece's second half.
    """
    n = len(levels)
    cuts = [0]
    middles = [m for m, _ in pauses]
    while n - cuts[-1] > _MAX_PIECE:
        s = cuts[-1]
        lo, hi = bisect.bisect_left(middles, s + _MIN_PIECE), bisect.bisect_right(middles, s + _MAX_PIECE)
        if lo < hi:
            cuts.append(max(pauses[lo:hi], key=lambda p: (p[1], p[0]))[0])
        else:
            window = levels[s + _MAX_PIECE // 2 : s + _MAX_PIECE]
            smooth = np.convolve(window, np.ones(5) / 5, mode="same")
            cuts.append(s + _MAX_PIECE // 2 + int(np.argmin(smooth)))
    return [*cuts, n]


def _lookahead(cut: int, cuts: Sequence[int], pauses: Sequence[tuple[int, int]]) -> int:
    """Where the audio aligned with the piece ending at `cut` ends: the first pause at least
    `_LOOKAHEAD` frames into the next piece, or the next piece's end."""
    following = cuts[bisect.bisect_right(cuts, cut)]
    middles = [m for m, _ in pauses]
    i = bisect.bisect_left(middles, cut + _LOOKAHEAD)
    return middles[i] if i < len(middles) and middles[i] < following else following


def _float(samples: np.ndarray) -> np.ndarray:
    """Float32 samples in [-1, 1] from float or 16-bit audio (a part of long audio comes as 16-bit)."""
    return samples * np.float32(1 / 32767) if samples.dtype == np.int16 else samples.astype(np.float32)


def _pcm(audio: np.ndarray, start: int, end: int, dither: float) -> bytes:
    """16-bit PCM of frames `start`..`end`, with a little fixed noise (see `_DITHER`)."""
    piece = _float(audio[start * _HOP : end * _HOP])
    piece += dither * np.random.default_rng(start).standard_normal(len(piece), dtype=np.float32)
    return (np.clip(piece, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
