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
press, roll, pucker) only show while the mouth is at rest (`busy`). None of the channels that
open the lips is ever raised during speech, so a smiling speaker still closes the lips on /p b m/.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from ..rig import ARKIT_NAMES, INDEX
from .settings import EMOTIONS, EmotionSettings, vector
from .smoothing import Blocks, coefficient, lowpass

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


#: How long the lips stay free of an emotion's lip shapes after (and, for a whole clip, before) they move.
BUSY_AROUND = 0.15
#: Panting: rate (Hz) and its slow swing; the shapes each breath opens.
PANT_RATE, PANT_SWING, PANT_SWING_RATE = 0.65, 0.1, 0.05
PANT = {"jawOpen": 0.2, "mouthLowerDownLeft": 0.1, "mouthLowerDownRight": 0.1,
        "noseSneerLeft": 0.25, "noseSneerRight": 0.25, "browInnerUp": 0.1}  # fmt: skip
#: Winces: first within a second, then every 1.5–3.5 s, each a Gaussian of 0.18 s; the shapes they squeeze.
WINCE_FIRST, WINCE_GAP, WINCE_WIDTH = (0.0, 1.0), (1.5, 3.5), 0.18
WINCE = {"eyeSquint": 0.3, "browDown": 0.25, "cheekSquint": 0.2, "noseSneer": 0.2}
#: The grieving chin trembles at 5 Hz (± 0.8 Hz frame to frame).
TREMOR_RATE, TREMOR_JITTER, TREMOR = 5.0, 0.8, 0.15
_PANT = np.zeros(len(ARKIT_NAMES))
_PANT[[INDEX[n] for n in PANT]] = list(PANT.values())
_WINCE = np.zeros(len(ARKIT_NAMES))
_WINCE[[INDEX[n + side] for n in WINCE for side in ("Left", "Right")]] = [v for v in WINCE.values() for _ in "LR"]
_BREATHLESS, _PAIN, _GRIEF = (EMOTIONS.index(e) for e in ("outofbreath", "pain", "grief"))


def mouth_motion(speech: np.ndarray) -> np.ndarray:
    """Per frame, 0–1: how busy the lips and jaw are with speech [frames, 52] (0 = at rest)."""
    return (np.abs(speech[:, _MOUTH_MOTION]).max(axis=1) / 0.06).clip(0.0, 1.0)


def ease_towards(targets: np.ndarray, settings: EmotionSettings, fps: float, state: np.ndarray | None) -> np.ndarray:
    """The emotion state per frame: the settled targets [n, 10] eased in over the transition time
    (a one-pole low-pass from `state`, the last frame's; from the first target when None)."""
    if settings.transition <= 0 or not len(targets):
        return targets
    return lowpass(targets, coefficient(settings.transition, fps), state)


class Patterns:
    """An emotion's motion over time (panting, winces, a trembling chin), a block of frames at a time."""

    def __init__(self, seed: int, fps: float) -> None:
        self.fps = fps
        self.rng = [np.random.default_rng([seed, 7, k]) for k in range(3)]
        self.pant_offset = float(self.rng[0].uniform(0, 6))
        self.pant_phase = self.tremor_phase = 0.0
        self.winces = np.array([float(self.rng[1].uniform(*WINCE_FIRST))])  # from a second before the block on

    def step(self, t: np.ndarray, w: np.ndarray) -> np.ndarray:
        """The patterns' ARKit weights [n, 52] at times t for emotion states w [n, 10]."""
        if not len(t):
            return np.zeros((0, len(ARKIT_NAMES)))
        return patterns([self], t, w, Blocks.of([len(t)]))

    def _wince_times(self, end: float) -> np.ndarray:
        """The winces within a second of a block that ends at time `end` (and those before, kept for the next)."""
        gaps = []
        while self.winces[-1] + sum(gaps) < end + 1.0:  # a loop over winces
            gaps.append(float(self.rng[1].uniform(*WINCE_GAP)))
        winces = np.concatenate([self.winces, self.winces[-1] + np.cumsum(gaps)]) if gaps else self.winces
        if winces[0] <= end - 1.0:
            self.winces = winces[winces > end - 1.0]
        else:
            self.winces = winces
        return winces


def patterns(each: list[Patterns], t: np.ndarray, w: np.ndarray, blocks: Blocks) -> np.ndarray:
    """`Patterns.step` of several streams at once: each block of times t and states w [rows, 10]
    with its stream's patterns."""
    fps = blocks.rows([p.fps for p in each]) if blocks.count > 1 else each[0].fps
    offset = blocks.rows([p.pant_offset for p in each]) if blocks.count > 1 else each[0].pant_offset
    rate = PANT_RATE + PANT_SWING * np.sin(2 * math.pi * PANT_SWING_RATE * t + offset)
    pant = blocks.rows([p.pant_phase for p in each]) + blocks.cumsum(2 * math.pi * rate / fps)
    jitter = np.concatenate(
        [p.rng[2].normal(0, TREMOR_JITTER, n) for p, n in zip(each, blocks.sizes.tolist(), strict=True)]
    )
    tremor = blocks.rows([p.tremor_phase for p in each]) + blocks.cumsum(2 * math.pi * (TREMOR_RATE + jitter) / fps)
    ends = t[blocks.lasts].tolist()
    for p, pant_end, tremor_end in zip(each, pant[blocks.lasts].tolist(), tremor[blocks.lasts].tolist(), strict=True):
        p.pant_phase, p.tremor_phase = pant_end, tremor_end
    winces = [p._wince_times(end) for p, end in zip(each, ends, strict=True)]
    out = np.zeros((len(t), len(ARKIT_NAMES)))
    felt = np.add.reduceat(w != 0, blocks.firsts, axis=0) > 0  # [blocks, 10]
    if felt[:, _BREATHLESS].any():  # (a term of 0 where a block does not feel it)
        out += _PANT * ((0.5 - 0.5 * np.cos(pant)) * w[:, _BREATHLESS])[:, None]
    for i in np.flatnonzero(felt[:, _PAIN]).tolist():  # each frame feels the (at most two) winces within a second of it
        rows = slice(int(blocks.firsts[i]), int(blocks.lasts[i]) + 1)
        out[rows] += _WINCE * (_wincing(t[rows], winces[i]) * w[rows, _PAIN])[:, None]
    if felt[:, _GRIEF].any():
        out[:, INDEX["mouthShrugLower"]] += TREMOR * (0.5 + 0.5 * np.sin(tremor)) * w[:, _GRIEF]
    return out


def _wincing(t: np.ndarray, winces: np.ndarray) -> np.ndarray:
    """How much of a wince the frames at times t show (the nearest before and after, each within a second)."""
    after = np.searchsorted(winces, t)
    near = np.stack([winces[np.maximum(after - 1, 0)], winces[np.minimum(after, len(winces) - 1)]], axis=1)
    bumps = np.exp(-0.5 * ((t[:, None] - near) / WINCE_WIDTH) ** 2) * (np.abs(t[:, None] - near) < 1.0)
    bumps[after == 0, 0] = 0.0  # (no wince before the first)
    bumps[after == len(winces), 1] = 0.0
    return np.minimum(bumps.sum(axis=1), 1.0)


def poses(state: np.ndarray, patterns: np.ndarray) -> np.ndarray:
    """The emotion pose per frame [n, 52] for emotion states [n, 10] and their patterns."""
    return (state @ _POSE_MATRIX + patterns).clip(0.0, 1.0)


def blend(base: np.ndarray, poses: np.ndarray, busy: np.ndarray) -> np.ndarray:
    """Speech weights [frames, 52] with emotion poses [frames, 52] laid over them, keeping the
    speech's lips where the mouth is `busy` (per frame, 0–1; module doc)."""
    rest = 1.0 - busy
    rounded = (base[:, INDEX["mouthPucker"]] + base[:, INDEX["mouthFunnel"]]).clip(0.0, 1.0)
    out = base.copy()
    screen = base + poses - base * poses  # adds without overshooting 1
    out[:, _FACE] = screen[:, _FACE]
    corners = poses[:, _CORNER] * (1.0 - 0.7 * rounded)[:, None]
    out[:, _CORNER] = base[:, _CORNER] + corners - base[:, _CORNER] * corners
    out[:, _LIP] = base[:, _LIP] + rest[:, None] * poses[:, _LIP] * (1.0 - base[:, _LIP])
    return out


_PIECE = 2000  # characters VADER scores at a time (its "but" rule is quadratic in the words it is given)


def _valence(text: str) -> float:
    """VADER's compound score of `text`, -1..1. A long text is scored a piece at a time, the pieces'
    raw sums taken back from VADER's normalisation (x / sqrt(x² + 15)) and added, as VADER adds its
    words' (a short text is one piece: VADER's own score)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # lexicon loads only when asked for

    analyser, total = SentimentIntensityAnalyzer(), 0.0
    # VADER reads each emoji as its description ("grinning face"), several words from one character: read
    # so before the text is cut, so that a piece's characters bound its words (2000 emoji were 10 000
    # words, and a line of 200 000 of them took over two minutes)
    text = "".join(f" {analyser.emojis[c]} " if c in analyser.emojis else c for c in text)
    for piece in _pieces(text, _PIECE):
        compound = min(0.9999, max(-0.9999, float(analyser.polarity_scores(piece)["compound"])))
        total += compound * math.sqrt(15 / (1 - compound**2))
    return total / math.sqrt(total**2 + 15)


def _pieces(text: str, most: int) -> Iterator[str]:
    """`text` cut at spaces into pieces of at most `most` characters (a longer word anywhere)."""
    start = 0
    while start < len(text):
        end = start + most
        if end < len(text):
            space = text.rfind(" ", start + 1, end)
            end = space if space > start else end
        yield text[start:end]
        start = end


def from_text(text: str) -> dict[str, float]:
    """A rough emotion for a line of text from the VADER sentiment lexicon (valence only).

    Positive text → joy (amazement too when it exclaims and asks at once, "?!"); negative text →
    anger when it exclaims or shouts in capitals, else sadness. VADER scores valence, so which
    negative emotion is meant is a guess, and it misreads some phrases ("I can't believe we won!"
    scores negative because of "can't").
    """
    compound = _valence(text)
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
