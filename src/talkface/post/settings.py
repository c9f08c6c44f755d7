"""What a user sets: face parameters, liveliness, the emotion (by name, or keyframed) and how it is
post-processed. Every value is checked here, with one clear error naming what is wrong."""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import TalkfaceError, shown
from ..files import read_text
from ..rig import INDEX, POSE_NAMES

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
            if not _real(value):  # (numpy's float32 and int64 too, as a slider or an array gives them)
                raise TalkfaceError(f"face parameter {name}: {shown(value)} is not a number")
            if not lo <= value <= hi:
                raise TalkfaceError(f"face parameter {name} = {value:g} is out of range [{lo:g}, {hi:g}]")
            object.__setattr__(self, attr, float(value))
        if self.clamp_min >= self.clamp_max:
            raise TalkfaceError(f"clampMin ({self.clamp_min:g}) must be below clampMax ({self.clamp_max:g})")
        for what, attr, lo, hi in (("multiplier", "multipliers", 0.0, 10.0), ("offset", "offsets", -1.0, 1.0)):
            table = getattr(self, attr)
            if not isinstance(table, Mapping):  # (None or a list of pairs was an AttributeError)
                raise TalkfaceError(f"{attr} must be a mapping of channel name to {what}, not {type(table).__name__}")
            for channel, value in table.items():
                if channel not in INDEX and channel not in POSE_NAMES:
                    raise TalkfaceError(f"{what} for unknown channel {channel!r} (use ARKit names, e.g. jawOpen)")
                if not _real(value) or not lo <= value <= hi:
                    raise TalkfaceError(f"{what} for {channel} = {shown(value)} is out of range [{lo:g}, {hi:g}]")
            object.__setattr__(self, attr, {channel: float(value) for channel, value in table.items()})

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


@dataclass(frozen=True)
class LifeConfig:
    """Which parts of liveliness are on, how often the eyes blink and how much the head moves.

    blink_rate: mean blinks per minute before phrase-end and gaze-shift blinks (2–60, default 10).
    head_strength: scales all head rotation (0–3, default 1).
    """

    blink: bool = True
    gaze: bool = True
    head: bool = True
    breathing: bool = True
    blink_rate: float = 10.0
    head_strength: float = 1.0

    def __post_init__(self) -> None:
        for part in ("blink", "gaze", "head", "breathing"):  # ("no" was taken as on: any text is true)
            if not isinstance(getattr(self, part), bool | np.bool_):
                raise TalkfaceError(f"life {part} must be True or False, not {shown(getattr(self, part))}")
            object.__setattr__(self, part, bool(getattr(self, part)))
        _check_range(self, "blink_rate", "blink rate", 2.0, 60.0)  # (text was checked, kept, and failed later)
        _check_range(self, "head_strength", "head strength", 0.0, 3.0)

    @classmethod
    def off(cls) -> LifeConfig:
        """No blinks, gaze, head motion or breathing: the speech alone."""
        return cls(blink=False, gaze=False, head=False, breathing=False)

    @property
    def on(self) -> bool:
        """Whether any part is on."""
        return self.blink or self.gaze or self.head or self.breathing


#: Audio2Face's ten emotions, in its order; all-zero weights are the neutral face.
EMOTIONS: tuple[str, ...] = (
    "amazement", "anger", "cheekiness", "disgust", "fear", "grief", "joy", "outofbreath", "pain", "sadness",
)  # fmt: skip
NEUTRAL = "neutral"


def parse_emotions(spec: str) -> dict[str, float]:
    """Emotion weights from ``"joy=0.7,sadness=0.2"`` (a bare name means 1; "neutral" means none)."""
    weights: dict[str, float] = {}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        name, _, value = item.partition("=")
        name = name.strip().lower()
        if name == NEUTRAL and not value:
            continue
        weights[name] = _number(value, f"emotion {name!r}") if value else 1.0
    return check_emotions(weights)


def _real(value: object) -> bool:
    """Whether `value` is a finite real number (numpy's too), not a bool; False for an int too large for a float."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool | np.bool_):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _number(value: object, what: str) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # (an int of over 308 digits, from JSON, overflows)
        raise TalkfaceError(f"{what}: {shown(value)} is not a number") from None
    if isinstance(value, bool) or not math.isfinite(x):
        raise TalkfaceError(f"{what}: {shown(value)} is not a number")
    return x


def check_emotions(weights: Mapping[str, float]) -> dict[str, float]:
    """`weights` validated: known emotion names, values in [0, 1]; TalkfaceError otherwise."""
    out = {}
    for name, value in weights.items():
        if name not in EMOTIONS:
            raise TalkfaceError(f"unknown emotion {name!r}; choose from {NEUTRAL}, {', '.join(EMOTIONS)}")
        x = _number(value, f"emotion {name!r}")
        if not 0.0 <= x <= 1.0:
            raise TalkfaceError(f"emotion {name!r} = {x:g} is out of range [0, 1]")
        out[name] = x
    return out


def vector(weights: Mapping[str, float]) -> np.ndarray:
    """The ten-weight vector (in EMOTIONS order) of a name → weight mapping."""
    w = check_emotions(weights)
    return np.array([w.get(e, 0.0) for e in EMOTIONS], np.float32)


@dataclass(frozen=True)
class EmotionTrack:
    """Emotion keyframes: at each time (s) a weight vector; linear in between, held outside."""

    times: np.ndarray  # [keys], increasing
    weights: np.ndarray  # [keys, 10]

    @classmethod
    def constant(cls, weights: Mapping[str, float]) -> EmotionTrack:
        """The same emotion for the whole clip."""
        return cls(np.zeros(1), vector(weights)[None, :])

    @classmethod
    def from_keyframes(cls, keys: object, source: str = "emotion track") -> EmotionTrack:
        """From ``[{"time": 0, "emotions": {"joy": 0.5}}, ...]``; TalkfaceError if malformed."""
        if not isinstance(keys, list) or not keys:
            raise TalkfaceError(f'{source}: expected a non-empty list of {{"time": s, "emotions": {{...}}}}')
        times, rows = [], []
        for i, key in enumerate(keys):
            if not isinstance(key, dict) or set(key) != {"time", "emotions"}:
                raise TalkfaceError(f'{source}: keyframe {i} must have exactly "time" and "emotions"')
            t = _number(key["time"], f"{source}: keyframe {i} time")
            if t < 0:
                raise TalkfaceError(f"{source}: keyframe {i} time {t:g} is negative")
            if times and t <= times[-1]:
                raise TalkfaceError(f"{source}: keyframe times must increase (keyframe {i} at {t:g} s)")
            if not isinstance(key["emotions"], dict):
                raise TalkfaceError(f'{source}: keyframe {i} "emotions" must be an object of name: weight')
            try:
                rows.append(vector(key["emotions"]))
            except TalkfaceError as e:
                raise TalkfaceError(f"{source}: keyframe {i}: {e}") from None
            times.append(t)
        return cls(np.array(times), np.stack(rows))

    def sample(self, times: np.ndarray) -> np.ndarray:
        """Weights [len(times), 10] at the given times."""
        if len(self.times) == 1:  # a constant emotion (the usual case, and a stream's every frame)
            return np.repeat(self.weights.astype(np.float64), len(times), axis=0)
        return np.stack([np.interp(times, self.times, self.weights[:, j]) for j in range(len(EMOTIONS))], axis=1)


#: Largest emotion track file read: keyframes on every frame of an hour are a few MB.
TRACK_LIMIT = 16 << 20


def load_track(path: str | os.PathLike) -> EmotionTrack:
    """Read an emotion keyframe file (JSON list of ``{time, emotions}``, at most 16 MB)."""
    text = read_text(path, "emotion track", limit=TRACK_LIMIT)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise TalkfaceError(f"{path}: not a readable JSON emotion track ({e})") from None
    except ValueError:  # Python's limit on the digits of an integer it converts
        raise TalkfaceError(f"{path}: not a readable JSON emotion track (a number of over 4300 digits)") from None
    except RecursionError:
        raise TalkfaceError(f"{path}: not a readable JSON emotion track (nested too deeply)") from None
    return EmotionTrack.from_keyframes(data, str(path))


@dataclass(frozen=True)
class EmotionSettings:
    """Audio2Face-style emotion post-processing, applied in this order.

    contrast (emotion_contrast, 0.3–3, default 1): spreads the weights of a frame away from
      their mean (>1) or towards it (<1).
    max_emotions (1–10, default 3): only the strongest this many stay on at a time.
    preferred (preferred emotion) and preferred_strength (0–1, default 0.5): a base emotion mixed
      into whatever was given or detected; with strength 1 it replaces it.
    strength (emotion_strength, 0–1, default 1): scales the result towards neutral.
    transition (s, 0–10, default 0.3): time constant of the easing between emotion changes.
    """

    contrast: float = 1.0
    max_emotions: int = 3
    preferred: Mapping[str, float] | None = None
    preferred_strength: float = 0.5
    strength: float = 1.0
    transition: float = 0.3

    def __post_init__(self) -> None:
        _check_range(self, "contrast", "emotion contrast", 0.3, 3.0)
        _check_range(self, "max_emotions", "max emotions", 1, len(EMOTIONS))
        if int(self.max_emotions) != self.max_emotions:
            raise TalkfaceError(f"max emotions must be a whole number, got {self.max_emotions}")
        object.__setattr__(self, "max_emotions", int(self.max_emotions))
        _check_range(self, "preferred_strength", "preferred emotion strength", 0.0, 1.0)
        _check_range(self, "strength", "emotion strength", 0.0, 1.0)
        _check_range(self, "transition", "emotion transition time", 0.0, 10.0)
        if isinstance(self.preferred, str):  # "joy=1", as --preferred-emotion takes it (was an AttributeError)
            object.__setattr__(self, "preferred", parse_emotions(self.preferred))
        elif isinstance(self.preferred, Mapping):
            object.__setattr__(self, "preferred", check_emotions(self.preferred))
        elif self.preferred is not None:
            raise TalkfaceError(f'preferred emotion must be "name=weight,...", a mapping or None, '
                                f"not {type(self.preferred).__name__}")  # fmt: skip


def _check_range(settings: object, attr: str, what: str, lo: float, hi: float) -> None:
    """TalkfaceError unless the frozen `settings`' `attr` is a number within [lo, hi]; kept as that float
    (text such as "0.5" passed the check, was kept as text and failed in the first frame)."""
    x = _number(getattr(settings, attr), what)
    if not lo <= x <= hi:
        raise TalkfaceError(f"{what} {x:g} is out of range [{lo:g}, {hi:g}]")
    object.__setattr__(settings, attr, x)
