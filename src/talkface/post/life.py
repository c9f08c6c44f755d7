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
same frames come out however the frames are cut into blocks; `step` does it for many streams'
blocks at once, the events stream by stream (where any can happen), the curves together. The
timing table and the shapes are in `life_shapes`. Angles are radians. Yaw > 0 turns
towards the character's left, pitch > 0 looks up, roll > 0 tilts the top of the head towards
the character's left shoulder.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence

import numpy as np

from ..rig import ARKIT_NAMES
from . import life_shapes as table
from .life_shapes import DEG, Layers, Saccade, breath_in, ease, min_jerk
from .prosody import Cues
from .settings import LifeConfig
from .smoothing import Blocks, Smoother, smooth

_FOLLOW = np.array(table.FOLLOW)


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
        self.next_blink = float(b.uniform(*table.FIRST_BLINK))
        self.last_blink = -table.REFRACTORY
        self.pending: list[float] = []
        self.blinks: list[tuple[int, float, float, float, float, float]] = []  # frame, start, dur, depth, lag, less
        # gaze
        here = self._listener()
        self.saccades = [Saccade(-1, -1.0, 0.05, here, here)]  # the one shown at the block's start, then new ones
        self.fix_start, self.away = 0.0, False
        self.next_switch = float(g.uniform(*table.FIRST_SWITCH))
        self.next_micro = float(g.uniform(*table.MICRO_FIRST))
        # head: three slow sinusoids per axis, as (angular frequencies, amplitudes, phases) [3 axes, 3]
        wander = []
        for std in table.WANDER[0]:
            freqs, amps = h.uniform(*table.WANDER[1], 3), h.uniform(0.5, 1.0, 3)
            amps *= std * DEG * math.sqrt(2) / np.sqrt((amps**2).sum())
            wander.append((2 * math.pi * freqs, amps, h.uniform(0, 2 * math.pi, 3)))
        self.wander = [np.array(column) for column in zip(*wander, strict=True)]
        self.talking = Smoother(table.TALKING_TAU, fps, zero_lag)
        self.voice_pitch = Smoother(table.PITCH_TAU, fps, zero_lag)
        self.follow = Smoother(table.FOLLOW_TAU, fps, zero_lag)
        self.inhale = Smoother(table.BREATH_TAU, fps)
        self.nods: list[tuple[int, float, float, float]] = []  # frame, time, amplitude, roll sign
        self.last_nod = -1.0
        # pauses: when the one going on began (None while speaking); a long one arms the next phrase's look away
        self.pause_start: float | None = 0.0
        self.armed = False

    def _listener(self) -> np.ndarray:
        g = self.rng[1]
        return np.array([g.normal(0, table.LISTENER_SPREAD[0]) * DEG, g.normal(0, table.LISTENER_SPREAD[1]) * DEG])

    def step(self, first: int, cues: Cues) -> Layers:
        """The layers of frames first..first+n-1, with the cues of those frames."""
        n = len(cues.active)
        if not n:
            return Layers(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 3)), np.zeros((0, len(ARKIT_NAMES))))
        return step([self], [first], [cues], Blocks.of([n]))

    def _quiet(self, last: float, crossing: bool, back: bool, cues: Cues) -> bool:
        """Whether nothing can happen in a block whose last frame is at time `last` (`_events` would find nothing)."""
        cfg = self.config
        if (crossing and cfg.blink) or (back and cfg.gaze) or (cues.accents and cfg.head) or self.armed:
            return False
        if cfg.gaze and min(self.next_switch, self.next_micro) <= last:
            return False
        return not (cfg.blink and min([self.next_blink, *self.pending]) <= last + table.BLINK_DUE)

    def _events(self, first: int, t: np.ndarray, cues: Cues, crossing: np.ndarray, back: np.ndarray,
                times: dict[str, list[float]]) -> None:  # fmt: skip
        """Handle every frame where something happens, in order: a loop over events, not frames."""
        cfg, n = self.config, len(t)
        due_at = t + table.BLINK_DUE
        crossings = crossing.nonzero()[0].tolist() if cfg.blink else []
        backs = back.nonzero()[0].tolist() if cfg.gaze else []
        # (the frames that may look away: wanted only once a pause, maybe this one, has armed it)
        ready = np.flatnonzero(cues.ahead & (t > table.AWAY_AFTER)).tolist() if self.armed or backs else []
        accents: dict[int, list[tuple[int, float, float]]] = {}
        for accent in cues.accents if cfg.head else []:  # a loop over syllables
            if accent[2] >= table.NOD_STRESS:
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
                if micro < n and t[micro] < self.next_switch - table.MICRO_CLEAR:
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
        if crossing and b.random() < table.PHRASE_END_BLINK:
            self.pending.append(t + float(b.uniform(*table.PHRASE_END_DELAY)))
        if back:
            event, self.armed = "back", True
        if self.armed and ahead and t > table.AWAY_AFTER:
            event, self.armed = "away", False
        if cfg.gaze:
            if event and t > self.fix_start + table.EVENT_AFTER:
                self.away = event == "away" and g.random() < table.AWAY_AT_PHRASE
                self._shift(index, t, active, times)
            elif t >= self.next_switch:
                self.away = not self.away and g.random() < (table.AWAY_SPEAKING if active else table.AWAY_SILENT)
                self._shift(index, self.next_switch, active, times)
            elif self.next_micro <= t < self.next_switch - table.MICRO_CLEAR:
                offset = np.array([g.normal(0, table.MICRO_SPREAD[0]) * DEG, g.normal(0, table.MICRO_SPREAD[1]) * DEG])
                self._shift(index, self.next_micro, active, times, self.saccades[-1].target + offset)
                self.next_micro += float(g.uniform(*table.MICRO_NEXT))
        if cfg.blink:
            self._schedule(index, t, times)
        for _, at, strength in accents:
            if at - self.last_nod >= table.NOD_GAP:
                self.last_nod = at
                stress = (strength - table.NOD_STRESS) / (1 - table.NOD_STRESS)
                amp = (table.NOD_AMP[0] + table.NOD_AMP[1] * stress) * DEG * float(h.uniform(*table.NOD_SPREAD))
                self.nods.append((index, at, amp, float(h.choice([-1, 1]))))
                times["nod"].append(at)

    def _shift(self, index: int, at: float, speaking: bool, times: dict[str, list[float]],
               target: np.ndarray | None = None) -> None:  # fmt: skip
        """A saccade starting at time `at`, shown from frame `index` on."""
        g = self.rng[1]
        prev = self.saccades[-1].at(np.array([at]))[0]
        if target is None:
            if self.away:
                target = np.array(
                    [g.choice([-1, 1]) * g.uniform(*table.AWAY_YAW) * DEG, g.uniform(*table.AWAY_PITCH) * DEG]
                )
            else:
                target = self._listener()
            self.fix_start, self.next_switch = at, at + float(g.uniform(*table.HOLD[self.away, speaking]))
            self.next_micro = at + float(g.uniform(*table.MICRO_FIRST))
        amp = math.hypot(*(target - prev)) / DEG
        self.saccades.append(Saccade(index, at, table.SACCADE[0] + table.SACCADE[1] * amp, prev, target))
        times["saccade"].append(at)
        if amp > table.BIG_SHIFT and self.config.blink and self.rng[0].random() < table.BIG_SHIFT_BLINK:
            self.pending.append(at + table.BLINK_DUE)

    def _schedule(self, index: int, t: float, times: dict[str, list[float]]) -> None:
        """Draw the blinks due by `t` (on the schedule, or asked for), shown from frame `index` on."""
        b = self.rng[0]
        while True:
            due = min([self.next_blink, *self.pending])
            if due > t + table.BLINK_DUE:
                break
            if due in self.pending:
                self.pending.remove(due)
            else:
                self.next_blink = math.inf
            ready = self.last_blink + table.REFRACTORY
            if due < ready:  # too soon after the last blink: a scheduled one waits, an extra one is dropped
                if self.next_blink == math.inf:
                    self.next_blink = ready  # (`due < ready` is then false on the next pass: it blinks)
                continue
            starts = [due] + ([due + float(b.uniform(*table.DOUBLE_GAP))] if b.random() < table.DOUBLE_BLINK else [])
            for at in starts:
                dur = b.uniform(*table.LONG_LENGTH) if b.random() < table.LONG_BLINK else b.uniform(*table.SHORT_LENGTH)
                depth = float(b.uniform(*table.BLINK_DEPTH))
                lag, less = float(b.uniform(-table.EYE_LAG, table.EYE_LAG)), float(b.uniform(0, table.EYE_LESS))
                self.blinks.append((index, at, float(dur), depth, lag, less))
                times["blink"].append(at)
            self.last_blink = starts[-1]
            self.next_blink = self.last_blink + max(
                table.REFRACTORY, float(b.gamma(table.BLINK_SHAPE, self.mean_interval / 3))
            )

    def _saccades(self, first: int, n: int) -> list[tuple[int, Saccade]]:
        """The saccades each frame of a block of n from `first` shows (the last drawn by then), as
        (frames, saccade) in order."""
        ends = [s.frame - first for s in self.saccades[1:]] + [n]
        shown = [(end - max(0, s.frame - first), s) for s, end in zip(self.saccades, ends, strict=True)]
        self.saccades = self.saccades[-1:]
        return [(count, s) for count, s in shown if count > 0]

    def _blinks(self, first: int, t: np.ndarray) -> np.ndarray:
        """Each eye's lid closure: fast closing, a short hold, slow opening; the closed frame is
        reached whatever the frame rate."""
        out = np.zeros((len(t), 2))
        for frame, start, dur, depth, lag, less in self.blinks:  # a loop over blinks
            for eye, (shift, shallower) in enumerate(((0.0, 0.0), (lag, less))):
                begin = start + shift
                close, hold = table.BLINK_CLOSE * dur, table.BLINK_HOLD * dur
                lo = max(frame - first, int(np.searchsorted(t, begin)), 0)
                hi = int(np.searchsorted(t, begin + dur, side="right"))
                u = t[lo:hi] - begin
                lid = np.where(u < close, ease(u / close), 1 - ease((u - close - hold) / (dur - close - hold)))
                closed = round((begin + close + 0.5 * hold) * self.fps) - first
                if lo <= closed < hi:
                    lid[closed - lo] = 1.0
                out[lo:hi, eye] = np.maximum(out[lo:hi, eye], lid * (depth - shallower))
        end = t[-1] if len(t) else -math.inf
        self.blinks = [b for b in self.blinks if b[1] + b[2] + table.EYE_LAG > end]
        return out

    def _breath_ahead(self, t: np.ndarray, active: np.ndarray) -> np.ndarray:
        """The breath in, 0–1, ending as the next phrase starts (a whole clip's, `breath_ahead`)."""
        target = np.zeros(len(t))
        quiet = np.concatenate([[False], ~active, [False]])
        edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
        for a, b in zip(edges[::2], edges[1::2], strict=True):  # a loop over pauses
            if b >= len(t) or (b - a) / self.fps < table.BREATH_BEFORE:
                continue  # too short, or no phrase follows
            start = max(t[a] + table.BREATH_AFTER, t[b] - table.BREATH_LENGTH)
            target[a:b] = breath_in((t[a:b] - start) / (t[b] - start))
        return target


def step(lives: Sequence[Life], firsts: Sequence[int], cues: Sequence[Cues], blocks: Blocks) -> Layers:
    """`Life.step` of several streams at once: block i holds frames firsts[i].. of `lives[i]`, with
    `cues[i]`; the events run stream by stream, the curves between them for all blocks together."""
    cfgs = [life.config for life in lives]
    fps = blocks.rows([life.fps for life in lives])
    t = (blocks.rows(firsts) + blocks.local) / fps
    active = np.concatenate([c.active for c in cues])
    pause = _pauses(lives, t, active, blocks)  # (0 while speaking: no threshold below is crossed then)
    before = pause - 1 / fps
    crossing = (before < table.PHRASE_END) & (pause >= table.PHRASE_END)
    back = (before < table.GAZE_BACK) & (pause >= table.GAZE_BACK)
    times: dict[str, list[float]] = {"blink": [], "saccade": [], "nod": []}
    ends = t[blocks.lasts].tolist()
    crossed = np.logical_or.reduceat(crossing, blocks.firsts).tolist()
    turned = np.logical_or.reduceat(back, blocks.firsts).tolist()
    spans = [slice(a, b + 1) for a, b in zip(blocks.firsts.tolist(), blocks.lasts.tolist(), strict=True)]
    for i, life in enumerate(lives):  # (a loop over the streams where something may happen)
        if not life._quiet(ends[i], crossed[i], turned[i], cues[i]):
            rows = spans[i]
            life._events(firsts[i], t[rows], cues[i], crossing[rows], back[rows], times)
    gaze = np.zeros((blocks.total, 2))
    which = [i for i, cfg in enumerate(cfgs) if cfg.gaze]
    if which:
        some, rows = blocks.subset(which)
        gaze[rows] = _gazes([lives[i] for i in which], [firsts[i] for i in which], t[rows], some)
    blinks = np.zeros((blocks.total, 2))
    for i, (life, cfg) in enumerate(zip(lives, cfgs, strict=True)):  # (a loop over the streams in a blink)
        if cfg.blink and life.blinks:
            blinks[spans[i]] = life._blinks(firsts[i], t[spans[i]])
    inhale = _inhale(lives, t, cues, pause, active, blocks)
    head = np.zeros((blocks.total, 3))
    which = [i for i, cfg in enumerate(cfgs) if cfg.head]
    if which:
        some, rows = blocks.subset(which)
        strength = some.rows([cfgs[i].head_strength for i in which])
        part = _heads([lives[i] for i in which], [firsts[i] for i in which], t[rows], [cues[i] for i in which],
                      gaze[rows], some) * strength[:, None]  # fmt: skip
        breathing = some.rows([cfgs[i].breathing for i in which])
        part[breathing, 1] += table.BREATH_LIFT * DEG * inhale[rows][breathing] * strength[breathing]
        head[rows] = part
    breath = inhale * blocks.rows([cfg.breathing for cfg in cfgs])
    return Layers(blinks, gaze, head, breath, times["blink"], times["saccade"], times["nod"])


def _pauses(lives: Sequence[Life], t: np.ndarray, active: np.ndarray, blocks: Blocks) -> np.ndarray:
    """Seconds since the pause going on began, per frame (0 while speaking)."""
    firsts = blocks.rows(blocks.firsts)
    last = np.maximum.accumulate(np.where(active, np.arange(blocks.total), firsts - 1))  # in the block, or first - 1
    begun = [
        t[f] if life.pause_start is None else life.pause_start
        for life, f in zip(lives, blocks.firsts.tolist(), strict=True)
    ]
    start = np.where(last >= firsts, t[np.minimum(last + 1, blocks.rows(blocks.lasts))], blocks.rows(begun))
    for life, speaking, at in zip(lives, active[blocks.lasts].tolist(), start[blocks.lasts].tolist(), strict=True):
        life.pause_start = None if speaking else at
    return np.where(active, 0.0, t - start)


def _gazes(lives: Sequence[Life], firsts: Sequence[int], t: np.ndarray, blocks: Blocks) -> np.ndarray:
    """Each frame shows the last saccade drawn by then (min-jerk from where the eyes were)."""
    shown = [part for life, first, n in zip(lives, firsts, blocks.sizes.tolist(), strict=True)
             for part in life._saccades(first, n)]  # fmt: skip
    frames = [count for count, _ in shown]
    prev, target = (np.repeat(np.array([getattr(s, name) for _, s in shown]), frames, axis=0)
                    for name in ("prev", "target"))  # fmt: skip
    start, dur = (np.repeat([getattr(s, name) for _, s in shown], frames) for name in ("start", "dur"))
    return prev + (target - prev) * min_jerk((t - start) / dur)[:, None]


def _inhale(lives: Sequence[Life], t: np.ndarray, cues: Sequence[Cues], pause: np.ndarray, active: np.ndarray,
            blocks: Blocks) -> np.ndarray:  # fmt: skip
    """The breath in, 0–1: ending as the next phrase starts (`breath_ahead`), or early in each
    pause and let go, smoothly, when the voice comes back (a stream)."""
    out = np.empty(blocks.total)
    which = []
    for i, life in enumerate(lives):
        if life.breath_ahead:
            rows = slice(int(blocks.firsts[i]), int(blocks.lasts[i]) + 1)
            out[rows] = life._breath_ahead(t[rows], cues[i].active)
        else:
            which.append(i)
    if which:
        some, rows = blocks.subset(which)
        lo, hi = table.BREATH_PAUSE
        breathing = ~(active[rows] | np.concatenate([cues[i].ahead for i in which]))
        target = np.where(breathing, breath_in((pause[rows] - lo) / (hi - lo)), 0.0)
        out[rows] = smooth([lives[i].inhale for i in which], target, some)
    return out


def _heads(lives: Sequence[Life], firsts: Sequence[int], t: np.ndarray, cues: Sequence[Cues], gaze: np.ndarray,
           blocks: Blocks) -> np.ndarray:  # fmt: skip
    """Head yaw, pitch, roll: wander (more while speaking), the voice's pitch, nods, the gaze."""
    omegas, amps, phases = (blocks.rows(np.array([life.wander[k] for life in lives])) for k in range(3))
    head = (amps * np.sin(omegas * t[:, None, None] + phases)).sum(axis=2)
    quiet, loud = table.TALKING_GAIN
    active = np.concatenate([c.active for c in cues])
    head *= (quiet + loud * smooth([life.talking for life in lives], active.astype(np.float64), blocks))[:, None]
    pitch = np.concatenate([c.pitch for c in cues])
    voice = np.where(active & np.isfinite(pitch), pitch, 0.0)
    pitched = smooth([life.voice_pitch for life in lives], voice, blocks)
    head[:, 1] += (table.PITCH_GAIN * DEG * pitched).clip(-table.PITCH_MAX * DEG, table.PITCH_MAX * DEG)
    _nods(lives, firsts, t, head, blocks)
    head[:, :2] += _FOLLOW * smooth([life.follow for life in lives], gaze, blocks)
    return head


def _nods(lives: Sequence[Life], firsts: Sequence[int], t: np.ndarray, head: np.ndarray, blocks: Blocks) -> None:
    """The nods going on added to the head angles in place: down and back, a little roll."""
    nods = [(i, *nod) for i, life in enumerate(lives) for nod in life.nods]
    if not nods:
        return
    spans = []  # the rows each nod shows on: from its first frame on, until it ends
    for i, frame, at, _, _ in nods:
        first, size = int(blocks.firsts[i]), int(blocks.sizes[i])
        end = first + int(np.searchsorted(t[first : first + size], at + table.NOD_LENGTH))
        spans.append((first + max(0, frame - firsts[i]), end))
    lo, hi = (np.array(column) for column in zip(*spans, strict=True))
    sizes = np.maximum(hi - lo, 0)
    k = np.repeat(np.arange(len(nods)), sizes)
    rows = np.arange(len(k)) - np.repeat(np.cumsum(sizes) - sizes - lo, sizes)
    _, _, at, amp, sign = (np.array(column) for column in zip(*nods, strict=True))
    u = t[rows] - at[k]
    width = np.where(u < table.NOD_PEAK, table.NOD_RISE, table.NOD_FALL)
    bump = np.exp(-0.5 * ((u - table.NOD_PEAK) / width) ** 2)
    np.subtract.at(head[:, 1], rows, amp[k] * bump)  # (in the nods' order, where they overlap)
    np.add.at(head[:, 2], rows, table.NOD_ROLL * amp[k] * bump * sign[k])
    for life, end in zip(lives, t[blocks.lasts].tolist(), strict=True):
        if life.nods:
            life.nods = [nod for nod in life.nods if nod[1] + table.NOD_LENGTH > end]
