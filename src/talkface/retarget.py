"""Rig conventions: talkface's ARKit animation retargeted onto the controls other characters have.

A rig is a set of *targets* (the character's blend shapes or expressions), each a weighted sum of
*terms*, clipped to [0, 1]. The terms every rig can use:

- the 52 ARKit shapes (``jawOpen``, ``mouthSmileLeft`` …);
- the 15 Oculus / Meta visemes (``viseme_sil``, ``viseme_PP`` … ``viseme_U``): each frame's mouth pose
  split, without negative parts, into the mouth poses of talkface's own viseme classes
  (`phonemes.VISEME_OF` over `phonemes.TARGETS`), what is left over being ``viseme_sil``; they sum to 1
  as Oculus Lipsync's do;
- talkface's ten emotions (``joy``, ``anger`` … as ``--emotion`` names them): the upper face and the
  mouth corners split the same way into the emotion poses of `post.emotion.POSES`;
- ``blink`` (both eyes, the part they share), ``blinkLeft`` and ``blinkRight`` (what one eye adds).

Built in: ``oculus`` (Meta's 15 visemes), ``vrm`` (VRM 1.0 expression presets) and ``vrm0`` (the same
for VRM 0.x's preset names); any other ``--rig`` value is a JSON file of the user's own mapping,
``{"target": {"term": weight, ...}, ...}``.
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .animation import Animation
from .errors import TalkfaceError
from .files import read_text
from .phonemes import TARGETS, VISEME_OF, VISEMES
from .post.emotion import POSES
from .post.settings import EMOTIONS
from .rig import ARKIT_NAMES, INDEX, POSE_NAMES

#: Oculus Lipsync's spelling of talkface's viseme classes (Meta's viseme reference: ..., aa, E, I, O, U).
OCULUS_SPELLING: dict[str, str] = {"ih": "I", "oh": "O", "ou": "U"}
#: The 15 Oculus / Meta visemes, in Oculus Lipsync's order.
OCULUS_VISEMES: tuple[str, ...] = tuple("viseme_" + OCULUS_SPELLING.get(v, v) for v in VISEMES)
BLINKS: tuple[str, ...] = ("blink", "blinkLeft", "blinkRight")
#: Every term a rig's target may weigh.
TERMS: tuple[str, ...] = (*ARKIT_NAMES, *OCULUS_VISEMES, *EMOTIONS, *BLINKS)
_TERM = {name: i for i, name in enumerate(TERMS)}
#: The largest weight a rig's term may have, either sign (a term's weight scales a 0-1 shape).
MAX_WEIGHT = 1000.0
_VISEME_COLS = slice(len(ARKIT_NAMES), len(ARKIT_NAMES) + len(OCULUS_VISEMES))
_EMOTION_COLS = slice(_VISEME_COLS.stop, _VISEME_COLS.stop + len(EMOTIONS))
_BLINK_COLS = slice(_EMOTION_COLS.stop, len(TERMS))

# The emotions are read from the upper face and the mouth corners (speech leaves them mostly alone).
_EXPRESSION = [INDEX[n] for n in ARKIT_NAMES
               if n.startswith(("brow", "eyeSquint", "eyeWide", "cheekSquint", "noseSneer", "mouthSmile",
                                "mouthFrown", "mouthDimple"))]  # fmt: skip
#: Emotion shares below this are the face's own play (a brow raised on a stressed word), not an emotion.
EMOTION_FLOOR = 0.1


def _viseme_poses() -> np.ndarray:
    """The ARKit pose [15, 52] of each viseme class: the mean of its phones' targets (silence: none)."""
    poses = np.zeros((len(VISEMES), len(ARKIT_NAMES)), np.float32)
    for i, v in enumerate(VISEMES):
        phones = [p for p, c in VISEME_OF.items() if c == v and p != "sil"]
        if phones:
            poses[i] = np.mean([TARGETS[p] for p in phones], axis=0)
    return poses


_VISEME_POSES = _viseme_poses()


def _both(arkit: np.ndarray, name: str) -> np.ndarray:
    return 0.5 * (arkit[:, INDEX[name + "Left"]] + arkit[:, INDEX[name + "Right"]])


def articulation(arkit: np.ndarray) -> np.ndarray:
    """What the lips, jaw and tongue do in ARKit frames [n, 52], as features [n, 11] the visemes are
    read from: how far the lips are apart (jawOpen less mouthClose: a jaw open behind closed lips is
    a closed mouth), pressed, rolled, rounded, drawn up, down and sideways, and the tongue shown.
    Smiles and frowns are left to the emotions."""
    a = np.asarray(arkit, np.float64)
    column = {n: a[:, INDEX[n]] for n in ("jawOpen", "mouthClose", "mouthRollLower", "mouthRollUpper",
                                           "mouthFunnel", "mouthPucker", "mouthShrugUpper", "tongueOut")}  # fmt: skip
    apart = np.maximum(0.0, column.pop("jawOpen") - column.pop("mouthClose"))
    sides = [_both(a, n) for n in ("mouthPress", "mouthLowerDown", "mouthUpperUp", "mouthStretch")]
    return np.stack([apart, *column.values(), *sides], axis=1)


_VISEME_FEATURES = articulation(_VISEME_POSES[1:])
_EMOTION_POSES = np.stack([POSES[e] for e in EMOTIONS])


def _term_poses() -> np.ndarray:
    """What each term looks like on an ARKit face [terms, 52], for previews of a rig's targets."""
    poses = np.zeros((len(TERMS), len(ARKIT_NAMES)), np.float32)
    poses[: len(ARKIT_NAMES)] = np.eye(len(ARKIT_NAMES))
    poses[_VISEME_COLS] = _VISEME_POSES
    poses[_EMOTION_COLS] = _EMOTION_POSES
    for name, sides in zip(BLINKS, (("Left", "Right"), ("Left",), ("Right",)), strict=True):
        for side in sides:
            poses[_TERM[name], INDEX["eyeBlink" + side]] = 1.0
    return poses


_TERM_POSES = _term_poses()


def nonnegative_shares(
    frames: np.ndarray, basis: np.ndarray, *, at_most_one: bool, iterations: int = 300, block: int = 4096
) -> np.ndarray:
    """Shares a [n, k] in [0, 1] with ``a @ basis`` closest to `frames` [n, f] (least squares), `block`
    frames at a time: accelerated projected gradient (FISTA), with a little ridge so that near-alike
    basis rows (the poses of /t/ and /n/) split a frame the same way every time. `at_most_one`: the
    shares of a frame add up to at most 1 (a mouth shows one viseme in full at most)."""
    gram = basis @ basis.T
    gram += 1e-3 * np.trace(gram) / len(gram) * np.eye(len(gram))
    step = 1.0 / float(np.linalg.eigvalsh(gram).max())
    project = _capped_simplex if at_most_one else (lambda v: np.clip(v, 0.0, 1.0))
    out = np.zeros((len(frames), len(basis)))
    for start in range(0, len(frames), block):
        target = frames[start : start + block] @ basis.T
        shares = np.zeros_like(target)
        moving, t = shares, 1.0
        for _ in range(iterations):
            nxt = project(moving - step * (moving @ gram - target))
            t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            moving = nxt + ((t - 1.0) / t_next) * (nxt - shares)
            shares, t = nxt, t_next
        out[start : start + block] = shares
    return out


def _capped_simplex(v: np.ndarray) -> np.ndarray:
    """Each row of `v` projected onto {a >= 0, sum(a) <= 1}: clipped at 0, or, where that sums over 1,
    onto the simplex (the sorting method)."""
    out = np.maximum(v, 0.0)
    over = out.sum(axis=1) > 1.0
    if over.any():
        u = -np.sort(-v[over], axis=1)
        excess = (np.cumsum(u, axis=1) - 1.0) / np.arange(1, v.shape[1] + 1)
        last = (u > excess).sum(axis=1) - 1
        theta = excess[np.arange(len(u)), last]
        out[over] = np.maximum(v[over] - theta[:, None], 0.0)
    return out


def oculus_visemes(arkit: np.ndarray) -> np.ndarray:
    """The 15 Oculus viseme weights [n, 15] of ARKit frames [n, 52]: the `articulation` split into
    that of the viseme poses, ``viseme_sil`` the rest; each frame sums to 1."""
    shares = nonnegative_shares(articulation(arkit), _VISEME_FEATURES, at_most_one=True)
    return np.concatenate([np.maximum(0.0, 1.0 - shares.sum(axis=1, keepdims=True)), shares], axis=1)


def emotion_shares(arkit: np.ndarray) -> np.ndarray:
    """talkface's ten emotions [n, 10] read back from ARKit frames [n, 52] (upper face and mouth corners),
    shares under `EMOTION_FLOOR` dropped and the rest rescaled to reach 1."""
    face = np.asarray(arkit, np.float64)[:, _EXPRESSION]
    shares = nonnegative_shares(face, _EMOTION_POSES[:, _EXPRESSION].astype(np.float64), at_most_one=False)
    return np.clip((shares - EMOTION_FLOOR) / (1.0 - EMOTION_FLOOR), 0.0, 1.0)


def blink_split(arkit: np.ndarray) -> np.ndarray:
    """(blink, blinkLeft, blinkRight) [n, 3]: the closure both eyes share, and what each eye adds,
    so that an avatar summing the three closes each eye exactly as far as the ARKit shapes do."""
    left, right = arkit[:, INDEX["eyeBlinkLeft"]], arkit[:, INDEX["eyeBlinkRight"]]
    both = np.minimum(left, right)
    return np.stack([both, left - both, right - both], axis=1)


@dataclass(frozen=True)
class Rig:
    """A rig convention: `targets`, each the weighted sum (`matrix` [targets, TERMS]) of terms."""

    name: str
    targets: tuple[str, ...]
    matrix: np.ndarray

    @classmethod
    def from_terms(cls, name: str, mapping: Mapping[str, Mapping[str, float]]) -> Rig:
        """A rig from ``{target: {term: weight}}``; TalkfaceError naming an unknown term or a weight that
        is not a number within ±`MAX_WEIGHT`."""
        matrix = np.zeros((len(mapping), len(TERMS)), np.float32)
        for row, (target, terms) in enumerate(mapping.items()):
            for term, weight in terms.items():
                # (a text "1" is no number; NaN fails the test too; a huge int is compared, never converted)
                if not (isinstance(weight, numbers.Real) and abs(weight) <= MAX_WEIGHT):
                    raise TalkfaceError(f"{name}: target {target!r}: the weight of {term!r} must be a number "
                                        f"from -{MAX_WEIGHT:g} to {MAX_WEIGHT:g}, not {weight!r}"[:300])  # fmt: skip
                if term not in _TERM:
                    raise TalkfaceError(
                        f"{name}: target {target!r} weighs an unknown term {term!r}; terms are the 52 ARKit shapes, "
                        f"the Oculus visemes ({OCULUS_VISEMES[0]} … {OCULUS_VISEMES[-1]}), the emotions "
                        f"({', '.join(EMOTIONS)}) and {', '.join(BLINKS)}"
                    )
                matrix[row, _TERM[term]] = weight
        return cls(name, tuple(mapping), matrix)

    def apply(self, anim: Animation) -> Animation:
        """`anim` on this rig's targets (weights in [0, 1]); head and eye angles it has are kept after them."""
        arkit = anim.with_channels(ARKIT_NAMES).weights.astype(np.float64)
        terms = np.zeros((anim.num_frames, len(TERMS)))
        terms[:, : len(ARKIT_NAMES)] = arkit
        used = np.abs(self.matrix).sum(axis=0) > 0
        for cols, derive in (
            (_VISEME_COLS, oculus_visemes),
            (_EMOTION_COLS, emotion_shares),
            (_BLINK_COLS, blink_split),
        ):
            if used[cols].any() and anim.num_frames:
                terms[:, cols] = derive(arkit)
        weights = np.clip(terms @ self.matrix.T.astype(np.float64), 0.0, 1.0)
        kept = tuple(n for n in POSE_NAMES if n in anim.names and n not in self.targets)
        angles = anim.with_channels(kept).weights
        return Animation(np.concatenate([weights.astype(np.float32), angles], axis=1), anim.fps, self.targets + kept)

    def poses(self) -> np.ndarray:
        """What each target looks like on an ARKit face [targets, 52], to preview the rig on the talkface
        head: per shape, the largest of its terms' poses, each scaled by its weight over the target's
        largest weight (negative weights take nothing away)."""
        weights = np.maximum(self.matrix, 0.0)
        top = weights.max(axis=1, keepdims=True)
        scaled = np.divide(weights, top, out=np.zeros_like(weights), where=top > 0)
        return np.clip((scaled[:, :, None] * _TERM_POSES[None]).max(axis=1), 0.0, 1.0)


def _oculus() -> dict[str, dict[str, float]]:
    return {v: {v: 1.0} for v in OCULUS_VISEMES}


# VRM 1.0 presets (https://github.com/vrm-c/vrm-specification/blob/master/specification/VRMC_vrm-1.0/expressions.md).
# The five mouth presets are the Japanese vowels a i u e o; a consonant viseme lends each the vowel
# shape it resembles (jaw, lip spread, rounding), and the lips-closed ones (sil, PP) lend nothing.
_VRM_MOUTH: dict[str, dict[str, float]] = {
    "aa": {"viseme_aa": 1.0, "viseme_kk": 0.3, "viseme_TH": 0.2},
    "ih": {"viseme_I": 1.0, "viseme_SS": 0.5, "viseme_DD": 0.2, "viseme_CH": 0.2, "viseme_FF": 0.2, "viseme_nn": 0.1},
    "ou": {"viseme_U": 1.0, "viseme_CH": 0.4, "viseme_RR": 0.3},
    "ee": {"viseme_E": 1.0, "viseme_DD": 0.3, "viseme_nn": 0.3, "viseme_kk": 0.2, "viseme_TH": 0.2},
    "oh": {"viseme_O": 1.0, "viseme_RR": 0.2},
}
# Emotions: relaxed has no counterpart among talkface's ten (none is calm contentment), so it stays 0.
_VRM_REST: dict[str, dict[str, float]] = {
    "blink": {"blink": 1.0},
    "blinkLeft": {"blinkLeft": 1.0},
    "blinkRight": {"blinkRight": 1.0},
    "happy": {"joy": 1.0, "cheekiness": 0.5},
    "angry": {"anger": 1.0, "disgust": 0.5},
    "sad": {"sadness": 1.0, "grief": 1.0},
    "relaxed": {},
    "surprised": {"amazement": 1.0, "fear": 0.5},
    # gaze, from the avatar's own point of view: its left eye looking out and its right eye in is left
    "lookUp": {"eyeLookUpLeft": 0.5, "eyeLookUpRight": 0.5},
    "lookDown": {"eyeLookDownLeft": 0.5, "eyeLookDownRight": 0.5},
    "lookLeft": {"eyeLookOutLeft": 0.5, "eyeLookInRight": 0.5},
    "lookRight": {"eyeLookInLeft": 0.5, "eyeLookOutRight": 0.5},
}
#: VRM 0.x's preset names (UniVRM's BlendShapePreset spelling) for the VRM 1.0 presets; 0.x has no surprised.
VRM0_NAMES: dict[str, str] = {
    "aa": "A", "ih": "I", "ou": "U", "ee": "E", "oh": "O",
    "blink": "Blink", "blinkLeft": "Blink_L", "blinkRight": "Blink_R",
    "happy": "Joy", "angry": "Angry", "sad": "Sorrow", "relaxed": "Fun",
    "lookUp": "LookUp", "lookDown": "LookDown", "lookLeft": "LookLeft", "lookRight": "LookRight",
}  # fmt: skip


def _vrm() -> dict[str, dict[str, float]]:
    return _VRM_MOUTH | _VRM_REST


def _vrm0() -> dict[str, dict[str, float]]:
    return {VRM0_NAMES[k]: v for k, v in _vrm().items() if k in VRM0_NAMES}


#: The built-in rigs by ``--rig`` name.
BUILTIN: dict[str, Callable[[], dict[str, dict[str, float]]]] = {"oculus": _oculus, "vrm": _vrm, "vrm0": _vrm0}
#: Largest user rig file read.
RIG_FILE_LIMIT = 1_000_000
#: Longest target name (characters): NPZ stores names at the width of the longest, so one long name among
#: thousands of targets made a 1 MB rig file an array of tens of gigabytes.
MAX_TARGET_NAME = 256
#: Most targets a rig may have (MetaHuman's face has under a thousand): every frame holds a weight for each,
#: and a 1 MB rig of 30 000 targets made a 10-minute animation of gigabytes (the server takes rigs from clients).
MAX_TARGETS = 4096


def load_rig(spec: str) -> Rig:
    """The rig `spec` names: a built-in (`BUILTIN`) or a user JSON file; TalkfaceError (one line) if
    it is neither, or if the file is not a valid mapping."""
    if spec in BUILTIN:
        return Rig.from_terms(spec, BUILTIN[spec]())
    path = Path(spec)
    if path.suffix.lower() != ".json":
        raise TalkfaceError(f"unknown rig {spec!r}; choose {', '.join(BUILTIN)} or a .json mapping file")
    name = os.fsencode(path.name).decode("utf-8", "replace")  # a name of other bytes is no USD layer data
    return Rig.from_terms(name, _read_mapping(path))


def _read_mapping(path: Path) -> dict[str, dict[str, float]]:
    """The ``{target: {term: weight}}`` of a rig file, checked: names are strings, weights numbers."""
    text = read_text(path, "rig", RIG_FILE_LIMIT)  # bounded: a device or a huge file ends in one line
    try:
        data = json.loads(text)
    except ValueError as e:
        raise TalkfaceError(f"{path}: not a readable JSON rig file ({_one_line(e)})") from None
    except RecursionError:
        raise TalkfaceError(f"{path}: not a readable JSON rig file (nested too deeply)") from None
    return checked_mapping(data, str(path), "a rig file")


def checked_mapping(data: object, where: str, what: str = "a rig") -> dict[str, dict[str, float]]:
    """`data` (parsed JSON: a rig file's, or a server client's `rig`) as ``{target: {term: weight}}``,
    checked: at most `MAX_TARGETS` targets, named (UTF-8, at most `MAX_TARGET_NAME` characters), each maps at least one
    term, weights are numbers (not true, not "1"); TalkfaceError beginning with `where` otherwise
    (`Rig.from_terms` checks the rest)."""
    shape = 'a JSON object {"target": {"term": weight, ...}, ...}'
    if not isinstance(data, dict) or not data:
        raise TalkfaceError(f"{where}: {what} is {shape}")
    if len(data) > MAX_TARGETS:
        raise TalkfaceError(f"{where}: {what} of {len(data)} targets; talkface takes at most {MAX_TARGETS}")
    mapping: dict[str, dict[str, float]] = {}
    for target, terms in data.items():
        if not target.strip():
            raise TalkfaceError(f"{where}: a target has an empty name")
        if not _utf8(target):  # a lone surrogate (JSON's "\\udcff") that no output file can write
            raise TalkfaceError(f"{where}: target {target!r} is not a UTF-8 name")
        if len(target) > MAX_TARGET_NAME:
            raise TalkfaceError(f"{where}: target {target[:40]!r}… has a name longer than {MAX_TARGET_NAME} characters")
        if not isinstance(terms, dict) or not terms:
            raise TalkfaceError(f"{where}: target {target!r} must map at least one term to a weight ({shape})")
        for term, weight in terms.items():
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                raise TalkfaceError(f"{where}: target {target!r}: the weight of {term!r} must be a number")
        mapping[target] = dict(terms)
    return mapping


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())
