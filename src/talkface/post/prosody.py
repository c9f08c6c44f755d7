"""Prosody: when someone speaks, how loud, at what pitch, and where the stressed syllables fall, on
a 100 Hz grid; and the cues that post-processing reads at each output frame.

A stream (`Listener`) measures the grid causally, seeing 80 ms ahead: loudness against a slowly
decaying peak, pitch in semitones around the running mean of the voice so far, stressed syllables
as loudness peaks scored against the 50 before them. A whole clip (`clip_prosody.analyse`) runs the
same measures over all of its audio in one go, and may know more.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE
from .measures import window_levels, window_pitches
from .smoothing import Blocks

GRID = 100.0  # prosody frames per second
AHEAD = 6  # grid frames of look-ahead: a 40 ms window centred 60 ms ahead ends 80 ms ahead
_HOP = int(SAMPLE_RATE / GRID)
_HALF = 2 * _HOP  # half a 40 ms window
_SPEECH_DB = 35.0  # within this many dB of the loud reference is speech
_PEAK_DECAY = 0.01  # dB per grid frame (1 dB/s) of the loudness reference
_FLOOR_DB = -60.0  # the reference never falls below this (dBFS)
#: The face rests where no grid frame from `REST_BEHIND` before to `AHEAD` after is voice: within
#: `_VOICE_DB` of a loudness reference that decays `_VOICE_DECAY` dB a grid frame (6 dB/s, so quiet
#: words soon after a shout still count), and `_OVER_FLOOR_DB` over the background: the quietest
#: grid frame of the last `_FLOOR_SPAN` (3 s), so that music or noise under the voice, loud as it may
#: be, does not count as voice in the pauses.
_VOICE_DB, _VOICE_DECAY, REST_BEHIND = 16.0, 0.06, 8
#: Where a listener may look `TRAIL_AHEAD` grid frames ahead (a speech-encoder model's frames wait 2 s
#: for their window anyway), the face also rests from the first grid frame of a silence that long: no
#: speech (`_SPEECH_DB`) at the frame nor in the 250 ms after it. The voice line alone holds the mouth
#: open 80 ms into such a pause, longer over a fading tail within 16 dB of the voice: after the last word
#: of natural recordings it reached rest only 170–230 ms into the pause (model card, "Rest in pauses").
TRAIL_AHEAD = 25
_OVER_FLOOR_DB, _FLOOR_SPAN = 10.0, 300
_SYLLABLE_GAP = 12  # grid frames (120 ms) between loudness peaks taken for syllables
_HISTORY = 50  # a stream scores a syllable against this many before it
#: What makes a syllable stressed, against the others: loudness (dB), pitch (semitones) and length
#: (s) as z-scores with these weights (a cue that is unknown or does not vary gives its weight to
#: the rest), each spread counted as at least `_SPREAD`.
_STRESS = np.array([0.4, 0.35, 0.25])
_SPREAD = np.array([1.0, 0.5, 0.02])
_QUIET = 10 ** (-99.0 / 20)  # the loudness of a grid frame not measured (or forgotten)
#: A held grid frame's row: dB against the loud reference, that as linear amplitude, speech (0/1),
#: voice (0/1) and pitch (semitones around the running mean, nan if unvoiced); and such a row of a
#: frame not measured (or forgotten).
_REL, _ENERGY, _ACTIVE, _VOICE, _PITCH = range(5)
_UNHEARD = np.array([-99.0, _QUIET, 0.0, 0.0, np.nan])
Samples = Callable[[int, int], np.ndarray]  # (start, stop) absolute 16 kHz sample indices → audio


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
    syllables that became known at that frame; heard: voice from 80 ms before to 60 ms after, and
    (for a listener with `rest_ahead`) speech at the frame or in the 250 ms after it (None where the
    speech does not come from the sound alone and needs no rest).
    """

    active: np.ndarray
    ahead: np.ndarray
    pitch: np.ndarray
    accents: list[tuple[int, float, float]]
    heard: np.ndarray | None = None

    @classmethod
    def none(cls) -> Cues:
        """The cues of no frames."""
        return cls(np.zeros(0, bool), np.zeros(0, bool), np.zeros(0), [], np.zeros(0, bool))

    @classmethod
    def from_activity(cls, active: np.ndarray, fps: float) -> Cues:
        """Cues from speech activity per output frame alone (no pitch, no syllables)."""
        n, look = len(active), max(1, round(AHEAD / GRID * fps))
        ahead = _any(active, np.arange(n), np.minimum(np.arange(n) + look + 1, n))
        return cls(active.astype(bool), ahead, np.full(n, np.nan), [])


def _frame_cues(js: np.ndarray, active: np.ndarray, pitch: np.ndarray) -> tuple[np.ndarray, ...]:
    """Activity, speech ahead and pitch at output frames that look at rows `js` of grid arrays that
    reach at least AHEAD past the last."""
    return active[js], _any(active, js, js + AHEAD + 1), pitch[js]


class Listener:
    """A stream's prosody: the grid measured in order from its audio, and the cues of its frames.

    The measured grid frames [base, next) are the rows of `held` (columns `_REL` .. `_PITCH`); frames
    more than `_KEEP` behind the last one checked for a syllable peak are dropped, so an hour-long
    stream holds a few KB. Many streams' listeners go on together, in a few numpy calls (`listen`).
    With `rest_ahead` it measures `TRAIL_AHEAD` grid frames past each frame rather than `AHEAD`, and
    its frames also rest at once in a long silence (see `TRAIL_AHEAD`)."""

    _KEEP = 100

    def __init__(self, fps: float, rest_ahead: bool = False) -> None:
        self.fps = fps
        self.ahead = TRAIL_AHEAD if rest_ahead else AHEAD  # grid frames measured past a frame
        self.next = 0  # first grid frame not measured yet
        self.base = 0  # grid frame of row 0 of `held`
        self.held = np.zeros((0, len(_UNHEARD)))
        # the reference is the running max of max(level, floor) - decay × age, started at -45 dB;
        # `top` keeps that max as max(level, floor) + decay × frame, so no chunking changes it
        self.top = -45.0 - _PEAK_DECAY
        self.voice_top = -math.inf  # as `top`, for the voice reference (`_VOICE_DECAY`)
        # the levels of the last `_FLOOR_SPAN` - 1 grid frames, the background's (inf before the start)
        self.recent = np.full(_FLOOR_SPAN - 1, np.inf)
        self.log_f0_sum, self.voiced = 0.0, 0
        self.f0 = 0.0  # the last grid frame's f0, which the frame after may take (`_take`)
        self.checked = 0  # first grid frame not yet checked for a syllable peak
        self.last_peak = -100
        self.peaks = np.zeros((0, 3))  # (loudness dB, pitch, length) of the last syllables

    @property
    def rel(self) -> np.ndarray:
        """The held grid frames' levels in dB against the loud reference."""
        return self.held[:, _REL]

    def take(self, levels: np.ndarray, f0s: np.ndarray) -> None:
        """Take in the measurements (`window_levels`, `window_pitches`) of the next grid frames, in order."""
        if len(levels):
            _take([self], Blocks.of([len(levels)]), levels, lambda _: f0s)

    def at(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Speech activity, voice (`_VOICE_DB`) and pitch of the measured grid frames lo..hi-1;
        frames before the first one held are silent."""
        rows = _gather([self], np.array([lo]), np.array([hi]))
        return rows[:, _ACTIVE] > 0, rows[:, _VOICE] > 0, rows[:, _PITCH]

    def advance(self, upto: int, samples: Samples) -> list[tuple[int, float]]:
        """Measure grid frames up to `upto` (inclusive); return the stressed-syllable candidates
        (grid frame, strength 0–1) whose peak is now known (those up to `upto` - AHEAD)."""
        _measure([self], np.array([upto]), [samples])
        return _syllables([self], np.array([upto]))[0]

    def cues(self, first: int, n: int, samples: Samples) -> Cues:
        """The cues of output frames first..first+n-1; `samples` reads the 16 kHz audio, which must be
        there up to `ahead` grid frames and 20 ms past the last frame (zeros past the end of a stream)."""
        return listen([(self, first, n, samples)])[0]


def listen(jobs: Sequence[tuple[Listener, int, int, Samples]]) -> list[Cues]:
    """`Listener.cues` of several streams (listener, first frame, count, audio), in a few numpy calls
    for all of them rather than a few dozen for each: a server's streams every tick."""
    going = [job for job in jobs if job[2]]
    made = iter(_listen(going) if going else [])
    return [next(made) if n else Cues.none() for _, _, n, _ in jobs]


def _listen(jobs: list[tuple[Listener, int, int, Samples]]) -> list[Cues]:
    """`listen` for jobs that all have frames."""
    listeners = [listener for listener, _, _, _ in jobs]
    blocks = Blocks.of([n for _, _, n, _ in jobs])  # the output frames
    starts, fps = blocks.rows([(first, listener.fps) for listener, first, _, _ in jobs]).T
    js = np.floor((starts + blocks.local) / fps * GRID + 0.5).astype(int)  # (whole numbers as floats)
    aheads = np.array([listener.ahead for listener in listeners])
    fars = js[blocks.lasts] + aheads
    _measure(listeners, fars, [samples for _, _, _, samples in jobs])
    found = _syllables(listeners, js[blocks.lasts] + AHEAD)
    los = js[blocks.firsts] - REST_BEHIND
    rows = _gather(listeners, los, fars + 1)
    spans = fars + 1 - los
    at = js + blocks.rows(np.cumsum(spans) - spans - los)  # each frame's grid frame in `rows`
    active, ahead, pitch = _frame_cues(at, rows[:, _ACTIVE] > 0, rows[:, _PITCH])
    heard = _any(rows[:, _VOICE] > 0, at - REST_BEHIND, at + AHEAD + 1)
    far = blocks.rows(aheads)
    if (far > AHEAD).any():  # listeners with `rest_ahead`: no voice heard in a long silence either
        heard &= _any(rows[:, _ACTIVE] > 0, at, at + far + 1) | (far <= AHEAD)
    out = []
    for (a, b), peaks in zip(itertools.pairwise(np.append(blocks.firsts, blocks.total).tolist()), found, strict=True):
        # a syllable is known from the first frame that looks at its grid frame
        accents = [(int(np.searchsorted(js[a:b], g)), g / GRID, s) for g, s in peaks]
        out.append(Cues(active[a:b], ahead[a:b], pitch[a:b], accents, heard[a:b]))
    return out


def _measure(listeners: list[Listener], uptos: np.ndarray, samples: list[Samples]) -> None:
    """Measure each listener's grid frames up to its `upto` (inclusive), all in one batch."""
    counts = uptos + 1 - np.array([listener.next for listener in listeners])
    some = np.flatnonzero(counts > 0).tolist()
    if not some:
        return
    listeners = [listeners[i] for i in some]
    blocks = Blocks.of(counts[some])
    # each listener's audio: its windows' hops one after another, 3 more hops than windows
    audio = [samples[i](listeners[k].next * _HOP - _HALF, int(uptos[i]) * _HOP + _HALF) for k, i in enumerate(some)]
    audio = np.concatenate(audio) if len(audio) > 1 else audio[0]
    step = audio.strides[0]  # (a view, as `sliding_window_view`, without its checks)
    windows = np.lib.stride_tricks.as_strided(audio, (len(audio) // _HOP - 3, 2 * _HALF), (_HOP * step, step),
                                              writeable=False)  # fmt: skip
    rows = np.arange(blocks.total) + blocks.rows(3 * np.arange(blocks.count))  # each grid frame's window

    def pitches(speaking: np.ndarray) -> np.ndarray:  # (of speech only: silence needs no spectrum)
        f0s = np.zeros(blocks.total)
        f0s[speaking] = window_pitches(windows, rows[speaking])
        return f0s

    _take(listeners, blocks, window_levels(windows, rows), pitches)


def _take(listeners: list[Listener], blocks: Blocks, levels: np.ndarray,
          pitches: Callable[[np.ndarray], np.ndarray]) -> None:  # fmt: skip
    """`Listener.take` of each listener's block of levels, with the f0s that `pitches` gives for the
    frames found to be speech (where their pitch counts) on which pitch is measured.

    Pitch is measured on the even grid frames (their 40 ms windows overlap by three quarters); an odd
    one takes the frame's before: half the spectra of the costliest measure, a pitch every 20 ms."""
    state = blocks.rows([(listener.next, listener.top, listener.voice_top, listener.log_f0_sum, listener.voiced)
                         for listener in listeners])  # fmt: skip
    grid = state[:, 0] + blocks.local  # (whole numbers as floats)
    # the references are running maxima of the levels + decay × frame (so no chunking changes them)
    decay, voice_decay = _PEAK_DECAY * grid, _VOICE_DECAY * grid
    tops = np.maximum(blocks.accumulate(np.maximum(levels, _FLOOR_DB) + decay, np.maximum), state[:, 1])
    rel = levels - (tops - decay)
    active = rel > -_SPEECH_DB
    measured = grid % 2 == 0
    f0s = pitches(active & measured)
    held = np.concatenate([[0.0], f0s[:-1]])  # each frame's previous: in its block, or its listener's last
    held[blocks.firsts] = [listener.f0 for listener in listeners]
    f0s = np.where(measured, f0s, held)
    loud = np.maximum(blocks.accumulate(levels + voice_decay, np.maximum), state[:, 2])
    # the background: the quietest of the last `_FLOOR_SPAN` levels, after each listener's `recent`
    history = np.full((_FLOOR_SPAN - 1 + int(blocks.sizes.max()), blocks.count), np.inf)  # [frame, listener]
    history[: _FLOOR_SPAN - 1] = np.transpose([listener.recent for listener in listeners])
    which = blocks.rows(np.arange(blocks.count))
    history[_FLOOR_SPAN - 1 + blocks.local, which] = levels
    spans = np.lib.stride_tricks.as_strided(history, (len(history) - _FLOOR_SPAN + 1, _FLOOR_SPAN, blocks.count),
                                            (history.strides[0], *history.strides), writeable=False)  # fmt: skip
    floor = spans.min(axis=1)[blocks.local, which]
    voice = (levels > loud - voice_decay - _VOICE_DB) & (levels > floor + _OVER_FLOOR_DB)
    voiced = (f0s > 0) & active
    semitones = 12 * np.log2(np.where(voiced, f0s, 1.0))  # (0 where unvoiced)
    sums = state[:, 3] + blocks.cumsum(semitones)
    counts = state[:, 4] + blocks.cumsum(voiced.astype(int))
    pitch = np.where(voiced, semitones - sums / np.maximum(counts, 1), np.nan)
    new = np.stack([rel, 10 ** (rel / 20), active, voice, pitch], axis=1)
    lasts = blocks.lasts
    ends = zip(tops[lasts].tolist(), loud[lasts].tolist(), sums[lasts].tolist(), counts[lasts].tolist(), strict=True)
    edges = np.append(blocks.firsts, blocks.total).tolist()
    for i, (listener, (a, b), end) in enumerate(zip(listeners, itertools.pairwise(edges), ends, strict=True)):
        drop = max(0, min(listener.checked - listener._KEEP, listener.next) - listener.base)
        listener.held = np.concatenate([listener.held[drop:], new[a:b]])
        listener.recent = history[b - a : b - a + _FLOOR_SPAN - 1, i].copy()
        listener.top, listener.voice_top, listener.log_f0_sum, voiced_count = end
        listener.voiced = int(voiced_count)
        listener.f0 = float(f0s[b - 1])
        listener.base += drop
        listener.next += b - a


def _gather(listeners: list[Listener], los: np.ndarray, his: np.ndarray) -> np.ndarray:
    """The rows of grid frames lo..hi-1 of each listener, one listener after another; frames before
    the first one held are unheard (`_UNHEARD`), and hi must not pass the frames measured."""
    spans = [(listener.held, lo - listener.base, hi - listener.base)
             for listener, lo, hi in zip(listeners, los.tolist(), his.tolist(), strict=True)]  # fmt: skip
    pieces = [held[max(0, a) : b] for held, a, b in spans]
    rows = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
    if all(a >= 0 for _, a, _ in spans):
        return rows
    blocks = Blocks.of(his - los)
    out = np.tile(_UNHEARD, (blocks.total, 1))
    out[blocks.local >= blocks.rows([max(0, -a) for _, a, _ in spans])] = rows
    return out


def _syllables(listeners: list[Listener], uptos: np.ndarray) -> list[list[tuple[int, float]]]:
    """For each listener, the stressed-syllable candidates (grid frame, strength 0–1) from its last
    checked grid frame to its `upto` - AHEAD (measured): loudness peaks 120 ms apart in speech."""
    found: list[list[tuple[int, float]]] = [[] for _ in listeners]
    firsts = np.array([listener.checked for listener in listeners])
    lasts = uptos - AHEAD
    some = np.flatnonzero(lasts >= firsts).tolist()
    if not some:
        return found
    for i in some:
        listeners[i].checked = int(lasts[i]) + 1
    firsts, lasts = firsts[some], lasts[some]
    # energy smoothed over 110 ms at first-1 .. last+1, from energy at first-6 .. last+6
    rows = _gather([listeners[i] for i in some], firsts - 6, lasts + 7)
    if not rows[:, _ACTIVE].any():  # (syllables peak in speech)
        return found
    energy = rows[:, _ENERGY]
    smooth = energy[:-10].copy()  # summed over 11 frames
    for shift in range(1, 11):
        smooth += energy[shift : len(energy) - 10 + shift]
    smooth /= 11
    checks = Blocks.of(lasts - firsts + 1)  # the grid frames checked
    owner = checks.rows(np.arange(len(some)))  # (an index into `some`)
    here = np.arange(checks.total) + 12 * owner + 1  # in `smooth` (each listener's rows have 12 more)
    rise = (smooth[here] >= smooth[here - 1]) & (smooth[here] > smooth[here + 1]) & (rows[here + 5, _ACTIVE] > 0)
    peaks = np.flatnonzero(rise)
    at = here[peaks] + 5  # in `rows`, where listener k's grid frame first - 6 is at checks.firsts[k] + 12 k
    grids = at - (checks.firsts + 12 * np.arange(len(some)) + 6 - firsts)[owner[peaks]]
    chosen: list[list[tuple[int, int]]] = [[] for _ in some]
    for k, j, row in zip(owner[peaks].tolist(), grids.tolist(), at.tolist(), strict=True):  # (per syllable)
        listener = listeners[some[k]]
        if j - listener.last_peak >= _SYLLABLE_GAP:
            chosen[k].append((j, row))
            listener.last_peak = j
    picked = [k for k, picks in enumerate(chosen) if picks]
    if picked:
        taken = np.array([row for k in picked for _, row in chosen[k]])
        scored = np.stack([rows[taken, _REL], rows[taken, _PITCH], np.full(len(taken), np.nan)], axis=1)
        blocks = Blocks.of([len(chosen[k]) for k in picked])
        strengths = _score([listeners[some[k]] for k in picked], blocks, scored).tolist()
        for k, a, b in zip(picked, blocks.firsts.tolist(), (blocks.lasts + 1).tolist(), strict=True):
            found[some[k]] = list(zip([j for j, _ in chosen[k]], strengths[a:b], strict=True))
    return found


def _score(listeners: list[Listener], blocks: Blocks, rows: np.ndarray) -> np.ndarray:
    """The strengths of each listener's new syllables (a block of `rows` each), each against the
    `_HISTORY` syllables before it; the listeners keep the last ones for next time."""
    every = [np.concatenate([np.full((_HISTORY, 3), np.nan), listener.peaks, new])
             for listener, new in zip(listeners, blocks.split(rows), strict=True)]  # fmt: skip
    lengths = np.array([len(e) for e in every])
    # a syllable's history: the `_HISTORY` rows before it in its listener's `every`
    starts = blocks.local + blocks.rows(np.cumsum(lengths) - lengths + [len(listener.peaks) for listener in listeners])
    before = np.concatenate(every)[starts[:, None] + np.arange(_HISTORY)].transpose(0, 2, 1)
    for listener, e in zip(listeners, every, strict=True):
        listener.peaks = e[-_HISTORY:][np.isfinite(e[-_HISTORY:, 0])]
    return _stress(rows, *_statistics(before, axis=2))


def reader(audio: np.ndarray) -> Samples:
    """`Samples` of a whole clip's 16 kHz audio (zeros outside it)."""

    def samples(start: int, stop: int) -> np.ndarray:
        out = np.zeros(stop - start, np.float32)
        a, b = max(start, 0), min(stop, len(audio))
        if b > a:
            out[a - start : b - start] = audio[a:b]
        return out

    return samples
