"""A whole clip's prosody (`analyse`): the phone-driven paths (`say`, `--text`, the phonetic engine)
see all of a clip at once. The audio is measured as a stream measures it (`prosody.Listener`);
timed phones, where there are some, say where the speech is and put a syllable on each vowel, and
every syllable is scored against all the others."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..phonemes import SILENCE, VOWELS, TimedPhone
from .prosody import _FLOOR_DB, AHEAD, GRID, Cues, Listener, _frame_cues, _statistics, _stress, reader

_MIN_GAP = 15  # grid frames: shorter silences between phones are closures, not pauses
_BLOCK = 6000  # grid frames measured at a time (a minute): an hour's spectra are never all in memory


@dataclass(frozen=True)
class Prosody:
    """A whole clip's prosody on the 100 Hz grid (`analyse`).

    active: speaking; loudness: dB against the loud reference (nan without audio); pitch:
    semitones around the voice's mean (nan unvoiced or unknown); accents: (time s, strength 0–1)
    of the syllables, the strongest being the stressed ones.
    """

    active: np.ndarray
    loudness: np.ndarray
    pitch: np.ndarray
    accents: tuple[tuple[float, float], ...]

    def cues(self, fps: float, n: int) -> Cues:
        """The cues of a clip's n output frames at `fps`."""
        js = np.floor(np.arange(n) / fps * GRID + 0.5).astype(int)
        size = max(len(self.active), int(js[-1]) + AHEAD + 1 if n else 0)
        active = np.pad(self.active, (0, size - len(self.active)))
        pitch = np.pad(self.pitch, (0, size - len(self.pitch)), constant_values=np.nan)
        frames = np.searchsorted(js, np.round(np.array([t for t, _ in self.accents]) * GRID))
        accents = [(int(i), t, s) for i, (t, s) in zip(frames, self.accents, strict=True) if i < n]
        return Cues(*_frame_cues(js, active, pitch), accents)

    def pauses(self, min_length: float = 0.25) -> list[tuple[float, float]]:
        """(start, end) in seconds of the stretches without speech lasting at least `min_length`."""
        quiet = np.concatenate([[False], ~self.active, [False]])
        edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
        spans = zip(edges[::2], edges[1::2], strict=True)
        return [(a / GRID, b / GRID) for a, b in spans if b - a >= min_length * GRID]

    @property
    def syllable_rate(self) -> float:
        """Syllables per second of speech."""
        speaking = self.active.sum() / GRID
        return len(self.accents) / speaking if speaking > 0 else 0.0

    def arousal(self) -> float:
        """How excited the speech sounds, in [0, 1], from pitch range, loudness swings and rate.

        A heuristic, not a trained classifier: lively pitch movement (over ~2 semitones of
        spread), large loudness swings (over ~10 dB) and fast syllables (over 3.5 a second) raise
        it; calm read speech (CMU ARCTIC, espeak-ng) scores about 0.15–0.2. It cannot tell which emotion
        is meant (joy and anger are both high-arousal) and is unreliable on very short clips.
        """
        speech = self.active
        if speech.sum() < 0.5 * GRID:  # under half a second of speech: no evidence
            return 0.0
        voiced = self.pitch[speech & np.isfinite(self.pitch)]
        # spreads as robust standard deviations (10th to 90th percentile / 2.56), blind to tracking slips
        spread = float(np.subtract(*np.percentile(voiced, [90, 10]))) / 2.56 if voiced.size > 10 else 2.0
        loud = np.nan_to_num(np.maximum(self.loudness[speech], _FLOOR_DB), nan=0.0)
        swings = float(np.subtract(*np.percentile(loud, [90, 10]))) / 2.56
        a_pitch = np.clip((spread - 2.0) / 3.0, 0, 1)
        a_loud = np.clip((swings - 10.0) / 6.0, 0, 1)
        a_rate = np.clip((self.syllable_rate - 3.5) / 2.5, 0, 1)
        return float(0.45 * a_pitch + 0.3 * a_loud + 0.25 * a_rate)


def analyse(duration: float, phones: Sequence[TimedPhone] | None = None, audio: np.ndarray | None = None) -> Prosody:
    """Prosody of `duration` s of speech given as timed phones, 16 kHz mono audio, or both: the
    audio is measured as a stream measures it; phones, when there are some, say where the speech
    is and put a syllable on each vowel (the audio then weighs them by loudness and pitch)."""
    size = round(duration * GRID) + 1
    loudness, pitch, active = np.full(size, np.nan), np.full(size, np.nan), np.zeros(size, bool)
    peaks: list[tuple[int, float]] = []
    if audio is not None:  # measured a block at a time, as a stream measures it
        listener, samples, last = Listener(GRID), reader(audio), size - 1 + AHEAD
        for upto in [*range(_BLOCK - 1, last, _BLOCK), last]:
            lo, hi = listener.next, min(upto + 1, size)
            peaks += listener.advance(upto, samples)
            if hi > lo:  # the block's frames, before the listener lets them go
                active[lo:hi], _, pitch[lo:hi] = listener.at(lo, hi)
                loudness[lo:hi] = listener.rel[lo - listener.base : hi - listener.base]
    if phones:
        phones = [p for p in phones if p.end > p.start]  # as the face drops them (`merge_silences`)
        active = _bridge(_covered(phones, size))
        nuclei = [(p.mid, p.end - p.start) for p in phones if p.phone in VOWELS]
    else:
        nuclei = [(g / GRID, math.nan) for g, _ in peaks]
    if not nuclei:
        return Prosody(active, loudness, pitch, ())
    at = np.clip(np.round(np.array([t for t, _ in nuclei]) * GRID).astype(int), 0, size - 1)
    rows = np.stack([np.maximum(loudness[at], _FLOOR_DB), pitch[at], [d for _, d in nuclei]], axis=1)
    strengths = _stress(rows, *_statistics(rows, axis=0))  # each syllable against all of them
    return Prosody(active, loudness, pitch, tuple((t, float(s)) for (t, _), s in zip(nuclei, strengths, strict=True)))


def _covered(phones: Sequence[TimedPhone], size: int) -> np.ndarray:
    """Which grid frames a phone other than silence covers."""
    edges = np.zeros(size + 1)
    for p in phones:  # a loop over phones, not frames
        if p.phone != SILENCE:
            a, b = (min(size, max(0, math.ceil(x * GRID - 1e-9))) for x in (p.start, p.end))
            edges[a] += 1
            edges[b] -= 1
    return np.cumsum(edges)[:-1] > 0


def _bridge(active: np.ndarray) -> np.ndarray:
    """Speech activity with gaps of up to `_MIN_GAP` filled (closures are not pauses)."""
    on = np.flatnonzero(active)
    gaps = np.diff(on) - 1
    short = (gaps >= 1) & (gaps <= _MIN_GAP)
    edges = np.zeros(len(active) + 1)
    np.add.at(edges, on[:-1][short] + 1, 1)
    np.add.at(edges, on[1:][short], -1)
    return active | (np.cumsum(edges)[:-1] > 0)
