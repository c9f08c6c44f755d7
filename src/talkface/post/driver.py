"""The post-processing driver: speech frames in, finished frames out, a block at a time.

    speech ─▶ rest where no voice ─▶ emotion ─▶ face smoothing ─▶ face strengths
           ─▶ blinks, gaze, head, breath ─▶ lip / eyelid offsets ─▶ per-channel multipliers and offsets ─▶ clamp

A stream runs `Post` on each block of frames that became final, with the cues its `Listener`
hears in the audio up to 80 ms ahead; a server's streams go all at once (`process` lays their
blocks one after another, `smoothing.Blocks`, so a step costs a few numpy calls a tick, not a few
per stream). A whole clip (`Style.apply`: the phone-driven paths) runs the same code once over
all of its frames, with cues from its phones and audio and a `Horizon` that
lets it see the whole clip. Every step carries its state from one block to the next, so a stream
cut anywhere gives the frames of one block.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..animation import Animation
from ..rig import ARKIT_NAMES, INDEX, POSE_NAMES
from . import emotion as emo
from .life import Life
from .life import step as life_step
from .life_shapes import BREATH, LOOKS, Layers, gaze_shapes
from .prosody import Cues
from .settings import EmotionTrack, FaceParams, LifeConfig
from .smoothing import Blocks, Smoother, coefficient, lowpass, smooth, window_max

if TYPE_CHECKING:
    from .style import Style

_UPPER = [n for n in ARKIT_NAMES if n.startswith(("brow", "eyeSquint", "eyeWide", "cheekSquint", "nose"))]
_LOWER = [n for n in ARKIT_NAMES if n.startswith(("mouth", "jaw", "cheekPuff"))]
_JAW = ["jawOpen", "jawForward", "jawLeft", "jawRight", "mouthClose"]
_SKIN = [n for n in ARKIT_NAMES if not n.startswith(("eyeLook", "tongue"))]


def _idx(names: Sequence[str]) -> np.ndarray:
    return np.array([INDEX[n] for n in names])


_STRENGTHS = [(_idx(_LOWER), "lower_face_strength"), (_idx(_UPPER), "upper_face_strength"),
              (_idx(_JAW), "jaw_strength"), (_idx(["tongueOut"]), "tongue_strength"),
              (_idx(_SKIN), "skin_strength")]  # fmt: skip
_SMOOTHED = {"lower_face_smoothing": _idx([*_LOWER, "tongueOut"]),
             "upper_face_smoothing": _idx([*_UPPER, "eyeBlinkLeft", "eyeBlinkRight"])}  # fmt: skip
_REST_TAU = 0.03  # s: the face eases to rest (and back) where no voice is heard
_EYES = np.array([POSE_NAMES.index(n) for n in ("leftEyeYaw", "leftEyePitch", "rightEyeYaw", "rightEyePitch")])
_EYE_AXES = np.array([0, 1, 0, 1])  # the gaze's yaw and pitch for each of them
_NAMES = (*ARKIT_NAMES, *POSE_NAMES)  # the channels `finish` works on
_CHANNEL = {name: j for j, name in enumerate(_NAMES)}
_BLINK = _idx(["eyeBlinkLeft", "eyeBlinkRight"])
_LOOKS, _LOOK_DOWN = _idx(LOOKS), LOOKS.index("eyeLookDownLeft")
_WIDE = _idx(["eyeWideLeft", "eyeWideRight"])
_EYE_SHAPES = np.concatenate([_LOOKS, _BLINK])  # the shapes blinks and gaze move
_BREATHING, _BREATH_WEIGHTS = _idx(list(BREATH)), np.array(list(BREATH.values()))


@dataclass(frozen=True)
class Horizon:
    """What post-processing may look at beyond the frames before it. A stream sees its audio 80 ms
    ahead; a whole clip given in one block (`WHOLE_CLIP`) may use all of it:

    zero_lag: the face smoothing and the head's motion are smoothed backwards as well as forwards,
      so they do not lag;
    breath_ahead: each breath in ends as the next phrase starts (else it comes early in the pause);
    lips_ahead: an emotion's lip shapes leave 150 ms before the mouth moves (else when voice is
      heard 60 ms ahead).
    """

    zero_lag: bool = False
    breath_ahead: bool = False
    lips_ahead: bool = False


STREAM = Horizon()
WHOLE_CLIP = Horizon(zero_lag=True, breath_ahead=True, lips_ahead=True)


class Post:
    """Post-processing of one stream or clip (see module doc): `process` its speech frames in order.

    `names` are the channels of the incoming animation (its head and eye angles are kept). A
    horizon other than `STREAM` needs all the frames in one block."""

    def __init__(self, style: Style, fps: float, horizon: Horizon = STREAM, names: Sequence[str] = ()) -> None:
        self.fps, self.horizon = fps, horizon
        self.face: FaceParams = style.face
        self.settings = style.emotion_settings
        self.config: LifeConfig = style.life
        emotion = style.emotion
        if not isinstance(emotion, EmotionTrack):  # ("auto" needs a transcript: neutral here)
            emotion = EmotionTrack.constant({} if emotion is None or isinstance(emotion, str) else emotion)
        self._follow(emotion)
        self.emotion_state: np.ndarray | None = None
        self.easing = coefficient(self.settings.transition, fps)  # (1: at once)
        self.patterns = emo.Patterns(style.seed, fps)
        self.life = Life(style.life, fps, style.seed, zero_lag=horizon.zero_lag, breath_ahead=horizon.breath_ahead)
        self.busy_around = round(emo.BUSY_AROUND * fps)
        self.busy_past = np.zeros(0)  # the mouth's motion in the last frames
        self.smoothers: dict[str, Smoother | None] = dict.fromkeys(_SMOOTHED)
        self.pose = keep_pose(names, style.face, style.life)  # fixed, so every block has the same channels
        self.frame = 0
        self.rest = 1.0  # the share of the speech weights let through (`Cues.heard`)
        self.rest_easing = coefficient(_REST_TAU, fps)

    @property
    def names(self) -> tuple[str, ...]:
        """The channels of the frames made."""
        return _NAMES if self.pose else ARKIT_NAMES

    def set_emotion(self, emotion: dict[str, float] | EmotionTrack) -> None:
        """A new emotion from the next frame on (eased in by the transition time)."""
        self._follow(emotion if isinstance(emotion, EmotionTrack) else EmotionTrack.constant(emotion))

    def _follow(self, track: EmotionTrack) -> None:
        """Follow `track`; a constant one is settled once here (`emo.settle` works frame by frame)."""
        self.track = track
        self.settled = emo.settle(track.sample(np.zeros(1)), self.settings) if len(track.times) == 1 else None

    def set_face(self, face: FaceParams) -> None:
        """New face parameters from the next frame on."""
        self.face = face

    def process(self, speech: np.ndarray, cues: Cues, angles: np.ndarray | None = None) -> Animation:
        """Finished frames for the next speech frames [n, 52] with their cues; `angles` [n, 9]
        (rig.POSE_NAMES) are head and eye angles the speech came with (zero when None)."""
        return process([self], [speech], [cues], [angles])[0]


def process(posts: Sequence[Post], speech: Sequence[np.ndarray], cues: Sequence[Cues | None],
            angles: Sequence[np.ndarray | None] | None = None) -> list[Animation]:  # fmt: skip
    """`Post.process` of several streams at once (each its own `Post`, speech, cues and angles): their
    frames go through each step together, so a server pays a step's numpy calls once per tick (a
    block without frames needs no cues)."""
    angles = angles or [None] * len(posts)
    made: list[Animation | None] = [None] * len(posts)
    going = []
    for i, (post, block) in enumerate(zip(posts, speech, strict=True)):
        if len(block):
            going.append(i)
        else:
            made[i] = Animation.zeros(0, post.fps, post.names)
    if going:
        some = [posts[i] for i in going]
        blocks = Blocks.of([len(speech[i]) for i in going])
        done = _process(some, np.concatenate([speech[i] for i in going]), [cues[i] for i in going],  # type: ignore[misc]
                        [angles[i] for i in going], blocks)  # fmt: skip
        for i, anim in zip(going, done, strict=True):
            made[i] = anim
    return made  # type: ignore[return-value]


def _process(posts: list[Post], speech: np.ndarray, cues: list[Cues], angles: list[np.ndarray | None],
             blocks: Blocks) -> list[Animation]:  # fmt: skip
    """The steps of `process` over blocks of frames that are not empty."""
    fps = blocks.rows([p.fps for p in posts])
    t = (blocks.rows([p.frame for p in posts]) + blocks.local) / fps
    w = speech.astype(np.float64)
    heard = [i for i, c in enumerate(cues) if c.heard is not None]
    if heard:
        some, rows = blocks.subset(heard)
        rest = lowpass(np.concatenate([cues[i].heard for i in heard]).astype(np.float64),
                       some.rows([posts[i].rest_easing for i in heard]), np.array([posts[i].rest for i in heard]),
                       blocks=some)  # fmt: skip
        for i, last in zip(heard, rest[some.lasts].tolist(), strict=True):
            posts[i].rest = last
        w[rows] *= rest[:, None]
    w = _emotion(posts, w, speech, t, cues, blocks)
    _smooth(posts, w, blocks)
    faces = [p.face for p in posts]
    strengths(w, faces, blocks)
    pose = np.concatenate([np.zeros((n, len(POSE_NAMES))) if a is None else a.astype(np.float64)
                           for n, a in zip(blocks.sizes.tolist(), angles, strict=True)])  # fmt: skip
    alive = [i for i, p in enumerate(posts) if p.config.on]
    if alive:
        some, rows = blocks.subset(alive)
        layers = life_step(
            [posts[i].life for i in alive], [posts[i].frame for i in alive], [cues[i] for i in alive], some
        )
        w[rows], pose[rows] = add_life(w[rows], pose[rows], layers, [faces[i] for i in alive], some)
    for p, n in zip(posts, blocks.sizes.tolist(), strict=True):
        p.frame += n
    full = finish(w.astype(np.float32), pose, faces, blocks)
    return [Animation(part, p.fps, _NAMES) if p.pose else Animation(part[:, : len(ARKIT_NAMES)], p.fps)
            for p, part in zip(posts, blocks.split(full), strict=True)]  # fmt: skip


def _emotion(posts: list[Post], w: np.ndarray, speech: np.ndarray, t: np.ndarray, cues: list[Cues],
             blocks: Blocks) -> np.ndarray:  # fmt: skip
    """The emotion's pose and patterns laid over the speech, the lips kept where the mouth is busy."""
    settled = [p.settled for p in posts]
    if all(s is not None for s in settled):
        targets = blocks.rows(np.concatenate(settled))  # type: ignore[arg-type]
    else:
        targets = np.concatenate([np.repeat(s, len(part), axis=0) if s is not None
                                  else emo.settle(p.track.sample(part), p.settings)
                                  for p, s, part in zip(posts, settled, blocks.split(t), strict=True)])  # fmt: skip
    starts = np.array([targets[f] if p.emotion_state is None else p.emotion_state
                       for p, f in zip(posts, blocks.firsts.tolist(), strict=True)])  # fmt: skip
    state = lowpass(targets, blocks.rows([p.easing for p in posts]), starts, blocks=blocks)
    for p, last in zip(posts, state[blocks.lasts], strict=True):
        p.emotion_state = last
    patterns = emo.patterns([p.patterns for p in posts], t, state, blocks)
    motion = emo.mouth_motion(speech)
    busy = np.empty(len(motion))
    for (behind, ahead), which in _groups([(p.busy_around, p.busy_around if p.horizon.lips_ahead else 0)
                                           for p in posts]).items():  # fmt: skip
        some, rows = blocks.subset(which)
        past = np.array([_padded(posts[i].busy_past, behind) for i in which])
        busy[rows], past = window_max(motion[rows], past, behind, ahead, some)
        for i, row in zip(which, past, strict=True):
            posts[i].busy_past = row
    if state.any():  # (a neutral block's blend leaves it as it is)
        ahead = np.concatenate([c.ahead for c in cues])
        w = emo.blend(w, emo.poses(state, patterns), np.maximum(busy, ahead))
    return w


def _groups(keys: list) -> dict:
    """The indices of `keys` by key, in order."""
    out: dict = {}
    for i, key in enumerate(keys):
        out.setdefault(key, []).append(i)
    return out


def _padded(past: np.ndarray, size: int) -> np.ndarray:
    """The last `size` values of `past`, -inf before its start."""
    if len(past) >= size:
        return past[len(past) - size :]
    return np.concatenate([np.full(size - len(past), -np.inf), past])


def _smooth(posts: list[Post], w: np.ndarray, blocks: Blocks) -> None:
    """Face smoothing, in place, per region: a low-pass that spreads each frame over about the
    region's smoothing time (standard deviation; a whole clip, smoothed without lag, a little more)."""
    for param, cols in _SMOOTHED.items():
        which = []
        for i, p in enumerate(posts):
            sigma = getattr(p.face, param)
            if sigma <= 0:
                p.smoothers[param] = None
                continue
            smoother = p.smoothers[param]
            if smoother is None:
                smoother = p.smoothers[param] = Smoother(sigma / math.sqrt(2), p.fps, p.horizon.zero_lag)
            smoother.retime(sigma / math.sqrt(2))
            which.append(i)
        if which:
            some, rows = blocks.subset(which)
            cells = np.ix_(rows, cols) if isinstance(rows, np.ndarray) else (rows, cols)
            w[cells] = smooth([posts[i].smoothers[param] for i in which], w[cells], some)  # type: ignore[misc]


def strengths(w: np.ndarray, faces: Sequence[FaceParams], blocks: Blocks) -> None:
    """In place: scale each region's deviation from the neutral face (all zeros), per block its face's."""
    for cols, attr in _STRENGTHS:
        k = np.array([getattr(face, attr) for face in faces])
        if (k != 1.0).any():
            w[:, cols] *= blocks.rows(k)[:, None]


def _screen(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b − ab: adds weights without passing 1."""
    return a + b - a * b


def add_life(w: np.ndarray, angles: np.ndarray, layers: Layers, faces: Sequence[FaceParams],
             blocks: Blocks) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Blinks, gaze, head and breath laid over the weights [frames, 52] and added to the head and eye
    angles [frames, 9] (float64), both in place (per block its face's strengths)."""
    gaze = layers.gaze * blocks.rows([face.saccade_strength for face in faces])[:, None]
    looks = gaze_shapes(gaze)
    blinks = (layers.blinks * blocks.rows([face.blink_strength for face in faces])[:, None]).clip(0.0, 1.0)
    lids = _screen(blinks, 0.4 * looks[:, _LOOK_DOWN, None])  # the upper lids follow the eyes down
    eyes, breath = np.concatenate([looks, lids], axis=1), layers.breath[:, None] * _BREATH_WEIGHTS
    for cols, add in ((_EYE_SHAPES, eyes), (_BREATHING, breath)):  # screened over only the shapes they move
        w[:, cols] += add * (1.0 - w[:, cols])
    angles[:, _EYES] += gaze[:, _EYE_AXES]
    angles[:, :3] += layers.head
    return np.clip(w, 0.0, 1.0, out=w), angles


def keep_pose(names: Sequence[str], face: FaceParams, life: LifeConfig) -> bool:
    """Whether the output carries the head and eye angles (gaze or head on, or asked for)."""
    keep = life.gaze or life.head or any(p in names for p in POSE_NAMES)
    return keep or any(c in POSE_NAMES for c in (*face.multipliers, *face.offsets))


def finish(w: np.ndarray, angles: np.ndarray, faces: Sequence[FaceParams], blocks: Blocks) -> np.ndarray:
    """Eyelid and lip offsets, per-channel multipliers and offsets, the clamp, per block its face's:
    the weights and angles [frames, 52 + 9] (float32)."""
    f32 = np.float32  # (the offsets apply to float32 weights, as a float would)
    blink = np.array([face.blink_offset for face in faces], f32)
    if blink.any():
        w[:, _BLINK] += blocks.rows(blink)[:, None]
    eyelid = np.array([face.eyelid_open_offset for face in faces], f32)
    if eyelid.any():
        by_row = blocks.rows(eyelid)
        for cols, sign in ((_WIDE, 1), (_BLINK, -1)):
            rows = np.flatnonzero(sign * by_row > 0)
            if len(rows):
                cells = np.ix_(rows, cols)
                w[cells] = _screen(np.clip(w[cells], 0, 1), (sign * by_row[rows])[:, None])
    lips = np.array([face.lip_open_offset for face in faces], f32)
    if lips.any():
        _lip_offset(w, blocks.rows(lips))
    full = np.concatenate([w, angles], axis=1, dtype=f32)
    if any(face.multipliers for face in faces):
        full *= blocks.rows(np.stack([_per_channel(face.multipliers, 1.0) for face in faces]))
    if any(face.offsets for face in faces):
        full += blocks.rows(np.stack([_per_channel(face.offsets, 0.0) for face in faces]))
    low = blocks.rows([face.clamp_min for face in faces])[:, None]
    high = blocks.rows([face.clamp_max for face in faces])[:, None]
    np.clip(full[:, : len(ARKIT_NAMES)], low, high, out=full[:, : len(ARKIT_NAMES)])
    return full


def _per_channel(values: Mapping[str, float], default: float) -> np.ndarray:
    """A row over `_NAMES` of the given channels' values, `default` elsewhere."""
    row = np.full(len(_NAMES), default)
    for channel, k in values.items():
        row[_CHANNEL[channel]] = k
    return row


def _lip_offset(w: np.ndarray, offset: np.ndarray) -> None:
    """Part (+) or close (-) the lips at rest by each frame's offset; never opens a closure (/p b m/
    press the lips)."""
    cols = [INDEX[n] for n in ("mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight")]
    parting, closing = np.flatnonzero(offset > 0), np.flatnonzero(offset < 0)
    if len(parting):
        part = w[parting]
        press = 0.5 * (part[:, INDEX["mouthPressLeft"]] + part[:, INDEX["mouthPressRight"]])
        closed = np.clip((press + part[:, INDEX["mouthClose"]]) / 0.15, 0.0, 1.0)
        w[np.ix_(parting, cols)] += (offset[parting] * (1 - closed))[:, None]
    if len(closing):
        cells = np.ix_(closing, cols)
        w[cells] = np.maximum(0.0, w[cells] + offset[closing][:, None])
