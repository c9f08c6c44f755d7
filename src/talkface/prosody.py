"""Speech prosody at the animation's frame rate: when someone speaks, how loud, at what pitch, and
where the stressed syllables fall; plus a rough arousal estimate.

Liveliness (head nods, blinks at phrase ends, breaths in pauses) and the automatic emotion
intensity read this. It comes from the audio when there is some (energy, f0 by autocorrelation)
and from timed phones when there are some (speech/pause, syllable nuclei); with both, the phones
place the syllables and the audio weighs them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .audio import SAMPLE_RATE
from .phonemes import SILENCE, VOWELS, TimedPhone

_HOP = 0.01  # analysis hop (s)
_WIN = 0.04  # analysis window (s), two periods of a 50 Hz voice
_F0_MIN, _F0_MAX = 60.0, 400.0
_SPEECH_DB = 35.0  # frames within this many dB of the loud parts count as speech
_MIN_GAP = 0.15  # silences shorter than this (s) inside speech are bridged (stop closures)
_BLOCK = 3000  # analysis frames (30 s) measured at once


@dataclass(frozen=True)
class Prosody:
    """Per-frame speech measures at `fps`, plus the stressed syllables.

    `activity` is 1 while speaking, 0 in pauses; `energy` is loudness in [0, 1] relative to the
    clip's loud parts; `pitch` is f0 in semitones around the speaker's median, nan where
    unvoiced or unknown; `accents` are (time s, strength in [0, 1]) of syllable nuclei, the
    strongest being the stressed ones; `syllable_rate` counts nuclei per second of speech.
    """

    fps: float
    activity: np.ndarray
    energy: np.ndarray
    pitch: np.ndarray
    accents: tuple[tuple[float, float], ...]
    syllable_rate: float

    @property
    def num_frames(self) -> int:
        return self.activity.size

    def pauses(self, min_length: float = 0.25) -> list[tuple[float, float]]:
        """(start, end) in seconds of the stretches without speech lasting at least `min_length`."""
        quiet = np.concatenate([[False], self.activity < 0.5, [False]])
        edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
        spans = [(a / self.fps, b / self.fps) for a, b in zip(edges[::2], edges[1::2], strict=True)]
        return [(a, b) for a, b in spans if b - a >= min_length]

    def arousal(self) -> float:
        """How excited the speech sounds, in [0, 1], from pitch range, loudness swings and rate.

        A heuristic, not a trained classifier: lively pitch movement (over ~2 semitones of
        spread), large loudness swings (over ~10 dB) and fast syllables (over 3.5 a second) raise
        it; calm read speech (CMU ARCTIC, espeak-ng) scores about 0.15–0.2. It cannot tell which emotion
        is meant (joy and anger are both high-arousal) and is unreliable on very short clips.
        """
        speech = self.activity > 0.5
        if speech.sum() < 0.5 * self.fps:  # under half a second of speech: no evidence
            return 0.0
        voiced = self.pitch[speech & np.isfinite(self.pitch)]
        # spreads as robust standard deviations (10th to 90th percentile / 2.56), blind to tracking slips
        spread = float(np.subtract(*np.percentile(voiced, [90, 10]))) / 2.56 if voiced.size > 10 else 2.0
        loud = 20 * np.log10(np.maximum(self.energy[speech], 1e-3))
        swings = float(np.subtract(*np.percentile(loud, [90, 10]))) / 2.56
        a_pitch = np.clip((spread - 2.0) / 3.0, 0, 1)
        a_loud = np.clip((swings - 10.0) / 6.0, 0, 1)
        a_rate = np.clip((self.syllable_rate - 3.5) / 2.5, 0, 1)
        return float(0.45 * a_pitch + 0.3 * a_loud + 0.25 * a_rate)


def analyse(
    fps: float,
    num_frames: int,
    phones: Sequence[TimedPhone] | None = None,
    audio: np.ndarray | None = None,
) -> Prosody:
    """Prosody of speech given as timed phones, 16 kHz mono audio, or both (see module doc)."""
    times = np.arange(num_frames) / fps
    if audio is not None and audio.size >= int(_WIN * SAMPLE_RATE):
        energy_db, f0 = _frame_measures(audio)
        grid = np.arange(energy_db.size) * _HOP + _WIN / 2
        loud = np.interp(times, grid, energy_db)
        energy = 10 ** (loud / 20)
        voiced = f0 > 0
        semitones = 12 * np.log2(np.where(voiced, f0, np.nan) / np.median(f0[voiced])) if voiced.any() else f0 * np.nan
        pitch = _interp_nan(times, grid, semitones)
        activity = (loud > -_SPEECH_DB).astype(np.float32)
    else:
        energy = np.zeros(num_frames)
        pitch = np.full(num_frames, np.nan)
        activity = np.zeros(num_frames, np.float32)
    if phones:
        activity = np.zeros(num_frames, np.float32)
        for p in phones:
            if p.phone != SILENCE:
                activity[(times >= p.start) & (times < p.end)] = 1.0
        if audio is None:
            energy = activity * 0.5
        nuclei = [(p.mid, p.end - p.start) for p in phones if p.phone in VOWELS]
    else:
        nuclei = _energy_peaks(times, energy, activity)
    activity = _bridge(activity, fps)
    accents = _accent_strengths(nuclei, times, energy, pitch)
    speaking = activity.sum() / fps
    rate = len(accents) / speaking if speaking > 0 else 0.0
    return Prosody(fps, activity, energy.astype(np.float32), pitch.astype(np.float32), accents, rate)


def _frame_measures(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per 10 ms: level in dB relative to the clip's loud parts (95th percentile), and f0 (0 if unvoiced).

    Frames are taken `_BLOCK` at a time, so memory stays bounded however long the audio is.
    """
    hop, win = int(_HOP * SAMPLE_RATE), int(_WIN * SAMPLE_RATE)
    n = 1 + (audio.size - win) // hop
    blocks = [(s, min(s + _BLOCK, n)) for s in range(0, n, _BLOCK)]
    rms = np.concatenate([np.sqrt((_frames(audio, s, e) ** 2).mean(axis=1)) + 1e-9 for s, e in blocks])
    level = 20 * np.log10(rms)
    level -= np.percentile(level, 95)
    f0 = np.zeros(n)
    for s, e in blocks:
        loud = np.flatnonzero(level[s:e] > -_SPEECH_DB)  # pitch only where there may be a voice
        if loud.size:
            f0[s + loud] = _f0(_frames(audio, s, e)[loud])
    return level, _median3(f0)


def _frames(audio: np.ndarray, start: int, end: int) -> np.ndarray:
    """Analysis frames `start`..`end` (windows of `_WIN` every `_HOP`), each less its mean."""
    hop, win = int(_HOP * SAMPLE_RATE), int(_WIN * SAMPLE_RATE)
    idx = np.arange(win)[None, :] + hop * np.arange(start, end)[:, None]
    frames = audio[idx].astype(np.float32)
    return frames - frames.mean(axis=1, keepdims=True)


def _f0(frames: np.ndarray) -> np.ndarray:
    """f0 (Hz) of each frame, 0 where no clear period is found."""
    win = frames.shape[1]
    lo, hi = int(SAMPLE_RATE / _F0_MAX), int(SAMPLE_RATE / _F0_MIN)
    # normalised autocorrelation through the FFT (long enough that lags below `hi` do not wrap);
    # the lag of its peak is the period
    size = 1 << int(np.ceil(np.log2(win + hi)))
    spec = np.fft.rfft(frames * np.hanning(win).astype(np.float32), n=size)
    ac = np.fft.irfft(np.abs(spec) ** 2, n=size)[:, :hi]
    ac /= np.maximum(ac[:, :1], 1e-12)
    # search past the first zero crossing, so that the main lobe around lag 0 is never taken for a period
    first_negative = np.argmax(ac < 0, axis=1)
    ac = np.where(np.arange(hi)[None, :] < first_negative[:, None], -1.0, ac)
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    peak = ac[np.arange(len(frames)), lag]
    return np.where(peak > 0.45, SAMPLE_RATE / lag, 0.0)


def _median3(x: np.ndarray) -> np.ndarray:
    """3-point median: removes single-frame octave jumps."""
    if x.size < 3:
        return x
    padded = np.concatenate([x[:1], x, x[-1:]])
    return np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)


def _interp_nan(times: np.ndarray, grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Values at `times` from the nearest grid point, nan where that point is nan."""
    pos = np.clip(np.round(np.interp(times, grid, np.arange(grid.size))).astype(int), 0, grid.size - 1)
    return values[pos]


def _bridge(activity: np.ndarray, fps: float) -> np.ndarray:
    """Speech activity with gaps shorter than _MIN_GAP filled (closures are not pauses)."""
    out = activity.copy()
    gap = round(_MIN_GAP * fps)
    on = np.flatnonzero(out > 0.5)
    for a, b in itertools.pairwise(on):
        if 1 < b - a <= gap + 1:
            out[a:b] = 1.0
    return out


def _energy_peaks(times: np.ndarray, energy: np.ndarray, activity: np.ndarray) -> list[tuple[float, float]]:
    """Syllable nuclei from the audio alone: loudness peaks at least 120 ms apart, as (time, 0.1 s)."""
    if times.size < 3:
        return []
    fps = 1.0 / (times[1] - times[0])
    k = max(1, round(0.05 * fps))
    smooth = np.convolve(energy, np.hanning(2 * k + 1) / np.hanning(2 * k + 1).sum(), mode="same")
    peaks = [
        i
        for i in range(1, smooth.size - 1)
        if activity[i] > 0.5 and smooth[i] >= smooth[i - 1] and smooth[i] > smooth[i + 1]
    ]
    chosen: list[int] = []
    for i in sorted(peaks, key=lambda i: -smooth[i]):
        if all(abs(i - j) >= 0.12 * fps for j in chosen):
            chosen.append(i)
    return [(float(times[i]), 0.1) for i in sorted(chosen)]


def _accent_strengths(
    nuclei: list[tuple[float, float]], times: np.ndarray, energy: np.ndarray, pitch: np.ndarray
) -> tuple[tuple[float, float], ...]:
    """Strength in [0, 1] of each nucleus from its loudness, pitch and length relative to the others."""
    if not nuclei:
        return ()
    fps = 1.0 / (times[1] - times[0]) if times.size > 1 else 1.0
    at = [min(times.size - 1, max(0, round(t * fps))) for t, _ in nuclei]
    loud = 20 * np.log10(np.maximum(energy[at], 1e-3))
    pit = np.nan_to_num(pitch[at], nan=float(np.nanmedian(pitch)) if np.isfinite(pitch).any() else 0.0)
    length = np.array([d for _, d in nuclei])

    # loudness, pitch and length as z-scores; a cue that does not vary (no audio) gives its weight to the others
    cues = [(0.4, loud), (0.35, pit), (0.25, length)]
    cues = [(w, (x - x.mean()) / x.std()) for w, x in cues if x.size > 1 and x.std() > 1e-6]
    total = sum(w for w, _ in cues)
    score = sum(w / total * zx for w, zx in cues) if cues else np.zeros(len(nuclei))
    strength = 1 / (1 + np.exp(-1.5 * score))
    return tuple((float(t), float(s)) for (t, _), s in zip(nuclei, strength, strict=True))
