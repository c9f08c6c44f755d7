"""Post-processing for streams: a `Style` applied block by block, seeing at most 80 ms of future audio.

`post.process` sees the whole clip: it normalises loudness by the clip's loud parts, times breaths
by the next phrase, smooths with zero lag and widens "speaking" by 150 ms each side. A stream
cannot wait for any of that, so `OnlinePost` does the same jobs causally:

- prosody on a 100 Hz grid of 40 ms windows: loudness against a slowly decaying peak (not the
  clip's 95th percentile), pitch in semitones around the running mean of the voice so far,
  stressed syllables as loudness peaks scored against the peaks before them;
- blinks, gaze and head motion as seeded event schedules drawn as time goes on (gamma blink
  intervals, fixations and saccades, nods), reacting to pauses and phrase starts when they
  happen; the breath in comes early in a pause rather than just before the next phrase;
- emotion's lip shapes are held off while the mouth moved in the last 150 ms or voice is heard
  in the next 80 ms; face smoothing is a causal two-pole low-pass (it lags by about its time).

Every step depends only on the frames before it and the audio up to 80 ms after it, never on
how the audio was cut into chunks; the neural engine's offline `Animator.animate` runs this
same code on the whole clip, so offline and streaming give the same frames.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import emotion as emo
from . import life as lf
from . import post
from .animation import Animation
from .audio import SAMPLE_RATE
from .rig import ARKIT_NAMES, INDEX, POSE_NAMES

GRID = 100.0  # prosody frames per second
AHEAD = 6  # grid frames of look-ahead: a 40 ms window centred 60 ms ahead ends 80 ms ahead
_HOP = int(SAMPLE_RATE / GRID)
_HALF = 2 * _HOP  # half a 40 ms window
_F0_MIN, _F0_MAX = 60.0, 400.0
_DEG = math.pi / 180
_REFRACTORY = 0.6  # s between the blinks of the schedule (a double blink's second comes sooner)
_SPEECH_DB = 35.0
_PEAK_DECAY = 0.01  # dB per grid frame (1 dB/s) of the loudness reference
_FLOOR_DB = -60.0  # the reference never falls below this (dBFS)
#: The face rests (its speech weights eased to zero over `_REST_TAU` s) where no grid frame from
#: `_REST_BEHIND` before to `AHEAD` after is voice: within `_VOICE_DB` of a loudness reference that
#: decays `_VOICE_DECAY` dB a grid frame (6 dB/s, so quiet words soon after a shout still count).
_VOICE_DB, _VOICE_DECAY, _REST_BEHIND, _REST_TAU = 16.0, 0.06, 8, 0.03
_MOUTH = np.array([INDEX[n] for n in emo.LIP_SHAPES if n != "cheekPuff"])
_WINDOW = np.hanning(2 * _HALF)
_BATCH = 256  # windows measured at a time
_QUIET = 10 ** (-99.0 / 20)  # the loudness of a grid frame not measured (or forgotten)
_SMOOTH = {"lower": post._idx([*post._LOWER, "tongueOut"]), "upper": post._idx(post._SMOOTH_UPPER)}
Samples = Callable[[int, int], np.ndarray]  # (start, stop) absolute 16 kHz sample indices → audio


def _measure(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Level (dBFS) and f0 (Hz, 0 if unvoiced) of 40 ms windows [n, 640]."""
    if len(windows) > _BATCH:  # bounded memory for a long clip (its spectra would be ~100 KB a window)
        parts = [_measure(windows[i : i + _BATCH]) for i in range(0, len(windows), _BATCH)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    frames = windows.astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    level = 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-9)
    win = frames.shape[1]
    spec = np.fft.rfft(frames * _WINDOW, n=2 * win)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:, :win]
    ac /= np.maximum(ac[:, :1], 1e-12)
    lo, hi = int(SAMPLE_RATE / _F0_MAX), int(SAMPLE_RATE / _F0_MIN)
    first_negative = np.argmax(ac < 0, axis=1)
    ac = np.where(np.arange(win)[None, :] < first_negative[:, None], -1.0, ac)
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    peak = ac[np.arange(len(lag)), lag]
    return level, np.where(peak > 0.45, SAMPLE_RATE / lag, 0.0)


class OnlineProsody:
    """Loudness, speech activity, pitch and stressed syllables on the 100 Hz grid, in order.

    The measured grid frames [base, next) sit in arrays; frames more than `_KEEP` behind the last
    one checked for a syllable peak are dropped, so an hour-long stream holds a few KB."""

    _KEEP = 100

    def __init__(self) -> None:
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
        self.log_f0_sum, self.voiced = 0.0, 0
        self.checked = 0  # first grid frame not yet checked for a syllable peak
        self.last_peak = -100
        self.peaks: list[tuple[float, float]] = []  # (loudness dB, pitch) of the peaks so far

    def windows(self, upto: int, samples: Samples) -> np.ndarray:
        """The 40 ms windows [k, 640] of the grid frames not measured yet, up to `upto` (inclusive)."""
        if upto < self.next:
            return np.zeros((0, 2 * _HALF), np.float32)
        audio = samples(self.next * _HOP - _HALF, upto * _HOP + _HALF)
        return np.lib.stride_tricks.sliding_window_view(audio, 2 * _HALF)[::_HOP][: upto + 1 - self.next]

    def take(self, levels: np.ndarray, f0s: np.ndarray) -> None:
        """Take in the measurements (`_measure`) of the next grid frames, in order."""
        if not len(levels):
            return
        k = np.arange(self.next, self.next + len(levels))
        tops = np.maximum.accumulate(np.concatenate([[self.top], np.maximum(levels, _FLOOR_DB) + _PEAK_DECAY * k]))
        self.top = float(tops[-1])
        rel = levels - (tops[1:] - _PEAK_DECAY * k)
        active = rel > -_SPEECH_DB
        loud = np.maximum.accumulate(np.concatenate([[self.voice_top], levels + _VOICE_DECAY * k]))
        self.voice_top = float(loud[-1])
        voice = levels > loud[1:] - _VOICE_DECAY * k - _VOICE_DB
        voiced = (f0s > 0) & active
        semitones = 12 * np.log2(np.where(voiced, f0s, 1.0))
        sums = self.log_f0_sum + np.cumsum(np.where(voiced, semitones, 0.0))
        counts = self.voiced + np.cumsum(voiced)
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
        return (np.pad(self.active[a:b], (pad, 0)), np.pad(self.voice[a:b], (pad, 0)),
                np.pad(self.pitch[a:b], (pad, 0), constant_values=np.nan))  # fmt: skip

    def advance(self, upto: int, samples: Samples) -> list[tuple[int, float]]:
        """Measure grid frames up to `upto` (inclusive); return the stressed-syllable candidates
        (grid frame, strength 0–1) whose peak is now known (those up to `upto` - AHEAD)."""
        windows = self.windows(upto, samples)
        if len(windows):
            self.take(*_measure(windows))
        first, last = self.checked, upto - AHEAD
        if last < first:
            return []
        self.checked = last + 1
        # energy smoothed over 110 ms at first-1 .. last+1; frames not measured (or dropped) are quiet
        lo = first - 6
        energy = np.full(last + 7 - lo, _QUIET)  # lo .. last+6
        have = slice(max(lo, self.base), min(last + 7, self.next))
        energy[have.start - lo : have.stop - lo] = self.energy[have.start - self.base : have.stop - self.base]
        smooth = np.lib.stride_tricks.sliding_window_view(energy, 11).sum(axis=1) / 11  # at first-1 .. last+1
        here = smooth[1:-1]
        rise = (here >= smooth[:-2]) & (here > smooth[2:]) & self.active[first - self.base : last + 1 - self.base]
        return [a for j in first + np.flatnonzero(rise) if (a := self._peak(int(j))) is not None]

    def _peak(self, j: int) -> tuple[int, float] | None:
        """A syllable nucleus at grid frame j (a loudness peak in speech), 120 ms after the last."""
        if j - self.last_peak < 12:
            return None
        self.last_peak = j
        loud, pitch = float(self.rel[j - self.base]), float(self.pitch[j - self.base])
        strength = 0.5
        if len(self.peaks) >= 3:
            past = np.array(self.peaks)
            score = 0.55 * (loud - past[:, 0].mean()) / max(past[:, 0].std(), 1.0)
            pitches = past[np.isfinite(past[:, 1]), 1]
            if math.isfinite(pitch) and pitches.size >= 3:
                score += 0.45 * (pitch - pitches.mean()) / max(pitches.std(), 0.5)
            strength = 1 / (1 + math.exp(-1.5 * score))
        self.peaks = [*self.peaks[-49:], (loud, pitch)]
        return j, strength


def _one_pole(tau: float, fps: float) -> float:
    return 1.0 - math.exp(-1.0 / (fps * tau))


@dataclass
class _Blink:
    start: float
    dur: float
    depth: float
    lag: float
    less: float


@dataclass
class OnlineLife:
    """Blinks, gaze, head motion and breathing, one frame at a time (see `life` for the behaviour)."""

    config: lf.LifeConfig
    fps: float
    seed: int = 0
    rng: list[np.random.Generator] = field(init=False)

    def __post_init__(self) -> None:
        self.rng = [np.random.default_rng([self.seed, 100 + k]) for k in range(3)]
        b, g, h = self.rng
        # blinks
        self.mean_interval = 60.0 / self.config.blink_rate
        self.next_blink = float(b.uniform(0.3, 2.0))
        self.last_blink = -_REFRACTORY
        self.pending: list[float] = []
        self.blinks: list[_Blink] = []
        # gaze
        self.target = self._listener()
        self.prev = self.target
        self.saccade_start, self.saccade_dur = -1.0, 0.05
        self.fix_start, self.away = 0.0, False
        self.next_switch = float(g.uniform(2.0, 4.0))
        self.next_micro = float(g.uniform(0.4, 1.0))
        # head: three slow sinusoids per axis, as life._wander
        self.wander = []
        for std in (1.5, 1.0, 0.8):
            freqs, amps = h.uniform(0.05, 0.4, 3), h.uniform(0.5, 1.0, 3)
            amps *= std * _DEG * math.sqrt(2) / np.sqrt((amps**2).sum())
            self.wander.append((freqs, amps, h.uniform(0, 2 * math.pi, 3)))
        self.talking = self.pitch_lp = 0.0
        self.gaze_lp: np.ndarray | None = None
        self.nods: list[tuple[float, float, float]] = []
        self.last_nod = -1.0
        # pauses and breathing
        self.pause_start: float | None = 0.0
        self.armed = False  # a long pause: the next phrase start draws the eyes away
        self.inhale = 0.0

    def _listener(self) -> np.ndarray:
        g = self.rng[1]
        return np.array([g.normal(0, 1.5) * _DEG, g.normal(0, 1.0) * _DEG])

    def _gaze_at(self, t: float) -> np.ndarray:
        x = min(1.0, max(0.0, (t - self.saccade_start) / self.saccade_dur))
        return self.prev + (self.target - self.prev) * (x**3 * (10 - 15 * x + 6 * x * x))

    def _shift(self, at: float, speaking: bool, target: np.ndarray | None = None) -> None:
        g = self.rng[1]
        self.prev = self._gaze_at(at)
        if target is None:
            if self.away:
                target = np.array([g.choice([-1, 1]) * g.uniform(6, 15) * _DEG, g.uniform(-10, 4) * _DEG])
            else:
                target = self._listener()
            if self.away:
                hold = g.uniform(0.5, 1.5) if speaking else g.uniform(0.4, 1.2)
            else:
                hold = g.uniform(1.0, 3.0) if speaking else g.uniform(2.0, 4.0)
            self.fix_start, self.next_switch = at, at + float(hold)
            self.next_micro = at + float(g.uniform(0.4, 1.0))
        self.target = target
        amp = math.hypot(*(self.target - self.prev)) / _DEG
        self.saccade_start, self.saccade_dur = at, 0.021 + 0.0022 * amp
        if amp > 10 and self.config.blink and self.rng[0].random() < 0.3:
            self.pending.append(at + 0.02)  # large gaze shifts invite a blink

    def _blink_step(self, t: float, index: int) -> np.ndarray:
        b = self.rng[0]
        while True:
            due = min([self.next_blink, *self.pending])
            if due > t + 0.02:
                break
            if due in self.pending:
                self.pending.remove(due)
            else:
                self.next_blink = math.inf
            ready = self.last_blink + _REFRACTORY
            if due < ready:  # too soon after the last blink: a scheduled one waits, an extra one is dropped
                if self.next_blink == math.inf:
                    self.next_blink = ready  # (`due < ready` is then false on the next pass: it blinks)
                continue
            times = [due] + ([due + float(b.uniform(0.28, 0.45))] if b.random() < 0.07 else [])
            for at in times:
                dur = b.uniform(0.3, 0.4) if b.random() < 0.15 else b.uniform(0.12, 0.3)
                self.blinks.append(_Blink(at, float(dur), float(b.uniform(0.85, 1.0)),
                                          float(b.uniform(-0.015, 0.015)), float(b.uniform(0, 0.08))))  # fmt: skip
            self.last_blink = times[-1]
            self.next_blink = self.last_blink + max(_REFRACTORY, float(b.gamma(3.0, self.mean_interval / 3.0)))
        lids = np.zeros(2)
        for blink in self.blinks:
            for eye, (lag, less) in enumerate(((0.0, 0.0), (blink.lag, blink.less))):
                start = blink.start + lag
                close, hold = 0.3 * blink.dur, 0.1 * blink.dur
                u = t - start
                if u < 0:
                    lid = 0.0
                elif u < close:
                    lid = float(lf._ease(np.array(u / close)))
                else:
                    lid = 1 - float(lf._ease(np.array((u - close - hold) / (blink.dur - close - hold))))
                if index == round((start + close + 0.5 * hold) * self.fps):
                    lid = 1.0  # the closed frame is reached whatever the frame rate
                lids[eye] = max(lids[eye], lid * (blink.depth - less))
        self.blinks = [k for k in self.blinks if t < k.start + k.dur + 0.03]
        return lids

    def step(
        self, t: float, index: int, active: bool, ahead: bool, pitch: float, accents: list[tuple[float, float]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Blinks [2], gaze [2], head [3] and inhale (0–1) at time `t` (frame `index`)."""
        cfg, fps = self.config, self.fps
        # pauses: phrase ends invite a blink and bring the eyes back; phrase starts draw them away
        event = None
        if active:
            self.pause_start = None
        elif self.pause_start is None:
            self.pause_start = t
        pause = 0.0 if self.pause_start is None else t - self.pause_start
        ending = self.pause_start is not None and pause - 1 / fps < 0.25 <= pause
        if ending and cfg.blink and self.rng[0].random() < 0.45:
            self.pending.append(t + 0.02 + float(self.rng[0].uniform(0.0, 0.15)))
        if self.pause_start is not None and pause - 1 / fps < 0.4 <= pause:
            event, self.armed = "back", True
        if self.armed and ahead and t > 0.3:
            event, self.armed = "away", False
        gaze = np.zeros(2)
        if cfg.gaze:
            if event and t > self.fix_start + 0.3:
                self.away = event == "away" and self.rng[1].random() < 0.7
                self._shift(t, active)
            elif t >= self.next_switch:
                self.away = not self.away and self.rng[1].random() < (0.5 if active else 0.3)
                self._shift(self.next_switch, active)
            elif self.next_micro <= t < self.next_switch - 0.2:
                g = self.rng[1]
                offset = np.array([g.normal(0, 0.6) * _DEG, g.normal(0, 0.4) * _DEG])
                self._shift(self.next_micro, active, self.target + offset)
                self.next_micro += float(g.uniform(0.5, 1.0))
            gaze = self._gaze_at(t)
        blinks = self._blink_step(t, index) if cfg.blink else np.zeros(2)
        # a breath in early in each pause, let go when the voice comes back
        inhale = 0.0
        if self.pause_start is not None and not ahead and 0.25 < pause < 0.8:
            inhale = math.sin(math.pi * ((pause - 0.25) / 0.55) ** 0.7)
        self.inhale += _one_pole(0.05, fps) * (inhale - self.inhale)
        head = np.zeros(3)
        if cfg.head:
            self.talking += _one_pole(0.4, fps) * (float(active) - self.talking)
            for axis, (freqs, amps, phases) in enumerate(self.wander):
                head[axis] = float((amps * np.sin(2 * math.pi * freqs * t + phases)).sum())
            head *= 0.6 + 0.8 * self.talking
            voice = 0.0 if math.isnan(pitch) or not active else pitch
            self.pitch_lp += _one_pole(0.25, fps) * (voice - self.pitch_lp)
            head[1] += min(3 * _DEG, max(-3 * _DEG, 0.25 * _DEG * self.pitch_lp))
            for _, strength in accents:
                if strength >= 0.6 and t - self.last_nod >= 0.4:
                    self.last_nod = t
                    amp = (1.5 + 3.0 * (strength - 0.6) / 0.4) * _DEG * float(self.rng[2].uniform(0.7, 1.2))
                    self.nods.append((t, amp, float(self.rng[2].choice([-1, 1]))))
            for at, amp, sign in self.nods:
                u = t - at
                bump = math.exp(-0.5 * ((u - 0.1) / (0.06 if u < 0.1 else 0.15)) ** 2)
                head[1] -= amp * bump
                head[2] += 0.3 * amp * bump * sign
            self.nods = [n for n in self.nods if t - n[0] < 0.8]
            if self.gaze_lp is None:
                self.gaze_lp = gaze.copy()
            self.gaze_lp += _one_pole(0.3, fps) * (gaze - self.gaze_lp)
            head[0] += 0.25 * self.gaze_lp[0]
            head[1] += 0.15 * self.gaze_lp[1]
            head *= cfg.head_strength
            if cfg.breathing:
                head[1] += 1.0 * _DEG * self.inhale * cfg.head_strength
        return blinks, gaze, head, self.inhale if cfg.breathing else 0.0


_BREATH = np.zeros(len(ARKIT_NAMES))
for _name, _amp in (("jawOpen", 0.05), ("mouthLowerDownLeft", 0.03), ("mouthLowerDownRight", 0.03),
                    ("noseSneerLeft", 0.08), ("noseSneerRight", 0.08)):  # fmt: skip
    _BREATH[INDEX[_name]] = _amp


class _Patterns:
    """An emotion's motion over time (panting, winces, trembling chin), frame by frame."""

    def __init__(self, seed: int, fps: float) -> None:
        self.fps = fps
        self.rng = [np.random.default_rng([seed, 7, k]) for k in range(3)]
        self.breath_offset = float(self.rng[0].uniform(0, 6))
        self.breath_phase = self.tremor_phase = 0.0
        self.winces: list[float] = [float(self.rng[1].uniform(0, 1.0))]

    def step(self, t: float, w: np.ndarray) -> np.ndarray:
        out = np.zeros(len(ARKIT_NAMES))
        rate = 0.65 + 0.1 * math.sin(2 * math.pi * 0.05 * t + self.breath_offset)
        self.breath_phase += 2 * math.pi * rate / self.fps
        self.tremor_phase += 2 * math.pi * (5 + float(self.rng[2].normal(0, 0.8))) / self.fps
        while self.winces[-1] < t + 1.0:
            self.winces.append(self.winces[-1] + float(self.rng[1].uniform(1.5, 3.5)))
        self.winces = [a for a in self.winces if a > t - 1.0]
        breath_w, pain_w, grief_w = (w[emo.EMOTIONS.index(e)] for e in ("outofbreath", "pain", "grief"))
        if breath_w:
            breath = (0.5 - 0.5 * math.cos(self.breath_phase)) * breath_w
            for name, amp in (("jawOpen", 0.2), ("mouthLowerDownLeft", 0.1), ("mouthLowerDownRight", 0.1),
                              ("noseSneerLeft", 0.25), ("noseSneerRight", 0.25), ("browInnerUp", 0.1)):  # fmt: skip
                out[INDEX[name]] += amp * breath
        if pain_w:
            wince = min(1.0, sum(math.exp(-0.5 * ((t - a) / 0.18) ** 2) for a in self.winces)) * pain_w
            for name, amp in (("eyeSquint", 0.3), ("browDown", 0.25), ("cheekSquint", 0.2), ("noseSneer", 0.2)):
                for side in ("Left", "Right"):
                    out[INDEX[name + side]] += amp * wince
        if grief_w:
            out[INDEX["mouthShrugLower"]] += 0.15 * (0.5 + 0.5 * math.sin(self.tremor_phase)) * grief_w
        return out


def measure_ahead(jobs: list[tuple[OnlinePost, int, Samples]]) -> None:
    """Measure the prosody that the next n frames of several streams need in one batch: the same
    as each stream doing it frame by frame in `process`, with far fewer small FFTs."""
    found = [(post.prosody, post.prosody.windows(post.grid(post.frame + n - 1), samples)) for post, n, samples in jobs]
    found = [(p, w) for p, w in found if len(w)]
    if not found:
        return
    levels, f0s = _measure(np.concatenate([w for _, w in found]))
    start = 0
    for prosody, w in found:
        prosody.take(levels[start : start + len(w)], f0s[start : start + len(w)])
        start += len(w)


class OnlinePost:
    """`post.process` for a stream: give it speech frames in order, get finished frames back."""

    def __init__(self, style: post.Style, fps: float) -> None:
        self.fps = fps
        self.face = style.face
        self.settings = style.emotion_settings
        self.life = style.life
        emotion = style.emotion
        self.track = emotion if isinstance(emotion, emo.EmotionTrack) else emo.EmotionTrack.constant(
            {} if emotion is None or isinstance(emotion, str) else emotion  # "auto" needs a transcript
        )
        self.emotion_state: np.ndarray | None = None
        self.patterns = _Patterns(style.seed, fps)
        self.live = OnlineLife(style.life, fps, style.seed)
        self.prosody = OnlineProsody()
        self.recent_busy: deque[float] = deque(maxlen=max(1, round(0.15 * fps)) + 1)
        self.smooth: dict[str, list[np.ndarray] | None] = {"lower": None, "upper": None}
        self.pose = post.keep_pose((), style.face, style.life)  # fixed, so every block has the same channels
        self.frame = 0
        self.voice_gate = 1.0  # the share of the speech weights let through (`_VOICE_DB`)

    def grid(self, frame: int) -> int:
        """The last prosody grid frame the output frame `frame` needs (80 ms past its time)."""
        return int(self._nearest(np.array(frame))) + AHEAD

    def _nearest(self, frames: np.ndarray) -> np.ndarray:
        """The grid frames nearest to output frames' times."""
        return np.floor(frames / self.fps * GRID + 0.5).astype(int)

    def set_emotion(self, weights: dict[str, float] | emo.EmotionTrack) -> None:
        """A new emotion from the next frame on (eased in by the transition time)."""
        self.track = weights if isinstance(weights, emo.EmotionTrack) else emo.EmotionTrack.constant(weights)

    def set_face(self, face: post.FaceParams) -> None:
        """New face parameters from the next frame on."""
        self.face = face

    def _smooth(self, w: np.ndarray) -> None:
        for region, sigma in (("lower", self.face.lower_face_smoothing), ("upper", self.face.upper_face_smoothing)):
            cols = _SMOOTH[region]
            if sigma <= 0:
                self.smooth[region] = None
                continue
            state = self.smooth[region]
            if state is None:
                state = [w[cols].astype(np.float64), w[cols].astype(np.float64)]
            a = _one_pole(sigma / 2, self.fps)
            state[0] += a * (w[cols] - state[0])
            state[1] += a * (state[0] - state[1])
            self.smooth[region] = state
            w[cols] = state[1]

    def process(self, speech: np.ndarray, samples: Samples) -> Animation:
        """Finished frames for the next speech frames [n, 52]; `samples` reads the 16 kHz audio,
        which must be there up to 85 ms past the last frame (zeros past the end of a stream)."""
        n = speech.shape[0]
        out = np.zeros((n, len(ARKIT_NAMES)))
        blinks, gaze, head, breath = np.zeros((n, 2)), np.zeros((n, 2)), np.zeros((n, 3)), np.zeros((n, 52))
        life_on = self.life.blink or self.life.gaze or self.life.head or self.life.breathing
        times = (self.frame + np.arange(n)) / self.fps
        targets = emo.settle(self.track.sample(times), self.settings)
        busy_now = np.clip(np.abs(speech[:, _MOUTH]).max(axis=1) / 0.06, 0.0, 1.0)
        # prosody for the whole block: output frame i looks at grid frame js[i] and AHEAD past it
        js = self._nearest(self.frame + np.arange(n))
        found: list[tuple[int, float]] = []
        active = voice = np.zeros(n + _REST_BEHIND + AHEAD, bool)
        pitch = np.zeros(n + _REST_BEHIND + AHEAD)
        if n:  # grid frames js[0] - _REST_BEHIND .. js[-1] + AHEAD
            found = self.prosody.advance(int(js[-1]) + AHEAD, samples)
            active, voice, pitch = self.prosody.at(int(js[0]) - _REST_BEHIND, int(js[-1]) + AHEAD + 1)
        accents: list[list[tuple[float, float]]] = [[] for _ in range(n)]
        for g, strength in found:  # a peak is known from the first frame that looks at its grid frame
            accents[int(np.searchsorted(js, g))].append((g / GRID, strength))
        for i in range(n):
            t = self.frame / self.fps
            j = int(js[i] - js[0]) + _REST_BEHIND
            ahead = bool(active[j : j + AHEAD + 1].any())
            w = speech[i].astype(np.float64)
            heard = float(voice[j - _REST_BEHIND : j + AHEAD + 1].any())
            self.voice_gate += _one_pole(_REST_TAU, self.fps) * (heard - self.voice_gate)
            w *= self.voice_gate
            target = targets[i]
            if self.emotion_state is None or self.settings.transition <= 0:
                self.emotion_state = target.copy()
            else:
                self.emotion_state += _one_pole(self.settings.transition, self.fps) * (target - self.emotion_state)
            self.recent_busy.append(float(busy_now[i]))
            if self.emotion_state.any():
                pose = np.clip(self.emotion_state @ emo._POSE_MATRIX + self.patterns.step(t, self.emotion_state), 0, 1)
                busy = np.array([max(max(self.recent_busy), float(ahead))])
                w = emo.blend(Animation(w[None].astype(np.float32), self.fps), pose[None], busy).weights[0]
            else:
                self.patterns.step(t, self.emotion_state)
            self._smooth(w)
            out[i] = w
            if life_on:
                blinks[i], gaze[i], head[i], inhale = self.live.step(
                    t, self.frame, bool(active[j]), ahead, float(pitch[j]), accents[i]
                )
                breath[i] = _BREATH * inhale
            self.frame += 1
        post.strengths(out, self.face)
        angles = np.zeros((n, len(POSE_NAMES)))
        if life_on:
            out = post.add_life(out, angles, lf.Life(blinks, gaze, head, breath, (), ()), self.face)
        return post.finish(out.astype(np.float32), angles, self.face, self.pose, self.fps)
