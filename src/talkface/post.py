"""Post-processing: the one pipeline every animation goes through, whatever made its lips move.

    speech curves ─▶ emotion ─▶ face smoothing ─▶ face strengths ─▶ blinks, gaze, head, breath
                 ─▶ lip / eyelid offsets ─▶ per-channel multipliers and offsets ─▶ clamp

`process` is a pure function of (animation, prosody, parameters, seed), so the phoneme path, the
neural model and streaming all get the same face. The face parameters carry Audio2Face's names
and meanings where it has them (`FaceParams.from_mapping` takes its camelCase names).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import emotion as emo
from . import life as lf
from .animation import Animation
from .errors import TalkfaceError
from .phonemes import TimedPhone
from .prosody import Prosody, analyse
from .rig import ARKIT_NAMES, INDEX, POSE_NAMES

#: Each face parameter: Audio2Face-style name → (field, minimum, maximum, what it does).
PARAMETERS: dict[str, tuple[str, float, float, str]] = {
    "lowerFaceStrength": ("lower_face_strength", 0.0, 2.0, "range of motion of the mouth, jaw and lips"),
    "upperFaceStrength": ("upper_face_strength", 0.0, 2.0, "range of motion of brows, lids (not blinks), cheeks, nose"),
    "lowerFaceSmoothing": ("lower_face_smoothing", 0.0, 0.2, "smoothing of the lower face (s); softens closures"),
    "upperFaceSmoothing": ("upper_face_smoothing", 0.0, 0.2, "temporal smoothing of the upper face (s)"),
    "skinStrength": ("skin_strength", 0.0, 2.0, "range of motion of all skin shapes (not gaze, tongue, blinks)"),
    "jawStrength": ("jaw_strength", 0.0, 2.0, "range of motion of the jaw (mouthClose follows, so closures hold)"),
    "tongueStrength": ("tongue_strength", 0.0, 2.0, "range of motion of the tongue"),
    "blinkStrength": ("blink_strength", 0.0, 2.0, "depth of the blinks"),
    "blinkOffset": ("blink_offset", -1.0, 1.0, "added to the blink shapes on every frame: heavier (+) lids"),
    "eyelidOpenOffset": ("eyelid_open_offset", -1.0, 1.0, "default eyelid pose: -1 fully closed, +1 fully open (wide)"),
    "lipOpenOffset": ("lip_open_offset", -0.2, 0.2, "default lip opening: + parts the lips (not during closures)"),
    "saccadeStrength": ("saccade_strength", 0.0, 2.0, "range of motion of the eyes' gaze and saccades"),
    "clampMin": ("clamp_min", 0.0, 1.0, "lowest blendshape weight written"),
    "clampMax": ("clamp_max", 0.0, 1.0, "highest blendshape weight written"),
}  # fmt: skip

_UPPER = [n for n in ARKIT_NAMES if n.startswith(("brow", "eyeSquint", "eyeWide", "cheekSquint", "nose"))]
_LOWER = [n for n in ARKIT_NAMES if n.startswith(("mouth", "jaw", "cheekPuff"))]
_JAW = ["jawOpen", "jawForward", "jawLeft", "jawRight", "mouthClose"]
_SKIN = [n for n in ARKIT_NAMES if not n.startswith(("eyeLook", "tongue"))]
_SMOOTH_UPPER = [*_UPPER, "eyeBlinkLeft", "eyeBlinkRight"]


def _idx(names: list[str]) -> np.ndarray:
    return np.array([INDEX[n] for n in names])


@dataclass(frozen=True)
class FaceParams:
    """Artist controls applied to every animation; see `PARAMETERS` for names, ranges and meaning.

    Strengths default to 1, offsets and smoothing to 0. `multipliers` and `offsets` scale and
    then shift single channels by name (multipliers 0–10, offsets -1–1; head and eye angles in
    radians too); `clamp_min`/`clamp_max` bound every blendshape weight written.
    """

    lower_face_strength: float = 1.0
    upper_face_strength: float = 1.0
    lower_face_smoothing: float = 0.0
    upper_face_smoothing: float = 0.0
    skin_strength: float = 1.0
    jaw_strength: float = 1.0
    tongue_strength: float = 1.0
    blink_strength: float = 1.0
    blink_offset: float = 0.0
    eyelid_open_offset: float = 0.0
    lip_open_offset: float = 0.0
    saccade_strength: float = 1.0
    clamp_min: float = 0.0
    clamp_max: float = 1.0
    multipliers: Mapping[str, float] = field(default_factory=dict)
    offsets: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, (attr, lo, hi, _) in PARAMETERS.items():
            value = getattr(self, attr)
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                raise TalkfaceError(f"face parameter {name}: {value!r} is not a number")
            if not lo <= value <= hi:
                raise TalkfaceError(f"face parameter {name} = {value:g} is out of range [{lo:g}, {hi:g}]")
        if self.clamp_min >= self.clamp_max:
            raise TalkfaceError(f"clampMin ({self.clamp_min:g}) must be below clampMax ({self.clamp_max:g})")
        for what, table, lo, hi in (("multiplier", self.multipliers, 0.0, 10.0), ("offset", self.offsets, -1.0, 1.0)):
            for channel, value in table.items():
                if channel not in INDEX and channel not in POSE_NAMES:
                    raise TalkfaceError(f"{what} for unknown channel {channel!r} (use ARKit names, e.g. jawOpen)")
                if not isinstance(value, int | float) or not math.isfinite(value) or not lo <= value <= hi:
                    raise TalkfaceError(f"{what} for {channel} = {value!r} is out of range [{lo:g}, {hi:g}]")

    @classmethod
    def from_mapping(
        cls,
        values: Mapping[str, object],
        multipliers: Mapping[str, float] | None = None,
        offsets: Mapping[str, float] | None = None,
    ) -> FaceParams:
        """From Audio2Face-style names (``lowerFaceStrength``) or field names (``lower_face_strength``)."""
        fields = {attr for attr, *_ in PARAMETERS.values()}
        kwargs: dict[str, object] = {}
        for key, value in values.items():
            attr = PARAMETERS[key][0] if key in PARAMETERS else key
            if attr not in fields:
                raise TalkfaceError(f"unknown face parameter {key!r}; known: {', '.join(PARAMETERS)}")
            kwargs[attr] = value
        return cls(**kwargs, multipliers=dict(multipliers or {}), offsets=dict(offsets or {}))  # type: ignore[arg-type]


def parse_assignments(spec: str, what: str) -> dict[str, float]:
    """``"name=1.2,other=0.5"`` → {name: 1.2, other: 0.5}; TalkfaceError if malformed."""
    out: dict[str, float] = {}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise TalkfaceError(f"{what}: expected NAME=VALUE, got {item!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise TalkfaceError(f"{what}: {name.strip()}={value!r} is not a number") from None
        if not math.isfinite(out[name.strip()]):
            raise TalkfaceError(f"{what}: {name.strip()}={value!r} is not a finite number")
    return out


def prosody_of(anim: Animation) -> Prosody:
    """Prosody read from an animation alone (speech = the mouth moving), for when there is no audio or phones."""
    activity = (emo.speaking(anim) > 0.5).astype(np.float32)
    return Prosody(anim.fps, activity, activity * 0.5, np.full(anim.num_frames, np.nan, np.float32), (), 0.0)


def _gaussian_smooth(x: np.ndarray, fps: float, sigma: float) -> np.ndarray:
    """Zero-lag Gaussian smoothing along time with standard deviation `sigma` seconds."""
    s = sigma * fps
    if s < 0.3 or x.shape[0] < 2:
        return x
    r = math.ceil(3 * s)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / s) ** 2)
    k /= k.sum()
    padded = np.pad(x, ((r, r), (0, 0)), mode="edge")
    return np.stack([np.convolve(padded[:, j], k, mode="valid") for j in range(x.shape[1])], axis=1)


def _screen(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b − ab: adds weights without passing 1."""
    return a + b - a * b


def process(
    anim: Animation,
    prosody: Prosody | None = None,
    face: FaceParams | None = None,
    emotion: emo.EmotionTrack | Mapping[str, float] | None = None,
    emotion_settings: emo.EmotionSettings | None = None,
    life: lf.LifeConfig | None = None,
    seed: int = 0,
) -> Animation:
    """The finished animation: speech curves with emotion, liveliness and face parameters applied.

    `prosody` times blinks, gaze and nods (read from the animation itself when None); `life`
    None means no liveliness. The result has the 52 ARKit shapes, plus the head and eye angles
    (rig.POSE_NAMES) when gaze or head motion is on or the input had them. The same `seed`
    and input give the same output.
    """
    face = face or FaceParams()
    life = life or lf.LifeConfig.off()
    fps, n = anim.fps, anim.num_frames
    if n == 0:
        return anim.with_channels((*ARKIT_NAMES, *POSE_NAMES) if life.gaze or life.head else ARKIT_NAMES)
    speech = anim.with_channels(ARKIT_NAMES)
    w = speech.weights.copy()
    # 1. emotion, keeping the lips of the speech
    if emotion is not None:
        weights = emo.curves(emotion, n, fps, emotion_settings)
        if weights.any():
            w = emo.blend(Animation(w, fps), emo.pose_curves(weights, fps, seed)).weights
    # 2. smoothing of the face's motion
    for cols, sigma in ((_idx([*_LOWER, "tongueOut"]), face.lower_face_smoothing),
                        (_idx(_SMOOTH_UPPER), face.upper_face_smoothing)):  # fmt: skip
        if sigma > 0:
            w[:, cols] = _gaussian_smooth(w[:, cols], fps, sigma)
    strengths(w, face)
    # 4. liveliness
    angles = anim.with_channels(POSE_NAMES).weights.astype(np.float64)
    if life.blink or life.gaze or life.head or life.breathing:
        w = add_life(w, angles, lf.generate(prosody or prosody_of(speech), life, seed), face)
    return finish(w, angles, face, keep_pose(anim.names, face, life), fps)


def strengths(w: np.ndarray, face: FaceParams) -> None:
    """Step 3, in place: scale each region's deviation from the neutral face (all zeros)."""
    for cols, k in ((_idx(_LOWER), face.lower_face_strength), (_idx(_UPPER), face.upper_face_strength),
                    (_idx(_JAW), face.jaw_strength), (INDEX["tongueOut"], face.tongue_strength),
                    (_idx(_SKIN), face.skin_strength)):  # fmt: skip
        if k != 1.0:
            w[:, cols] *= k


def add_life(w: np.ndarray, angles: np.ndarray, layers: lf.Life, face: FaceParams) -> np.ndarray:
    """Step 4: blinks, gaze, head and breath laid over the weights [frames, 52]; head and eye
    angles [frames, 6] (float64) are added to in place."""
    layer = np.zeros_like(w)  # what the eyes add, screened over the weights in one go
    gaze = layers.gaze * face.saccade_strength
    looks = lf.gaze_shapes(gaze)
    for name, value in looks.items():
        layer[:, INDEX[name]] = value
    blinks = np.clip(layers.blinks * face.blink_strength, 0.0, 1.0)
    for eye, name in enumerate(("eyeBlinkLeft", "eyeBlinkRight")):  # the upper lids follow the eyes down
        layer[:, INDEX[name]] = _screen(blinks[:, eye], 0.4 * looks["eyeLookDownLeft"])
    w = _screen(w, layer)
    for j, name in enumerate(("leftEyeYaw", "leftEyePitch")):
        angles[:, POSE_NAMES.index(name)] += gaze[:, j]
        angles[:, POSE_NAMES.index(name.replace("left", "right"))] += gaze[:, j]
    angles[:, :3] += layers.head
    return np.clip(w + layers.breath * (1 - w), 0.0, 1.0)


def keep_pose(names: Sequence[str], face: FaceParams, life: lf.LifeConfig) -> bool:
    """Whether the output carries the head and eye angles (gaze or head on, or asked for)."""
    keep = life.gaze or life.head or any(p in names for p in POSE_NAMES)
    return keep or any(c in POSE_NAMES for c in (*face.multipliers, *face.offsets))


def finish(w: np.ndarray, angles: np.ndarray, face: FaceParams, pose: bool, fps: float) -> Animation:
    """Steps 5 and 6: eyelid and lip offsets, per-channel multipliers and offsets, the clamp."""
    for side in ("Left", "Right"):
        blink, wide = INDEX["eyeBlink" + side], INDEX["eyeWide" + side]
        w[:, blink] += face.blink_offset
        if face.eyelid_open_offset > 0:
            w[:, wide] = _screen(np.clip(w[:, wide], 0, 1), face.eyelid_open_offset)
        elif face.eyelid_open_offset < 0:
            w[:, blink] = _screen(np.clip(w[:, blink], 0, 1), -face.eyelid_open_offset)
    if face.lip_open_offset:
        _lip_offset(w, face.lip_open_offset)
    names = (*ARKIT_NAMES, *POSE_NAMES)
    full = np.concatenate([w, angles], axis=1)
    for channel, k in face.multipliers.items():
        full[:, names.index(channel)] *= k
    for channel, k in face.offsets.items():
        full[:, names.index(channel)] += k
    full[:, : len(ARKIT_NAMES)] = np.clip(full[:, : len(ARKIT_NAMES)], face.clamp_min, face.clamp_max)
    out = Animation(full, fps, names)
    return out if pose else out.with_channels(ARKIT_NAMES)


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


#: What `Style.emotion` takes: "auto", weights by name, a keyframe track, or None (neutral).
EmotionSpec = str | Mapping[str, float] | emo.EmotionTrack | None


@dataclass(frozen=True)
class Style:
    """Everything post-processing needs besides the speech: the emotion, its post-processing,
    liveliness, face parameters and the random seed. The default is neutral and alive.

    `emotion` "auto" reads it from the text (VADER lexicon) scaled by the voice's arousal; a
    string like "joy=0.7,sadness=0.2" or a mapping sets it for the whole clip; an `EmotionTrack`
    changes it over time.
    """

    emotion: EmotionSpec = None
    emotion_settings: emo.EmotionSettings = field(default_factory=emo.EmotionSettings)
    face: FaceParams = field(default_factory=FaceParams)
    life: lf.LifeConfig = field(default_factory=lf.LifeConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.emotion, str) and self.emotion != "auto":
            object.__setattr__(self, "emotion", emo.parse_emotions(self.emotion))
        elif isinstance(self.emotion, Mapping):
            object.__setattr__(self, "emotion", emo.check_emotions(self.emotion))

    def apply(
        self,
        anim: Animation,
        phones: Sequence[TimedPhone] | None = None,
        audio: np.ndarray | None = None,
        text: str | None = None,
    ) -> Animation:
        """`process` the speech curves `anim`, timed by its phones and/or 16 kHz audio when known."""
        prosody = analyse(anim.fps, anim.num_frames, phones, audio) if phones or audio is not None else None
        emotion = self.emotion
        if emotion == "auto":
            emotion = emo.auto(text, prosody.arousal() if prosody is not None else 0.5)
        return process(anim, prosody, self.face, emotion, self.emotion_settings, self.life, self.seed)
