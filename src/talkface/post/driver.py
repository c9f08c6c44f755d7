"""The post-processing driver: speech frames in, finished frames out, a block at a time.

    speech ─▶ rest where no voice ─▶ emotion ─▶ face smoothing ─▶ face strengths
           ─▶ blinks, gaze, head, breath ─▶ lip / eyelid offsets ─▶ per-channel multipliers and offsets ─▶ clamp

A stream runs `Post` on each block of frames that became final, with the cues its `Listener`
hears in the audio up to 80 ms ahead; a whole clip (`Style.apply`: the phone-driven paths) runs the
same code once over all of its frames, with cues from its phones and audio and a `Horizon` that
lets it see the whole clip. Every step carries its state from one block to the next, so a stream
cut anywhere gives the frames of one block.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..animation import Animation
from ..rig import ARKIT_NAMES, INDEX, POSE_NAMES
from . import emotion as emo
from .life import LOOKS, Layers, Life, gaze_shapes
from .prosody import Cues
from .settings import EmotionTrack, FaceParams, LifeConfig
from .smoothing import Smoother, coefficient, lowpass, window_max

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
        self.patterns = emo.Patterns(style.seed, fps)
        self.life = Life(style.life, fps, style.seed, zero_lag=horizon.zero_lag, breath_ahead=horizon.breath_ahead)
        self.busy_around = round(emo.BUSY_AROUND * fps)
        self.busy_past = np.zeros(0)  # the mouth's motion in the last frames
        self.smoothers: dict[str, Smoother | None] = dict.fromkeys(_SMOOTHED)
        self.pose = keep_pose(names, style.face, style.life)  # fixed, so every block has the same channels
        self.frame = 0
        self.rest = 1.0  # the share of the speech weights let through (`Cues.heard`)

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
        n, fps = speech.shape[0], self.fps
        t = (self.frame + np.arange(n)) / fps
        w = speech.astype(np.float64)
        if cues.heard is not None and n:
            rest = lowpass(cues.heard.astype(np.float64), coefficient(_REST_TAU, fps), self.rest)
            self.rest = float(rest[-1])
            w *= rest[:, None]
        w = self._emotion(w, speech, t, cues)
        self._smooth(w)
        strengths(w, self.face)
        angles = np.zeros((n, len(POSE_NAMES))) if angles is None else angles.astype(np.float64)
        if self.config.on:
            w = add_life(w, angles, self.life.step(self.frame, cues), self.face)
        self.frame += n
        return finish(w.astype(np.float32), angles, self.face, self.pose, fps)

    def _emotion(self, w: np.ndarray, speech: np.ndarray, t: np.ndarray, cues: Cues) -> np.ndarray:
        """The emotion's pose and patterns laid over the speech, the lips kept where the mouth is busy."""
        if self.settled is not None:
            targets = np.repeat(self.settled, len(t), axis=0)
        else:
            targets = emo.settle(self.track.sample(t), self.settings)
        state = emo.ease_towards(targets, self.settings, self.fps, self.emotion_state)
        patterns = self.patterns.step(t, state)
        motion = emo.mouth_motion(speech)
        k = self.busy_around
        if state.any():
            busy = window_max(motion, self.busy_past, k, k if self.horizon.lips_ahead else 0)
            w = emo.blend(w, emo.poses(state, patterns), np.maximum(busy, cues.ahead))
        if len(t):
            self.emotion_state = state[-1]
            past = np.concatenate([self.busy_past, motion])
            self.busy_past = past[max(0, len(past) - k) :]
        return w

    def _smooth(self, w: np.ndarray) -> None:
        """Face smoothing, in place, per region: a low-pass that spreads each frame over about the
        region's smoothing time (standard deviation; a whole clip, smoothed without lag, a little more)."""
        for param, cols in _SMOOTHED.items():
            sigma = getattr(self.face, param)
            smoother = self.smoothers[param]
            if sigma <= 0:
                self.smoothers[param] = None
                continue
            if smoother is None:
                smoother = self.smoothers[param] = Smoother(sigma / math.sqrt(2), self.fps, self.horizon.zero_lag)
            smoother.retime(sigma / math.sqrt(2))
            w[:, cols] = smoother(w[:, cols])


def strengths(w: np.ndarray, face: FaceParams) -> None:
    """In place: scale each region's deviation from the neutral face (all zeros)."""
    for cols, attr in _STRENGTHS:
        k = getattr(face, attr)
        if k != 1.0:
            w[:, cols] *= k


def _screen(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b − ab: adds weights without passing 1."""
    return a + b - a * b


def add_life(w: np.ndarray, angles: np.ndarray, layers: Layers, face: FaceParams) -> np.ndarray:
    """Blinks, gaze, head and breath laid over the weights [frames, 52]; head and eye angles
    [frames, 6] (float64) are added to in place."""
    layer = np.zeros_like(w)  # what the eyes add, screened over the weights in one go
    gaze = layers.gaze * face.saccade_strength
    looks = gaze_shapes(gaze)
    layer[:, _LOOKS] = looks
    blinks = (layers.blinks * face.blink_strength).clip(0.0, 1.0)
    layer[:, _BLINK] = _screen(blinks, 0.4 * looks[:, _LOOK_DOWN, None])  # the upper lids follow the eyes down
    w = _screen(w, layer)
    angles[:, _EYES] += gaze[:, _EYE_AXES]
    angles[:, :3] += layers.head
    return (w + layers.breath * (1 - w)).clip(0.0, 1.0)


def keep_pose(names: Sequence[str], face: FaceParams, life: LifeConfig) -> bool:
    """Whether the output carries the head and eye angles (gaze or head on, or asked for)."""
    keep = life.gaze or life.head or any(p in names for p in POSE_NAMES)
    return keep or any(c in POSE_NAMES for c in (*face.multipliers, *face.offsets))


def finish(w: np.ndarray, angles: np.ndarray, face: FaceParams, pose: bool, fps: float) -> Animation:
    """Eyelid and lip offsets, per-channel multipliers and offsets, the clamp."""
    if face.blink_offset:
        w[:, _BLINK] += face.blink_offset
    if face.eyelid_open_offset > 0:
        w[:, _WIDE] = _screen(np.clip(w[:, _WIDE], 0, 1), face.eyelid_open_offset)
    elif face.eyelid_open_offset < 0:
        w[:, _BLINK] = _screen(np.clip(w[:, _BLINK], 0, 1), -face.eyelid_open_offset)
    if face.lip_open_offset:
        _lip_offset(w, face.lip_open_offset)
    full = np.concatenate([w, angles], axis=1)
    for channel, k in face.multipliers.items():
        full[:, _CHANNEL[channel]] *= k
    for channel, k in face.offsets.items():
        full[:, _CHANNEL[channel]] += k
    full[:, : len(ARKIT_NAMES)] = full[:, : len(ARKIT_NAMES)].clip(face.clamp_min, face.clamp_max)
    return Animation(full, fps, _NAMES) if pose else Animation(full[:, : len(ARKIT_NAMES)], fps)


def _lip_offset(w: np.ndarray, offset: float) -> None:
    """Part (+) or close (-) the lips at rest; never opens a closure (/p b m/ press the lips)."""
    press = 0.5 * (w[:, INDEX["mouthPressLeft"]] + w[:, INDEX["mouthPressRight"]])
    closing = np.clip((press + w[:, INDEX["mouthClose"]]) / 0.15, 0.0, 1.0)
    for name in ("mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight"):
        j = INDEX[name]
        if offset > 0:
            w[:, j] += offset * (1 - closing)
        else:
            w[:, j] = np.maximum(0.0, w[:, j] + offset)
