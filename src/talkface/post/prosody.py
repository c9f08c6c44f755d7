"""Prosody: when someone speaks, how loud, at what pitch, and where the stressed syllables fall, on
a 100 Hz grid; and the cues that post-processing reads at each output frame.

A stream (`Listener`) measures the grid causally, seeing 80 ms ahead: loudness against a slowly
decaying peak, pitch in semitones around the running mean of the voice so far, stressed syllables
as loudness peaks scored against the 50 before them. A whole clip (`clip_prosody.analyse`) runs the
same measures over all of its audio in one go, and may know more.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE

GRID = 100.0  # prosody frames per second
AHEAD = 6  # grid frames of look-ahead: a 40 ms window centred 60 ms ahead ends 80 ms ahead
_HOP = int(SAMPLE_RATE / GRID)
_HALF = 2 * _HOP  # half a 40 ms window
_F0_MIN, _F0_MAX = 60.0, 400.0
_SPEECH_DB = 35.0  # within this many dB of the loud reference is speech
_PEAK_DECAY = 0.01  # dB per grid frame (1 dB/s) of the loudness reference
_FLOOR_DB = -60.0  # the reference never falls below this (dBFS)
#: The face rests where no grid frame from `REST_BEHIND` before to `AHEAD` after is voice: within
#: `_VOICE_DB` of a loudness reference that decays `_VOICE_DECAY` dB a grid frame (6 dB/s, so quiet
#: words soon after a shout still count), and `_OVER_FLOOR_DB` over the background: the quietest
#: grid frame of the last `_FLOOR_SPAN` (3 s), so that music or noise under the voice, loud as it may
#: be, does not count as voice in the pauses.
_VOICE_DB, _VOICE_DECAY, REST_BEHIND = 16.0, 0.06, 8
_OVER_FLOOR_DB, _FLOOR_SPAN = 10.0, 300
_SYLLABLE_GAP = 12  # grid frames (120 ms) between loudness peaks taken for syllables
_HISTORY = 50  # a stream scores a syllable against this many before it
#: What makes a syllable stressed, against the others: loudness (dB), pitch (semitones) and length
#: (s) as z-scores with these weights (a cue that is unknown or does not vary gives its weight to
#: the rest), each spread counted as at least `_SPREAD`.
_STRESS = np.array([0.4, 0.35, 0.25])
_SPREAD = np.array([1.0, 0.5, 0.02])
_WINDOW = np.hanning(2 * _HALF)
_BATCH = 64  # windows measured at a time: bounded memory, temporaries small enough to reuse, few calls
_LAGS = slice(int(SAMPLE_RATE / _F0_MAX), int(SAMPLE_RATE / _F0_MIN))  # the autocorrelation lags of f0s in range
_LAG_RANGE = np.arange(_LAGS.start, _LAGS.stop)
_QUIET = 10 ** (-99.0 / 20)  # the loudness of a grid frame not measured (or forgotten)
Samples = Callable[[int, int], np.ndarray]  # (start, stop) absolute 16 kHz sample indices → audio


def _centred(windows: np.ndarray) -> np.ndarray:
    frames = windows.astype(np.float64)
    return frames - frames.mean(axis=1, keepdims=True)


def window_levels(windows: np.ndarray) -> np.ndarray:
    """Level (dBFS) of 40 ms windows [n, 640]."""
    out = np.empty(len(windows))
    for i in range(0, len(windows), _BATCH):
        out[i : i + _BATCH] = 20 * np.log10(np.sqrt((_centred(windows[i : i + _BATCH]) ** 2).mean(axis=1)) + 1e-9)
    return out


def window_pitches(windows: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """f0 (Hz, 0 if unvoiced) of the 40 ms windows [n, 640] that are `wanted`, 0 for the others
    (`Listener.take` keeps the pitch of speech only, so silence needs no spectrum)."""
    out, rows = np.zeros(len(windows)), np.flatnonzero(wanted)
    for i in range(0, len(rows), _BATCH):
        some = rows[i : i + _BATCH]
        out[some] = _f0(_centred(windows[some]))
    return out


def _f0(frames: np.ndarray) -> np.ndarray:
    """f0 (Hz, 0 if unvoiced) of centred windows [n, 640], from their autocorrelation."""
    win = frames.shape[1]
    spec = np.fft.rfft(frames * _WINDOW, n=2 * win)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:, :win]
    # search past the first zero crossing, so the main lobe around lag 0 is never taken for a period
    # (the divisor is positive: normalising changes no sign, so only the lags searched are normalised)
    first_negative = np.argmax(ac < 0, axis=1)
    band = ac[:, _LAGS] / np.maximum(ac[:, :1], 1e-12)
    band[_LAG_RANGE[None, :] < first_negative[:, None]] = -1.0
    lag = np.argmax(band, axis=1)
    peak = band[np.arange(len(lag)), lag]
    return np.where(peak > 0.45, SAMPLE_RATE / (_LAGS.start + lag), 0.0)


def _stress(rows: np.ndarray, mean: np.ndarray, std: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Strength 0–1 of syllables [k, 3] (loudness, pitch, length; nan unknown) against reference
    statistics of other syllables (per row or shared); 0.5 where nothing can be compared."""
    usable = np.isfinite(rows) & (count >= 3) & (std > 1e-6)
    weight = np.where(usable, _STRESS, 0.0)
    z = np.where(usable, (rows - mean) / np.maximum(std, _SPREAD), 0.0)
    total = weight.sum(axis=1)
    score = (weight * z).sum(axis=1) / np.where(total > 0, total, 1.0)
    return np.where(total > 0, 1 / (1 + np.exp(-1.5 * score)), 0.5)


def _statistics(values: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, standard deviation and count of the known (finite) values along `axis`."""
    known = np.isfinite(values)
    count = known.sum(axis=axis)
    filled = np.where(known, values, 0.0)
    mean = filled.sum(axis=axis) / np.maximum(count, 1)
    spread = np.where(known, (filled - np.expand_dims(mean, axis)) ** 2, 0.0)
    return mean, np.sqrt(spread.sum(axis=axis) / np.maximum(count, 1)), count


def _any(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Whether x[lo:hi] holds a True, for each (lo, hi)."""
    sums = np.zeros(len(x) + 1, int)
    np.cumsum(x, out=sums[1:])
    return sums[hi] > sums[lo]


@dataclass(frozen=True)
class Cues:
    """What post-processing knows of the voice at each output frame of a block.

    active: speaking; ahead: speech within the 60 ms after the frame; pitch: semitones around the
    voice's mean (nan unvoiced); accents: (frame in the block, time s, strength 0–1) of the
    syllables that became known at that frame; heard: voice from 80 ms before to 60 ms after
    (None where the speech does not come from the sound alone and needs no rest).
    """

    active: np.ndarray
    ahead: np.ndarray
    pitch: np.ndarray
    accents: list[tuple[int, float, float]]
    heard: np.ndarray | None = None

    @classmethod
    def from_activity(cls, active: np.ndarray, fps: float) -> Cues:
        """Cues from speech activity per output frame alone (no pitch, no syllables)."""
        n, look = len(active), max(1, round(AHEAD / GRID * fps))
        ahead = _any(active, np.arange(n), np.minimum(np.arange(n) + look + 1, n))
        return cls(active.astype(bool), ahead, np.full(n, np.nan), [])


def _frame_cues(js: np.ndarray, active: np.ndarray, pitch: np.ndarray, base: int) -> tuple[np.ndarray, ...]:
    """Activity, speech ahead and pitch at output frames that look at grid frames `js`, from grid
    arrays that start at grid frame `base` and reach at least AHEAD past the last."""
    at = js - base
    return active[at], _any(active, at, at + AHEAD + 1), pitch[at]


class Listener:
    """A stream's prosody: the grid measured in order from its audio, and the cues of its frames.

    The measured grid frames [base, next) sit in arrays; frames more than `_KEEP` behind the last
    one checked for a syllable peak are dropped, so an hour-long stream holds a few KB."""

    _KEEP = 100

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self.next = 0  # first grid frame not measured yet
        self.base = 0  # grid frame of index 0 in the arrays below
        self.rel = np.zeros(0)  # dB relative to the loud reference
        self.energy = np.zeros(0)  # the same as linear amplitude
        self.active = np.zeros(0, bool)
        self.pitch = np.zeros(0)  # semitones around the running mean, nan if unvoiced
        # the reference is the running max of max(level, floor) - decay × age, started at -45 dB;
        # `top` keeps that max as max(level, floor) + decay × frame, so no chunking changes it
        self.top = -45.0 - _PEAK_DECAY
        self.voice = np.zeros(0, bool)  # loud enough that the face should not rest (`_VOICE_DB`)
        self.voice_top = -math.inf  # as `top`, for the voice reference (`_VOICE_DECAY`)
        # the levels of the last `_FLOOR_SPAN` - 1 grid frames, the background's (inf before the start)
        self.recent = np.full(_FLOOR_SPAN - 1, np.inf)
        self.log_f0_sum, self.voiced = 0.0, 0
        self.checked = 0  # first grid frame not yet checked for a syllable peak
        self.last_peak = -100
        self.peaks = np.zeros((0, 3))  # (loudness dB, pitch, length) of the last syllables

    def grid(self, frame: int) -> int:
        """The last grid frame the output frame `frame` needs (80 ms past its time)."""
        return int(self._nearest(frame)) + AHEAD

    def _nearest(self, frames: np.ndarray | int) -> np.ndarray:
        """The grid frames nearest to output frames' times (of an array of frame numbers, or one)."""
        return np.floor(frames / self.fps * GRID + 0.5).astype(int)

    def windows(self, upto: int, samples: Samples) -> np.ndarray:
        """The 40 ms windows [k, 640] of the grid frames not measured yet, up to `upto` (inclusive)."""
        if upto < self.next:
            return np.zeros((0, 2 * _HALF), np.float32)
        audio = samples(self.next * _HOP - _HALF, upto * _HOP + _HALF)
        step, count = audio.strides[0], upto + 1 - self.next  # (a view, as `sliding_window_view`, without its checks)
        return np.lib.stride_tricks.as_strided(audio, (count, 2 * _HALF), (_HOP * step, step), writeable=False)

    def _relative(self, levels: np.ndarray) -> tuple[np.ndarray, float]:
        """The levels of the next grid frames in dB against the loud reference, and `top` after them."""
        decay = _PEAK_DECAY * np.arange(self.next, self.next + len(levels))
        tops = np.maximum(np.maximum.accumulate(np.maximum(levels, _FLOOR_DB) + decay), self.top)
        return levels - (tops - decay), float(tops[-1])

    def speaking(self, levels: np.ndarray) -> np.ndarray:
        """Which of the next grid frames, at these levels, `take` will find speech (the frames whose pitch counts)."""
        return self._relative(levels)[0] > -_SPEECH_DB

    def take(self, levels: np.ndarray, f0s: np.ndarray) -> None:
        """Take in the measurements (`window_levels`, `window_pitches`) of the next grid frames, in order."""
        if not len(levels):
            return
        rel, self.top = self._relative(levels)
        active = rel > -_SPEECH_DB
        voice_decay = _VOICE_DECAY * np.arange(self.next, self.next + len(levels))
        loud = np.maximum(np.maximum.accumulate(levels + voice_decay), self.voice_top)
        self.voice_top = float(loud[-1])
        held = np.concatenate([self.recent, levels])
        floor = np.lib.stride_tricks.sliding_window_view(held, _FLOOR_SPAN).min(axis=1)
        self.recent = held[-(_FLOOR_SPAN - 1) :]
        voice = (levels > loud - voice_decay - _VOICE_DB) & (levels > floor + _OVER_FLOOR_DB)
        voiced = (f0s > 0) & active
        semitones = 12 * np.log2(np.where(voiced, f0s, 1.0))  # (0 where unvoiced)
        sums = self.log_f0_sum + semitones.cumsum()
        counts = self.voiced + voiced.cumsum()
        self.log_f0_sum, self.voiced = float(sums[-1]), int(counts[-1])
        pitch = np.where(voiced, semitones - sums / np.maximum(counts, 1), np.nan)
        drop = max(0, min(self.checked - self._KEEP, self.next) - self.base)
        self.rel = np.concatenate([self.rel[drop:], rel])
        self.energy = np.concatenate([self.energy[drop:], 10 ** (rel / 20)])
        self.active = np.concatenate([self.active[drop:], active])
        self.voice = np.concatenate([self.voice[drop:], voice])
        self.pitch = np.concatenate([self.pitch[drop:], pitch])
        self.base += drop
        self.next += len(levels)

    def at(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Speech activity, voice (`_VOICE_DB`) and pitch of the measured grid frames lo..hi-1;
        frames before the first one held are silent."""
        pad, a, b = max(0, self.base - lo), max(lo, self.base) - self.base, hi - self.base
        if not pad:
            return self.active[a:b], self.voice[a:b], self.pitch[a:b]
        return (np.concatenate([np.zeros(pad, bool), self.active[a:b]]),
                np.concatenate([np.zeros(pad, bool), self.voice[a:b]]),
                np.concatenate([np.full(pad, np.nan), self.pitch[a:b]]))  # fmt: skip

    def advance(self, upto: int, samples: Samples) -> list[tuple[int, float]]:
        """Measure grid frames up to `upto` (inclusive); return the stressed-syllable candidates
        (grid frame, strength 0–1) whose peak is now known (those up to `upto` - AHEAD)."""
        windows = self.windows(upto, samples)
        if len(windows):
            loud = window_levels(windows)
            self.take(loud, window_pitches(windows, self.speaking(loud)))
        first, last = self.checked, upto - AHEAD
        if last < first:
            return []
        self.checked = last + 1
        speaking = self.active[first - self.base : last + 1 - self.base]
        if not speaking.any():  # (syllables peak in speech)
            return []
        # energy smoothed over 110 ms at first-1 .. last+1; frames not measured (or dropped) are quiet
        lo = first - 6
        energy = np.full(last + 7 - lo, _QUIET)  # lo .. last+6
        have = slice(max(lo, self.base), min(last + 7, self.next))
        energy[have.start - lo : have.stop - lo] = self.energy[have.start - self.base : have.stop - self.base]
        smooth = energy[: len(energy) - 10].copy()  # summed over 11 frames: at first-1 .. last+1
        for shift in range(1, 11):
            smooth += energy[shift : len(energy) - 10 + shift]
        smooth /= 11
        here = smooth[1:-1]
        rise = (here >= smooth[:-2]) & (here > smooth[2:]) & speaking
        chosen = []
        for j in (first + np.flatnonzero(rise)).tolist():  # a loop over syllables, not frames
            if j - self.last_peak >= _SYLLABLE_GAP:
                chosen.append(j)
                self.last_peak = j
        if not chosen:
            return []
        at = np.array(chosen) - self.base
        rows = np.stack([self.rel[at], self.pitch[at], np.full(len(at), np.nan)], axis=1)
        strengths = self._score(rows)
        return list(zip(chosen, strengths.tolist(), strict=True))

    def _score(self, rows: np.ndarray) -> np.ndarray:
        """Each new syllable against the `_HISTORY` before it."""
        held = len(self.peaks)
        every = np.concatenate([np.full((_HISTORY, 3), np.nan), self.peaks, rows])
        before = np.lib.stride_tricks.sliding_window_view(every, _HISTORY, axis=0)[held : held + len(rows)]
        self.peaks = every[-_HISTORY:][np.isfinite(every[-_HISTORY:, 0])]
        return _stress(rows, *_statistics(before, axis=2))

    def cues(self, first: int, n: int, samples: Samples) -> Cues:
        """The cues of output frames first..first+n-1; `samples` reads the 16 kHz audio, which must be
        there up to 85 ms past the last frame (zeros past the end of a stream)."""
        if not n:
            return Cues(np.zeros(0, bool), np.zeros(0, bool), np.zeros(0), [], np.zeros(0, bool))
        js = self._nearest(first + np.arange(n))
        found = self.advance(int(js[-1]) + AHEAD, samples)
        lo = int(js[0]) - REST_BEHIND
        active, voice, pitch = self.at(lo, int(js[-1]) + AHEAD + 1)
        at = js - lo
        heard = _any(voice, at - REST_BEHIND, at + AHEAD + 1)
        # a syllable is known from the first frame that looks at its grid frame
        accents = [(int(np.searchsorted(js, g)), g / GRID, s) for g, s in found]
        return Cues(*_frame_cues(js, active, pitch, lo), accents, heard)


def reader(audio: np.ndarray) -> Samples:
    """`Samples` of a whole clip's 16 kHz audio (zeros outside it)."""

    def samples(start: int, stop: int) -> np.ndarray:
        out = np.zeros(stop - start, np.float32)
        a, b = max(start, 0), min(stop, len(audio))
        if b > a:
            out[a - start : b - start] = audio[a:b]
        return out

    return samples


def measure_ahead(jobs: list[tuple[Listener, int, Samples]]) -> None:
    """Measure the prosody that several streams need up to their output frame `last` in one batch:
    the same as each stream doing it in `Listener.cues`, with far fewer small FFTs."""
    found = [(listener, listener.windows(listener.grid(last), samples)) for listener, last, samples in jobs]
    found = [(p, w) for p, w in found if len(w)]
    if not found:
        return
    # (one stream's windows stay a view of its audio: a minute of them copied would be 150 MB)
    windows = found[0][1] if len(found) == 1 else np.concatenate([w for _, w in found])
    loud = window_levels(windows)
    edges = np.cumsum([0] + [len(w) for _, w in found]).tolist()  # each listener's windows: edges[i]..edges[i+1]
    parts = list(zip([listener for listener, _ in found], edges[:-1], edges[1:], strict=True))
    f0s = window_pitches(windows, np.concatenate([listener.speaking(loud[a:b]) for listener, a, b in parts]))
    for listener, a, b in parts:
        listener.take(loud[a:b], f0s[a:b])
