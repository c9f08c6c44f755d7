"""Emotion: Audio2Face's ten emotions as FACS-grounded ARKit poses, blended onto speech without
breaking lip sync.

Each emotion is a pose built from the action units that define it (Ekman & Friesen's FACS; e.g.
joy = AU6 cheek raiser + AU12 lip corner puller), plus a pattern over time for the three that
have one: out-of-breath breathes, pain winces, grief's chin trembles. An emotion *state* is a
vector of ten weights in [0, 1] (all zero = neutral), constant for a clip or keyframed over
time, post-processed like Audio2Face's (contrast, max emotions, preferred emotion, strength,
transition time).

Blending keeps the speech in charge of the lips. The pose's brows, eyes, cheeks and nose are
added on top; its mouth corners (smile, frown, stretch, dimple, shrug) are added too, but eased
off while the lips are rounded; its lip-opening and lip-pressing shapes (jaw, lips up/down,
press, roll, pucker) only show while the speaker is silent. None of the channels that open the
lips is ever raised during speech, so a smiling speaker still closes the lips on /p b m/.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .animation import Animation
from .errors import TalkfaceError
from .files import read_text
from .rig import ARKIT_NAMES, INDEX

#: Audio2Face's ten emotions, in its order; all-zero weights are the neutral face.
EMOTIONS: tuple[str, ...] = (
    "amazement", "anger", "cheekiness", "disgust", "fear", "grief", "joy", "outofbreath", "pain", "sadness",
)  # fmt: skip
NEUTRAL = "neutral"

#: Shapes that open, close or shape the lips: speech owns them, an emotion shows them only in silence.
LIP_SHAPES: tuple[str, ...] = tuple(
    n
    for n in ARKIT_NAMES
    if n.startswith(("jaw", "mouthClose", "mouthFunnel", "mouthPucker", "mouthRoll", "mouthPress"))
    or n.startswith(("mouthLowerDown", "mouthUpperUp", "tongue", "cheekPuff"))
)
#: Mouth-corner shapes: blended with speech, eased off while the lips are rounded.
CORNER_SHAPES: tuple[str, ...] = tuple(
    n
    for n in ARKIT_NAMES
    if n.startswith(("mouthSmile", "mouthFrown", "mouthDimple", "mouthStretch", "mouthShrug"))
    or n in ("mouthLeft", "mouthRight")
)


def _pose(**weights: float) -> np.ndarray:
    """A 52-vector from keyword weights; a name without Left/Right sets both sides."""
    v = np.zeros(len(ARKIT_NAMES), np.float32)
    for name, w in weights.items():
        for n in [name] if name in INDEX else [name + "Left", name + "Right"]:
            v[INDEX[n]] = w
    return v


#: The pose of each emotion at full strength (FACS action units in the comments).
POSES: dict[str, np.ndarray] = {
    # AU1+2 brows up, AU5 upper lids up, AU26 jaw drop
    "amazement": _pose(browInnerUp=0.8, browOuterUp=0.75, eyeWide=0.7, jawOpen=0.22, mouthLowerDown=0.1),
    # AU4 brows down and together, AU5+7 glaring lids, AU9 nose, AU23+24 lips tightened and pressed
    "anger": _pose(
        browDown=0.8, eyeSquint=0.35, eyeWide=0.25, noseSneer=0.35, cheekSquint=0.15,
        mouthFrown=0.25, mouthStretch=0.1, mouthPress=0.45, mouthRollLower=0.1, jawForward=0.1,
    ),
    # a one-sided smile (AU12 + AU14 on the left), one brow raised
    "cheekiness": _pose(
        mouthSmileLeft=0.6, mouthSmileRight=0.15, mouthDimpleLeft=0.35, cheekSquintLeft=0.35, eyeSquintLeft=0.25,
        browOuterUpRight=0.4, browDownLeft=0.1, mouthLeft=0.12, mouthPressRight=0.15,
    ),
    # AU9 nose wrinkler, AU10 upper lip raiser, AU4, AU15+17
    "disgust": _pose(
        noseSneer=0.7, cheekSquint=0.4, browDown=0.45, eyeSquint=0.35,
        mouthFrown=0.35, mouthShrugUpper=0.3, mouthShrugLower=0.3, mouthUpperUp=0.45,
    ),
    # AU1+2+4 brows raised and drawn together, AU5 lids wide, AU20 lips stretched, AU25 lips parted
    "fear": _pose(
        browInnerUp=0.9, browOuterUp=0.4, browDown=0.3, eyeWide=0.8,
        mouthStretch=0.55, mouthFrown=0.1, jawOpen=0.1, mouthLowerDown=0.15,
    ),
    # crying: AU1+4 oblique brows, AU6+7 squeezed eyes, AU15 corners down, AU17 chin up, AU20
    "grief": _pose(
        browInnerUp=0.9, browDown=0.35, cheekSquint=0.45, eyeSquint=0.5, eyeBlink=0.2, noseSneer=0.2,
        mouthFrown=0.75, mouthStretch=0.35, mouthShrugLower=0.45, mouthUpperUp=0.25, jawOpen=0.06,
    ),
    # the Duchenne smile: AU6 cheek raiser (squinting eyes) + AU12 lip corner puller, AU25
    "joy": _pose(
        cheekSquint=0.6, eyeSquint=0.4, mouthSmile=0.85, mouthDimple=0.25, browOuterUp=0.1, mouthUpperUp=0.12,
    ),
    # raised inner brows, heavy lids; the breathing itself is a pattern (see _patterns)
    "outofbreath": _pose(browInnerUp=0.4, eyeBlink=0.15, eyeSquint=0.1, mouthStretch=0.1, jawOpen=0.15),
    # AU4 brows down, AU6+7 eyes squeezed (AU43 partly closed), AU9+10 nose and lip raised, AU20 stretched
    "pain": _pose(
        browDown=0.65, browInnerUp=0.3, eyeSquint=0.7, eyeBlink=0.3, cheekSquint=0.6, noseSneer=0.55,
        mouthStretch=0.5, mouthFrown=0.2, mouthUpperUp=0.3, mouthPress=0.1,
    ),
    # AU1+4 inner brows up and together, drooping lids, AU15 corners down, AU17 chin up
    "sadness": _pose(
        browInnerUp=0.75, browDown=0.2, eyeBlink=0.2, eyeSquint=0.1,
        mouthFrown=0.55, mouthShrugLower=0.35, mouthPress=0.1,
    ),
}  # fmt: skip
_POSE_MATRIX = np.stack([POSES[e] for e in EMOTIONS])  # [10, 52]
_LIP = np.array([INDEX[n] for n in LIP_SHAPES])
_CORNER = np.array([INDEX[n] for n in CORNER_SHAPES])
_FACE = np.array([i for i in range(len(ARKIT_NAMES)) if i not in set(_LIP) | set(_CORNER)])
_MOUTH_MOTION = np.array([INDEX[n] for n in LIP_SHAPES if n != "cheekPuff"])


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


def _number(value: object, what: str) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TalkfaceError(f"{what}: {value!r} is not a number") from None
    if isinstance(value, bool) or not math.isfinite(x):
        raise TalkfaceError(f"{what}: {value!r} is not a number")
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
    transition (s, 0–10, default 0.3): time constant of the smoothing between emotion changes.
    """

    contrast: float = 1.0
    max_emotions: int = 3
    preferred: Mapping[str, float] | None = None
    preferred_strength: float = 0.5
    strength: float = 1.0
    transition: float = 0.3

    def __post_init__(self) -> None:
        _check_range("emotion contrast", self.contrast, 0.3, 3.0)
        _check_range("max emotions", self.max_emotions, 1, len(EMOTIONS))
        if int(self.max_emotions) != self.max_emotions:
            raise TalkfaceError(f"max emotions must be a whole number, got {self.max_emotions}")
        _check_range("preferred emotion strength", self.preferred_strength, 0.0, 1.0)
        _check_range("emotion strength", self.strength, 0.0, 1.0)
        _check_range("emotion transition time", self.transition, 0.0, 10.0)
        if self.preferred is not None:
            check_emotions(self.preferred)


def _check_range(what: str, value: float, lo: float, hi: float) -> None:
    x = _number(value, what)
    if not lo <= x <= hi:
        raise TalkfaceError(f"{what} {x:g} is out of range [{lo:g}, {hi:g}]")


def curves(
    emotion: EmotionTrack | Mapping[str, float] | None,
    num_frames: int,
    fps: float,
    settings: EmotionSettings | None = None,
) -> np.ndarray:
    """Post-processed emotion weights per frame, [num_frames, 10]."""
    s = settings or EmotionSettings()
    if emotion is None:
        emotion = {}
    track = emotion if isinstance(emotion, EmotionTrack) else EmotionTrack.constant(emotion)
    w = settle(track.sample(np.arange(num_frames) / fps).astype(np.float64), s)
    if s.transition > 0 and num_frames > 1:
        w = _smooth(w, fps, s.transition)
    return w.astype(np.float32)


def settle(w: np.ndarray, s: EmotionSettings) -> np.ndarray:
    """Contrast, max emotions, preferred emotion and strength, frame by frame, on weights [frames, 10]."""
    if s.contrast != 1.0:
        mean = w.mean(axis=1, keepdims=True)
        w = np.clip(mean + s.contrast * (w - mean), 0.0, 1.0)
    if s.max_emotions < len(EMOTIONS):
        order = np.argsort(-w, axis=1, kind="stable")
        np.put_along_axis(w, order[:, int(s.max_emotions) :], 0.0, axis=1)
    if s.preferred:
        w = (1 - s.preferred_strength) * w + s.preferred_strength * vector(s.preferred)
    return w * s.strength


def _smooth(w: np.ndarray, fps: float, tau: float) -> np.ndarray:
    """Causal first-order low-pass with time constant `tau` (s), starting at the first frame."""
    a = 1.0 - math.exp(-1.0 / (fps * tau))
    out = np.empty_like(w)
    state = w[0].copy()
    for i in range(w.shape[0]):
        state += a * (w[i] - state)
        out[i] = state
    return out


def speaking(anim: Animation) -> np.ndarray:
    """Per frame, in [0, 1]: how much the lips and jaw are busy with speech (0 = at rest).

    Read from the animation itself, so it works on any path's output (phones or neural).
    Widened by 150 ms each side, so that an emotion's lip shapes never creep into a word.
    """
    motion = np.abs(anim.with_channels(ARKIT_NAMES).weights[:, _MOUTH_MOTION]).max(axis=1)
    busy = np.clip(motion / 0.06, 0.0, 1.0)
    k = max(1, round(0.15 * anim.fps))
    padded = np.pad(busy, k, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * k + 1)
    return windows.max(axis=1)


def pose_curves(weights: np.ndarray, fps: float, seed: int = 0) -> np.ndarray:
    """The emotion pose per frame [frames, 52] for emotion weights [frames, 10], patterns included."""
    poses = weights @ _POSE_MATRIX
    if weights.shape[0]:
        poses += _patterns(weights, fps, np.random.default_rng([seed, 7]))
    return np.clip(poses, 0.0, 1.0)


def _patterns(weights: np.ndarray, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Motion over time that belongs to an emotion: panting, wincing, a trembling chin."""
    n = weights.shape[0]
    t = np.arange(n) / fps
    out = np.zeros((n, len(ARKIT_NAMES)), np.float32)
    breath_w, pain_w, grief_w = (weights[:, EMOTIONS.index(e)] for e in ("outofbreath", "pain", "grief"))
    if breath_w.any():  # panting at ~0.7 Hz: jaw and nostrils open on each breath
        phase = 2 * np.pi * np.cumsum(0.65 + 0.1 * np.sin(2 * np.pi * 0.05 * t + rng.uniform(0, 6))) / fps
        breath = (0.5 - 0.5 * np.cos(phase)) * breath_w
        for name, amp in (("jawOpen", 0.2), ("mouthLowerDownLeft", 0.1), ("mouthLowerDownRight", 0.1),
                          ("noseSneerLeft", 0.25), ("noseSneerRight", 0.25), ("browInnerUp", 0.1)):  # fmt: skip
            out[:, INDEX[name]] += amp * breath
    if pain_w.any():  # winces every 1.5–3.5 s: eyes squeeze, brows drop
        wince = np.zeros(n)
        at = rng.uniform(0, 1.0)
        while at < t[-1] + 1:
            wince += np.exp(-0.5 * ((t - at) / 0.18) ** 2)
            at += rng.uniform(1.5, 3.5)
        wince = np.minimum(wince, 1.0) * pain_w
        for name, amp in (("eyeSquint", 0.3), ("browDown", 0.25), ("cheekSquint", 0.2), ("noseSneer", 0.2)):
            for side in ("Left", "Right"):
                out[:, INDEX[name + side]] += amp * wince
    if grief_w.any():  # the chin trembles at 4–6 Hz
        tremor = 0.5 + 0.5 * np.sin(2 * np.pi * np.cumsum(5 + rng.normal(0, 0.8, n)) / fps)
        out[:, INDEX["mouthShrugLower"]] += 0.15 * tremor * grief_w
    return out


def blend(speech: Animation, poses: np.ndarray, busy: np.ndarray | None = None) -> Animation:
    """Speech with emotion poses [frames, 52] laid over it, keeping the speech's lips (module doc).

    `busy` (per frame, 0–1) replaces `speaking(speech)`, for a stream that cannot look 150 ms ahead."""
    base = speech.with_channels(ARKIT_NAMES).weights
    rest = 1.0 - (speaking(speech) if busy is None else busy)
    rounded = np.clip(base[:, INDEX["mouthPucker"]] + base[:, INDEX["mouthFunnel"]], 0.0, 1.0)
    out = base.copy()
    screen = base + poses - base * poses  # adds without overshooting 1
    out[:, _FACE] = screen[:, _FACE]
    corners = poses[:, _CORNER] * (1.0 - 0.7 * rounded)[:, None]
    out[:, _CORNER] = base[:, _CORNER] + corners - base[:, _CORNER] * corners
    out[:, _LIP] = base[:, _LIP] + rest[:, None] * poses[:, _LIP] * (1.0 - base[:, _LIP])
    names = tuple(dict.fromkeys((*ARKIT_NAMES, *speech.names)))  # the 52 shapes first, then the rest
    weights = speech.with_channels(names).weights
    weights[:, : len(ARKIT_NAMES)] = out
    return Animation(weights, speech.fps, names)

def apply(
    anim: Animation,
    emotion: EmotionTrack | Mapping[str, float] | None,
    settings: EmotionSettings | None = None,
    seed: int = 0,
) -> Animation:
    """`anim` with an emotion (constant weights or a keyframe track) blended in, lips kept intact."""
    weights = curves(emotion, anim.num_frames, anim.fps, settings)
    return blend(anim, pose_curves(weights, anim.fps, seed))


@dataclass(frozen=True)
class EmotionStyle:
    """A random emotional style for the synthetic training corpus (see `random_style`)."""

    emotion: EmotionTrack
    settings: EmotionSettings

    def apply(self, anim: Animation, seed: int = 0) -> Animation:
        """`anim` in this style."""
        return apply(anim, self.emotion, self.settings, seed)


def random_style(rng: np.random.Generator, duration: float = 4.0) -> EmotionStyle:
    """A random emotion state for a clip of `duration` s, for corpus variation.

    A quarter of the styles are neutral; the rest hold one or two emotions at a random
    strength, and half of those change to another emotion part-way through, so a model
    trained on them sees lips that stay right under every emotion and its transitions.
    """
    if rng.random() < 0.25:
        return EmotionStyle(EmotionTrack.constant({}), EmotionSettings(transition=0.0))

    def state() -> dict[str, float]:
        names = rng.choice(len(EMOTIONS), size=int(rng.integers(1, 3)), replace=False)
        return {EMOTIONS[i]: float(rng.uniform(0.3, 1.0)) for i in names}

    keys = [{"time": 0.0, "emotions": state()}]
    if rng.random() < 0.5 and duration > 1.0:
        keys.append({"time": float(rng.uniform(0.3, 0.7) * duration), "emotions": state()})
    settings = EmotionSettings(transition=float(rng.uniform(0.1, 0.6)), max_emotions=3)
    return EmotionStyle(EmotionTrack.from_keyframes(keys), settings)


def from_text(text: str) -> dict[str, float]:
    """A rough emotion for a line of text from the VADER sentiment lexicon (valence only).

    Positive text → joy (amazement too when it exclaims and asks at once, "?!"); negative text →
    anger when it exclaims or shouts in capitals, else sadness. VADER scores valence, so which
    negative emotion is meant is a guess, and it misreads some phrases ("I can't believe we won!"
    scores negative because of "can't").
    """
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # lexicon loads only when asked for

    compound = float(SentimentIntensityAnalyzer().polarity_scores(text)["compound"])
    size = abs(compound)
    if size < 0.05:
        return {}
    exclaims = "!" in text
    shouts = any(len(w) > 1 and w.isalpha() and w.isupper() for w in text.split())
    if compound > 0:
        if "?!" in text or "!?" in text:
            return {"joy": round(0.6 * size, 3), "amazement": round(0.7 * size, 3)}
        return {"joy": round(size, 3)}
    return {"anger": round(size, 3)} if exclaims or shouts else {"sadness": round(size, 3)}



def auto(text: str | None, arousal: float) -> dict[str, float]:
    """The automatic emotion: `from_text` (neutral without text), scaled by the voice's arousal in
    [0, 1] from 0.5× (flat voice) to 1.5× (excited), capped at 1."""
    if not text:
        return {}
    scale = 0.5 + float(np.clip(arousal, 0.0, 1.0))
    return {name: round(min(1.0, w * scale), 3) for name, w in from_text(text).items()}
