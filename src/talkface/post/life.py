"""Liveliness: blinks, eye gaze, head motion and breathing, so that a talking face looks alive.

Everything is drawn from a seeded random generator (each part from its own stream, so switching
one off leaves the others unchanged) and timed by the speech's prosody as it goes:

- Blinks come every few seconds (gamma-distributed intervals, 10 a minute by default) and
  more often at phrase ends and with large gaze shifts, which brings speech with pauses to
  about 20 a minute, as in conversation; each lasts 120–400 ms, closes fast and opens slowly,
  and the eyes differ a little in timing and depth. One in fourteen is a double blink.
- Gaze rests in fixations and jumps between them in saccades whose duration follows the main
  sequence (about 21 ms + 2.2 ms per degree). A speaker looks away as a phrase starts and back
  in the pause after it; small fixational saccades keep the eyes from freezing.
- The head wanders slowly, moves more while speaking, follows the voice's pitch a little, nods
  on stressed syllables and turns partly with large gaze shifts.
- In a pause the speaker breathes in: the lips part slightly, the nostrils flare and the chin
  lifts. A stream breathes early in the pause; a whole clip, which knows when the next phrase
  comes, breathes just before it.

`Life.step` runs over a block of frames: the events (a blink, a saccade, a nod, a pause's turn)
are handled one by one in time order, and the curves between them are drawn with numpy, so the
same frames come out however the frames are cut into blocks. Angles are radians. Yaw > 0 turns
towards the character's left, pitch > 0 looks up, roll > 0 tilts the top of the head towards
the character's left shoulder.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field

import numpy as np

from ..rig import ARKIT_NAMES, INDEX
from .prosody import Cues
from .settings import LifeConfig
from .smoothing import Smoother

_DEG = math.pi / 180
#: Gaze angle (rad) at which an eyeLook* shape reaches 1.
LOOK_RANGE = 30 * _DEG

# --- the one table of liveliness timing (seconds, degrees, probabilities) ---
FIRST_BLINK = (0.3, 2.0)  # the first blink comes early, even in a short clip
REFRACTORY = 0.6  # between the blinks of the schedule (a double blink's second comes sooner)
BLINK_SHAPE = 3.0  # gamma shape of the intervals (mean 60 / blink_rate)
DOUBLE_BLINK, DOUBLE_GAP = 0.07, (0.28, 0.45)
LONG_BLINK, LONG_LENGTH, SHORT_LENGTH = 0.15, (0.3, 0.4), (0.12, 0.3)
BLINK_DEPTH, EYE_LAG, EYE_LESS = (0.85, 1.0), 0.015, 0.08  # the second eye lags by ±15 ms, closes up to 8 % less
BLINK_CLOSE, BLINK_HOLD = 0.3, 0.1  # shares of a blink spent closing and closed
BLINK_DUE = 0.02  # a blink is drawn this long before it starts
PHRASE_END, PHRASE_END_BLINK, PHRASE_END_DELAY = 0.25, 0.45, (0.02, 0.17)  # a pause this long invites a blink
BIG_SHIFT, BIG_SHIFT_BLINK = 10.0, 0.3  # a saccade over 10° invites a blink
GAZE_BACK = 0.4  # a pause this long brings the eyes back; the next phrase draws them away
AWAY_AT_PHRASE, AWAY_SPEAKING, AWAY_SILENT = 0.7, 0.5, 0.3  # chances of looking away
LISTENER_SPREAD = (1.5, 1.0)  # yaw, pitch standard deviation of looking at the listener
AWAY_YAW, AWAY_PITCH = (6.0, 15.0), (-10.0, 4.0)
HOLD = {(True, True): (0.5, 1.5), (True, False): (0.4, 1.2), (False, True): (1.0, 3.0), (False, False): (2.0, 4.0)}
FIRST_SWITCH = (2.0, 4.0)  # (holds by (looking away, speaking))
MICRO_FIRST, MICRO_NEXT, MICRO_SPREAD, MICRO_CLEAR = (0.4, 1.0), (0.5, 1.0), (0.6, 0.4), 0.2  # fixational saccades
EVENT_AFTER, AWAY_AFTER = 0.3, 0.3  # a pause turns the gaze this long after a fixation starts, and not at the start
SACCADE = (0.021, 0.0022)  # duration: s + s per degree
WANDER = (1.5, 1.0, 0.8), (0.05, 0.4)  # head yaw, pitch, roll standard deviation; sinusoid frequencies (Hz)
TALKING_TAU, TALKING_GAIN = 0.2, (0.6, 0.8)  # the head moves 0.6× silent, 1.4× speaking
PITCH_TAU, PITCH_GAIN, PITCH_MAX = 0.125, 0.25, 3.0  # the chin follows the voice: deg per semitone
NOD_STRESS, NOD_GAP, NOD_AMP, NOD_SPREAD = 0.6, 0.4, (1.5, 3.0), (0.7, 1.2)  # amp deg: 1.5 at 0.6, 4.5 at 1
NOD_PEAK, NOD_RISE, NOD_FALL, NOD_ROLL, NOD_LENGTH = 0.1, 0.06, 0.15, 0.3, 0.8
FOLLOW_TAU, FOLLOW = 0.15, (0.25, 0.15)  # the head turns with the eyes: share of yaw, pitch
BREATH_PAUSE, BREATH_TAU, BREATH_LIFT = (0.25, 0.8), 0.025, 1.0  # a stream's breath: from .25 to .8 s into a pause
BREATH_BEFORE, BREATH_LENGTH, BREATH_AFTER = 0.35, 0.55, 0.05  # a whole clip's: in pauses over .35 s, up to
# .55 s long, starting at least .05 s into the pause and ending as the phrase starts
BREATH = {"jawOpen": 0.05, "mouthLowerDownLeft": 0.03, "mouthLowerDownRight": 0.03,
          "noseSneerLeft": 0.08, "noseSneerRight": 0.08}  # fmt: skip
_FOLLOW = np.array(FOLLOW)
_BREATH = np.zeros(len(ARKIT_NAMES))
_BREATH[[INDEX[n] for n in BREATH]] = list(BREATH.values())


def ease(x: np.ndarray) -> np.ndarray:
    """Smoothstep on [0, 1]."""
    x = x.clip(0.0, 1.0)
    return x * x * (3 - 2 * x)


def _breath(x: np.ndarray) -> np.ndarray:
    """A breath in over x from 0 to 1: quickly in, slowly let go."""
    return np.where((x > 0) & (x < 1), np.sin(np.pi * x.clip(0.0, 1.0) ** 0.7), 0.0)


def _min_jerk(x: np.ndarray) -> np.ndarray:
    x = x.clip(0.0, 1.0)
    return x**3 * (10 - 15 * x + 6 * x * x)


#: The eyeLook* shapes, each following one gaze angle one way (`_LOOK_AXIS`, `_LOOK_SIGN`): left, right, up, down.
LOOKS = ("eyeLookOutLeft", "eyeLookInRight", "eyeLookInLeft", "eyeLookOutRight",
         "eyeLookUpLeft", "eyeLookUpRight", "eyeLookDownLeft", "eyeLookDownRight")  # fmt: skip
_LOOK_AXIS = np.array([0, 0, 0, 0, 1, 1, 1, 1])
_LOOK_SIGN = np.array([1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0])


def gaze_shapes(gaze: np.ndarray) -> np.ndarray:
    """The weights [frames, 8] of the `LOOKS` shapes for gaze angles [frames, 2] (yaw, pitch)."""
    return (gaze[:, _LOOK_AXIS] / LOOK_RANGE * _LOOK_SIGN).clip(0.0, 1.0)


@dataclass(frozen=True)
class Layers:
    """A block's motion before face parameters scale it: blinks [n, 2] (left, right lid closure
    0–1), gaze [n, 2] (yaw, pitch), head [n, 3] (yaw, pitch, roll), breath [n, 52] (ARKit weights
    added in pauses), and the times of the blinks, saccades and nods that started in the block."""

    blinks: np.ndarray
    gaze: np.ndarray
    head: np.ndarray
    breath: np.ndarray
    blink_times: list[float] = field(default_factory=list)
    saccade_times: list[float] = field(default_factory=list)
    nod_times: list[float] = field(default_factory=list)


@dataclass
class _Saccade:
    frame: int  # the first frame that shows it
    start: float
    dur: float
    prev: np.ndarray
    target: np.ndarray

    def at(self, t: np.ndarray) -> np.ndarray:
        """Where the eyes are [len(t), 2] at times t."""
        return self.prev + (self.target - self.prev) * _min_jerk((t - self.start) / self.dur)[:, None]


class Life:
    """Blinks, gaze, head motion and breathing of one stream or clip, a block of frames at a time.

    `zero_lag` (a whole clip in one block) smooths the head's motion without lag; `breath_ahead`
    (the same) times each breath by the phrase after the pause."""

    def __init__(self, config: LifeConfig, fps: float, seed: int = 0, *, zero_lag: bool = False,
                 breath_ahead: bool = False) -> None:  # fmt: skip
        self.config, self.fps, self.breath_ahead = config, fps, breath_ahead
        self.rng = [np.random.default_rng([seed, 100 + k]) for k in range(3)]
        b, g, h = self.rng
        # blinks: the next on the schedule, extra ones asked for, and those still being drawn
        self.mean_interval = 60.0 / config.blink_rate
        self.next_blink = float(b.uniform(*FIRST_BLINK))
        self.last_blink = -REFRACTORY
        self.pending: list[float] = []
        self.blinks: list[tuple[int, float, float, float, float, float]] = []  # frame, start, dur, depth, lag, less
        # gaze
        here = self._listener()
        self.saccades = [_Saccade(-1, -1.0, 0.05, here, here)]  # the one shown at the block's start, then new ones
        self.fix_start, self.away = 0.0, False
        self.next_switch = float(g.uniform(*FIRST_SWITCH))
        self.next_micro = float(g.uniform(*MICRO_FIRST))
        # head: three slow sinusoids per axis, as (angular frequencies, amplitudes, phases) [3 axes, 3]
        wander = []
        for std in WANDER[0]:
            freqs, amps = h.uniform(*WANDER[1], 3), h.uniform(0.5, 1.0, 3)
            amps *= std * _DEG * math.sqrt(2) / np.sqrt((amps**2).sum())
            wander.append((2 * math.pi * freqs, amps, h.uniform(0, 2 * math.pi, 3)))
        self.wander = [np.array(column) for column in zip(*wander, strict=True)]
        self.talking = Smoother(TALKING_TAU, fps, zero_lag)
        self.voice_pitch = Smoother(PITCH_TAU, fps, zero_lag)
        self.follow = Smoother(FOLLOW_TAU, fps, zero_lag)
        self.inhale = Smoother(BREATH_TAU, fps)
        self.nods: list[tuple[int, float, float, float]] = []  # frame, time, amplitude, roll sign
        self.last_nod = -1.0
        # pauses: when the one going on began (None while speaking); a long one arms the next phrase's look away
        self.pause_start: float | None = 0.0
        self.armed = False

    def _listener(self) -> np.ndarray:
        g = self.rng[1]
        return np.array([g.normal(0, LISTENER_SPREAD[0]) * _DEG, g.normal(0, LISTENER_SPREAD[1]) * _DEG])

    def step(self, first: int, cues: Cues) -> Layers:
        """The layers of frames first..first+n-1, with the cues of those frames."""
        n, fps, cfg = len(cues.active), self.fps, self.config
        t = (first + np.arange(n)) / fps
        pause = self._pauses(t, cues.active)  # (0 while speaking: no threshold below is crossed then)
        before = pause - 1 / fps
        crossing = (before < PHRASE_END) & (pause >= PHRASE_END)
        back = (before < GAZE_BACK) & (pause >= GAZE_BACK)
        times: dict[str, list[float]] = {"blink": [], "saccade": [], "nod": []}
        self._events(first, t, cues, crossing, back, times)
        gaze = self._gaze(first, t) if cfg.gaze else np.zeros((n, 2))
        blinks = self._blinks(first, t) if cfg.blink else np.zeros((n, 2))
        inhale = self._inhale(t, cues, pause)
        head = np.zeros((n, 3))
        if cfg.head:
            head = self._head(first, t, cues, gaze) * cfg.head_strength
            if cfg.breathing:
                head[:, 1] += BREATH_LIFT * _DEG * inhale * cfg.head_strength
        breath = _BREATH * inhale[:, None] if cfg.breathing else np.zeros((n, len(ARKIT_NAMES)))
        return Layers(blinks, gaze, head, breath, times["blink"], times["saccade"], times["nod"])

    def _pauses(self, t: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Seconds since the pause going on began, per frame (0 while speaking)."""
        n = len(t)
        if not n:
            return np.zeros(0)
        last = np.maximum.accumulate(np.where(active, np.arange(n), -1))
        before = t[0] if self.pause_start is None else self.pause_start
        start = np.where(last >= 0, t[np.minimum(last + 1, n - 1)], before)
        self.pause_start = None if active[-1] else float(start[-1])
        return np.where(active, 0.0, t - start)

    def _events(self, first: int, t: np.ndarray, cues: Cues, crossing: np.ndarray, back: np.ndarray,
                times: dict[str, list[float]]) -> None:  # fmt: skip
        """Handle every frame where something happens, in order: a loop over events, not frames."""
        cfg, n = self.config, len(t)
        due_at = t + BLINK_DUE
        crossings = crossing.nonzero()[0].tolist() if cfg.blink else []
        backs = back.nonzero()[0].tolist() if cfg.gaze else []
        # (the frames that may look away: wanted only once a pause, maybe this one, has armed it)
        ready = np.flatnonzero(cues.ahead & (t > AWAY_AFTER)).tolist() if self.armed or backs else []
        accents: dict[int, list[tuple[int, float, float]]] = {}
        for accent in cues.accents if cfg.head else []:  # a loop over syllables
            if accent[2] >= NOD_STRESS:
                accents.setdefault(accent[0], []).append(accent)
        nod_frames = sorted(accents)
        crossed, went_back = set(crossings), set(backs)
        i = 0
        while i < n:
            k = n
            for frames in (crossings, backs, nod_frames, *([ready] if self.armed else [])):
                j = bisect_left(frames, i)
                if j < len(frames):
                    k = min(k, frames[j])
            if cfg.gaze:
                k = min(k, max(i, int(t.searchsorted(self.next_switch))))
                micro = max(i, int(t.searchsorted(self.next_micro)))
                if micro < n and t[micro] < self.next_switch - MICRO_CLEAR:
                    k = min(k, micro)
            if cfg.blink:
                k = min(k, max(i, int(due_at.searchsorted(min([self.next_blink, *self.pending])))))
            if k >= n:
                break
            self._frame(first + k, float(t[k]), bool(cues.active[k]), bool(cues.ahead[k]), k in crossed,
                        k in went_back, accents.get(k, []), times)  # fmt: skip
            i = k + 1

    def _frame(self, index: int, t: float, active: bool, ahead: bool, crossing: bool, back: bool,
               accents: list[tuple[int, float, float]], times: dict[str, list[float]]) -> None:  # fmt: skip
        """What happens at one frame: a pause invites a blink or turns the gaze, saccades, blinks, nods."""
        b, g, h = self.rng
        cfg = self.config
        event = None
        if crossing and b.random() < PHRASE_END_BLINK:
            self.pending.append(t + float(b.uniform(*PHRASE_END_DELAY)))
        if back:
            event, self.armed = "back", True
        if self.armed and ahead and t > AWAY_AFTER:
            event, self.armed = "away", False
        if cfg.gaze:
            if event and t > self.fix_start + EVENT_AFTER:
                self.away = event == "away" and g.random() < AWAY_AT_PHRASE
                self._shift(index, t, active, times)
            elif t >= self.next_switch:
                self.away = not self.away and g.random() < (AWAY_SPEAKING if active else AWAY_SILENT)
                self._shift(index, self.next_switch, active, times)
            elif self.next_micro <= t < self.next_switch - MICRO_CLEAR:
                offset = np.array([g.normal(0, MICRO_SPREAD[0]) * _DEG, g.normal(0, MICRO_SPREAD[1]) * _DEG])
                self._shift(index, self.next_micro, active, times, self.saccades[-1].target + offset)
                self.next_micro += float(g.uniform(*MICRO_NEXT))
        if cfg.blink:
            self._schedule(index, t, times)
        for _, at, strength in accents:
            if at - self.last_nod >= NOD_GAP:
                self.last_nod = at
                stress = (strength - NOD_STRESS) / (1 - NOD_STRESS)
                amp = (NOD_AMP[0] + NOD_AMP[1] * stress) * _DEG * float(h.uniform(*NOD_SPREAD))
                self.nods.append((index, at, amp, float(h.choice([-1, 1]))))
                times["nod"].append(at)

    def _shift(self, index: int, at: float, speaking: bool, times: dict[str, list[float]],
               target: np.ndarray | None = None) -> None:  # fmt: skip
        """A saccade starting at time `at`, shown from frame `index` on."""
        g = self.rng[1]
        prev = self.saccades[-1].at(np.array([at]))[0]
        if target is None:
            if self.away:
                target = np.array([g.choice([-1, 1]) * g.uniform(*AWAY_YAW) * _DEG, g.uniform(*AWAY_PITCH) * _DEG])
            else:
                target = self._listener()
            self.fix_start, self.next_switch = at, at + float(g.uniform(*HOLD[self.away, speaking]))
            self.next_micro = at + float(g.uniform(*MICRO_FIRST))
        amp = math.hypot(*(target - prev)) / _DEG
        self.saccades.append(_Saccade(index, at, SACCADE[0] + SACCADE[1] * amp, prev, target))
        times["saccade"].append(at)
        if amp > BIG_SHIFT and self.config.blink and self.rng[0].random() < BIG_SHIFT_BLINK:
            self.pending.append(at + BLINK_DUE)

    def _schedule(self, index: int, t: float, times: dict[str, list[float]]) -> None:
        """Draw the blinks due by `t` (on the schedule, or asked for), shown from frame `index` on."""
        b = self.rng[0]
        while True:
            due = min([self.next_blink, *self.pending])
            if due > t + BLINK_DUE:
                break
            if due in self.pending:
                self.pending.remove(due)
            else:
                self.next_blink = math.inf
            ready = self.last_blink + REFRACTORY
            if due < ready:  # too soon after the last blink: a scheduled one waits, an extra one is dropped
                if self.next_blink == math.inf:
                    self.next_blink = ready  # (`due < ready` is then false on the next pass: it blinks)
                continue
            starts = [due] + ([due + float(b.uniform(*DOUBLE_GAP))] if b.random() < DOUBLE_BLINK else [])
            for at in starts:
                dur = b.uniform(*LONG_LENGTH) if b.random() < LONG_BLINK else b.uniform(*SHORT_LENGTH)
                self.blinks.append((index, at, float(dur), float(b.uniform(*BLINK_DEPTH)),
                                    float(b.uniform(-EYE_LAG, EYE_LAG)), float(b.uniform(0, EYE_LESS))))  # fmt: skip
                times["blink"].append(at)
            self.last_blink = starts[-1]
            self.next_blink = self.last_blink + max(REFRACTORY, float(b.gamma(BLINK_SHAPE, self.mean_interval / 3)))

    def _gaze(self, first: int, t: np.ndarray) -> np.ndarray:
        """Each frame shows the last saccade drawn by then (min-jerk from where the eyes were)."""
        out = np.empty((len(t), 2))
        ends = [s.frame - first for s in self.saccades[1:]] + [len(t)]
        for saccade, end in zip(self.saccades, ends, strict=True):  # a loop over saccades
            lo = max(0, saccade.frame - first)
            out[lo:end] = saccade.at(t[lo:end])
        self.saccades = self.saccades[-1:]
        return out

    def _blinks(self, first: int, t: np.ndarray) -> np.ndarray:
        """Each eye's lid closure: fast closing, a short hold, slow opening; the closed frame is
        reached whatever the frame rate."""
        out = np.zeros((len(t), 2))
        for frame, start, dur, depth, lag, less in self.blinks:  # a loop over blinks
            for eye, (shift, shallower) in enumerate(((0.0, 0.0), (lag, less))):
                begin = start + shift
                close, hold = BLINK_CLOSE * dur, BLINK_HOLD * dur
                lo = max(frame - first, int(np.searchsorted(t, begin)), 0)
                hi = int(np.searchsorted(t, begin + dur, side="right"))
                u = t[lo:hi] - begin
                lid = np.where(u < close, ease(u / close), 1 - ease((u - close - hold) / (dur - close - hold)))
                closed = round((begin + close + 0.5 * hold) * self.fps) - first
                if lo <= closed < hi:
                    lid[closed - lo] = 1.0
                out[lo:hi, eye] = np.maximum(out[lo:hi, eye], lid * (depth - shallower))
        end = t[-1] if len(t) else -math.inf
        self.blinks = [b for b in self.blinks if b[1] + b[2] + EYE_LAG > end]
        return out

    def _inhale(self, t: np.ndarray, cues: Cues, pause: np.ndarray) -> np.ndarray:
        """The breath in, 0–1: ending as the next phrase starts (`breath_ahead`), or early in each
        pause and let go, smoothly, when the voice comes back (a stream)."""
        if self.breath_ahead:
            target = np.zeros(len(t))
            quiet = np.concatenate([[False], ~cues.active, [False]])
            edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
            for a, b in zip(edges[::2], edges[1::2], strict=True):  # a loop over pauses
                if b >= len(t) or (b - a) / self.fps < BREATH_BEFORE:
                    continue  # too short, or no phrase follows
                start = max(t[a] + BREATH_AFTER, t[b] - BREATH_LENGTH)
                target[a:b] = _breath((t[a:b] - start) / (t[b] - start))
            return target
        lo, hi = BREATH_PAUSE
        breathing = ~(cues.active | cues.ahead)
        target = np.where(breathing, _breath((pause - lo) / (hi - lo)), 0.0) if breathing.any() else np.zeros(len(t))
        return self.inhale(target)

    def _head(self, first: int, t: np.ndarray, cues: Cues, gaze: np.ndarray) -> np.ndarray:
        """Head yaw, pitch, roll: wander (more while speaking), the voice's pitch, nods, the gaze."""
        omegas, amps, phases = self.wander
        head = (amps * np.sin(omegas * t[:, None, None] + phases)).sum(axis=2)
        quiet, loud = TALKING_GAIN
        head *= (quiet + loud * self.talking(cues.active.astype(np.float64)))[:, None]
        voice = np.where(cues.active & np.isfinite(cues.pitch), cues.pitch, 0.0)
        head[:, 1] += (PITCH_GAIN * _DEG * self.voice_pitch(voice)).clip(-PITCH_MAX * _DEG, PITCH_MAX * _DEG)
        for frame, at, amp, sign in self.nods:  # a loop over nods: down and back, a little roll
            lo = max(0, frame - first)
            hi = int(np.searchsorted(t, at + NOD_LENGTH))
            u = t[lo:hi] - at
            bump = np.exp(-0.5 * ((u - NOD_PEAK) / np.where(u < NOD_PEAK, NOD_RISE, NOD_FALL)) ** 2)
            head[lo:hi, 1] -= amp * bump
            head[lo:hi, 2] += NOD_ROLL * amp * bump * sign
        end = t[-1] if len(t) else -math.inf
        self.nods = [nod for nod in self.nods if nod[1] + NOD_LENGTH > end]
        head[:, :2] += _FOLLOW * self.follow(gaze)
        return head
