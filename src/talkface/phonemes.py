"""Phoneme inventory: ARPAbet phones, IPA→ARPAbet, viseme classes and a mouth pose per phone.

Every phoneme source (espeak-ng, Piper, pocketsphinx, hand labels) is normalised to the lowercase
ARPAbet set below, with ``sil`` for silence, before it reaches the coarticulation model.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .audio import MAX_SECONDS
from .errors import TalkfaceError
from .files import read_text
from .rig import ARKIT_NAMES, INDEX

SILENCE = "sil"

#: CMU ARPAbet (39 phones, no stress) plus silence.
ARPABET: tuple[str, ...] = (
    "aa", "ae", "ah", "ao", "aw", "ay", "b", "ch", "d", "dh", "eh", "er", "ey", "f", "g", "hh",
    "ih", "iy", "jh", "k", "l", "m", "n", "ng", "ow", "oy", "p", "r", "s", "sh", "t", "th", "uh",
    "uw", "v", "w", "y", "z", "zh", SILENCE,
)  # fmt: skip

BILABIALS = frozenset({"p", "b", "m"})
LABIODENTALS = frozenset({"f", "v"})
DENTALS = frozenset({"th", "dh"})
OPEN_VOWELS = frozenset({"aa", "ae", "ah", "ao", "aw", "ay"})
ROUNDED = frozenset({"uw", "ow", "w", "uh", "oy"})
VOWELS = frozenset({"aa", "ae", "ah", "ao", "aw", "ay", "eh", "er", "ey", "ih", "iy", "ow", "oy", "uh", "uw"})

#: Other spellings found in phone sets (TIMIT, HTS labels, pocketsphinx fillers) → ARPAbet.
_ALIASES = {
    "ax": "ah", "axr": "er", "ix": "ih", "ux": "uw", "dx": "d", "nx": "n", "hv": "hh",
    "el": "l", "em": "m", "en": "n", "eng": "ng", "q": SILENCE,
    "pau": SILENCE, "sp": SILENCE, "spn": SILENCE, "h#": SILENCE, "ssil": SILENCE, "x": SILENCE,
    "+spn+": SILENCE, "+nsn+": SILENCE, "<sil>": SILENCE, "_": SILENCE, "": SILENCE,
}  # fmt: skip


def normalize(phone: str) -> str:
    """ARPAbet name of any common spelling ("AA1", "ax", "pau" …); raises KeyError if unknown."""
    p = phone.strip().lower().rstrip("012")
    p = _ALIASES.get(p, p)
    if p not in ARPABET:
        raise KeyError(phone)
    return p


# IPA (as espeak-ng and Piper print it) → ARPAbet. Multi-symbol entries are matched first. A sound
# maps by what the lips do: front rounded vowels (y ʏ ø œ) to rounded phones, unrounded close
# vowels (ɨ ɯ) to "ih" but Japanese u with compressed lips (ɯᵝ) to "uh", bilabial fricatives
# (ɸ β) to bilabial stops, not to the labiodental f v. Greek ε is how espeak-ng's Danish writes ɛ.
_IPA = {
    "aɪ": "ay", "aʊ": "aw", "ɔɪ": "oy", "eɪ": "ey", "oʊ": "ow", "əʊ": "ow", "ɛə": "eh", "ɪə": "ih",
    "ʊə": "uh", "tʃ": "ch", "dʒ": "jh", "tɕ": "ch", "dʑ": "jh", "ʈʂ": "ch", "ɖʐ": "jh", "ts": "s",
    "dz": "z", "ɯᵝ": "uh",
    "i": "iy", "ɪ": "ih", "ᵻ": "ih", "ɨ": "ih", "ɯ": "ih", "e": "ey", "ɛ": "eh", "ε": "eh", "æ": "ae",
    "a": "aa", "ɑ": "aa", "ɒ": "aa", "ɶ": "aa", "ɐ": "ah", "ʌ": "ah", "ə": "ah", "ɘ": "ah", "ɤ": "ah",
    "ɚ": "er", "ɝ": "er", "ɜ": "er", "ɞ": "er", "ɔ": "ao", "o": "ow", "ɵ": "ow", "ø": "ow",
    "œ": "ow", "ʊ": "uh", "u": "uw", "y": "uw", "ʉ": "uw", "ʏ": "uh",
    "p": "p", "b": "b", "ɓ": "b", "m": "m", "ɱ": "m", "f": "f", "v": "v", "ɸ": "p", "β": "b",
    "ʋ": "v", "θ": "th", "ð": "dh", "t": "t", "d": "d", "ɗ": "d", "ʈ": "t", "ɖ": "d", "ɾ": "d",
    "ɽ": "d", "s": "s", "z": "z", "ʃ": "sh", "ʒ": "zh", "ʂ": "sh", "ʐ": "zh", "ɕ": "sh", "ʑ": "zh",
    "ɧ": "sh", "k": "k", "g": "g", "ɡ": "g", "ɠ": "g", "c": "k", "ɟ": "g", "ʄ": "g", "q": "k",
    "ɢ": "g", "x": "hh", "ɣ": "g", "χ": "hh", "ʁ": "r", "ħ": "hh", "ʕ": "hh", "h": "hh", "ɦ": "hh",
    "ç": "hh", "ʝ": "y", "n": "n", "ɲ": "n", "ɳ": "n", "ŋ": "ng", "ɴ": "ng", "l": "l", "ɫ": "l",
    "ʎ": "l", "ɬ": "l", "ɭ": "l", "ʟ": "l", "ɹ": "r", "r": "r", "ʀ": "r", "ɻ": "r", "j": "y",
    "w": "w", "ɥ": "w", "ʍ": "w", "ʔ": SILENCE, "_": SILENCE,
}  # fmt: skip
#: Characters of the table's own entries (the cedilla of ç, the ᵝ of ɯᵝ) are never dropped as marks.
_KEPT = frozenset("".join(unicodedata.normalize("NFD", k) for k in _IPA))
_SEPARATORS = frozenset("‿-|")


def _is_mark(ch: str) -> bool:
    """Whether `ch` only modifies a sound: stress, length, tone, a diacritic or modifier letter."""
    if ch in _KEPT:
        return False
    return ch in _SEPARATORS or unicodedata.category(ch) in {"Mn", "Mc", "Me", "Lm", "Sk", "Nd"}


def ipa_to_arpabet(symbol: str) -> list[str]:
    """ARPAbet phones for one IPA phoneme symbol (a diphthong or affricate stays one phone).

    Stress, length, tone (marks or digits), diacritics and modifier letters are dropped, so a
    centralised, nasal or syllabic vowel ("ä", "ɑ̃", "n̩") maps like the plain one. A symbol with no
    entry is split into its characters, and characters that still have none are skipped.
    """
    s = "".join(ch for ch in unicodedata.normalize("NFD", symbol) if not _is_mark(ch)).strip()
    s = unicodedata.normalize("NFC", s)
    if not s:
        return []
    if s in _IPA:
        return [_IPA[s]]
    out: list[str] = []
    i = 0
    while i < len(s):
        pair = s[i : i + 2]
        if len(pair) == 2 and pair in _IPA:
            out.append(_IPA[pair])
            i += 2
            continue
        if s[i] in _IPA:
            out.append(_IPA[s[i]])
        i += 1
    return out


@dataclass(frozen=True)
class TimedPhone:
    """One phone (ARPAbet) spoken from `start` to `end` seconds."""

    start: float
    end: float
    phone: str

    @property
    def mid(self) -> float:
        return 0.5 * (self.start + self.end)


def merge_silences(phones: Iterable[TimedPhone]) -> list[TimedPhone]:
    """Sorted phones with zero-length entries dropped and neighbouring silences merged."""
    out: list[TimedPhone] = []
    for p in sorted(phones, key=lambda p: p.start):
        if p.end <= p.start:
            continue
        if out and p.phone == SILENCE and out[-1].phone == SILENCE:
            out[-1] = TimedPhone(out[-1].start, max(out[-1].end, p.end), SILENCE)  # (one may hold the other)
        else:
            out.append(p)
    return out


def read_phones_tsv(path: str) -> list[TimedPhone]:
    """Read a phone table as `phones_tsv` writes it (start_s, end_s, phone); lines of other shapes are
    skipped. TalkfaceError naming the file and line for a bad time or an unknown phone."""
    phones = []
    for number, line in enumerate(read_text(path, "phone table", PHONE_TABLE_LIMIT).splitlines(), 1):
        cols = line.split("\t")
        if len(cols) != 3 or cols[0] == "start_s":
            continue
        try:
            start, end = float(cols[0]), float(cols[1])
            if not 0 <= start <= end <= MAX_SECONDS:  # (NaN too; times past any audio overflowed the scoring)
                raise ValueError
            phones.append(TimedPhone(start, end, normalize(cols[2])))
        except (ValueError, KeyError):
            raise TalkfaceError(f"{path}:{number}: not start_s, end_s (0 <= start <= end <= {MAX_SECONDS}) and a "
                                f"known phone: {line[:80]!r}") from None  # fmt: skip
    return phones


#: Largest phone table read: an hour of speech is about 1 MB.
PHONE_TABLE_LIMIT = 64 << 20


def phones_tsv(phones: Iterable[TimedPhone]) -> str:
    """Tab-separated phone table with a header line: start_s, end_s, phone."""
    rows = ["start_s\tend_s\tphone"]
    rows += [f"{p.start:.3f}\t{p.end:.3f}\t{p.phone}" for p in phones]
    return "\n".join(rows) + "\n"


#: Meta/Oculus-style viseme classes: what the mouth shows, used for 2D tracks and model heads.
VISEMES: tuple[str, ...] = (
    "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou",
)  # fmt: skip

VISEME_OF: dict[str, str] = {
    "sil": "sil", "p": "PP", "b": "PP", "m": "PP", "f": "FF", "v": "FF", "th": "TH", "dh": "TH",
    "t": "DD", "d": "DD", "k": "kk", "g": "kk", "ng": "kk", "hh": "kk", "ch": "CH", "jh": "CH",
    "sh": "CH", "zh": "CH", "s": "SS", "z": "SS", "n": "nn", "l": "nn", "r": "RR", "er": "RR",
    "aa": "aa", "ae": "aa", "ah": "aa", "aw": "aa", "ay": "aa", "eh": "E", "ey": "E", "ih": "ih",
    "iy": "ih", "y": "ih", "ao": "oh", "ow": "oh", "oy": "oh", "uh": "ou", "uw": "ou", "w": "ou",
}  # fmt: skip


def _pose(**weights: float) -> np.ndarray:
    """A 52-vector from keyword weights; `mouthX` / `eyeX` without a side sets both sides."""
    v = np.zeros(len(ARKIT_NAMES), np.float32)
    for name, w in weights.items():
        names = [name] if name in INDEX else [name + "Left", name + "Right"]
        for n in names:
            v[INDEX[n]] = w
    return v


#: Mouth pose (ARKit weights) each phone aims at when articulated on its own.
TARGETS: dict[str, np.ndarray] = {
    "sil": _pose(),
    # lips pressed together; mouthClose is raised to the jaw's opening during the closure
    "p": _pose(jawOpen=0.05, mouthClose=0.05, mouthPress=0.35, mouthRollLower=0.12, mouthRollUpper=0.08),
    "b": _pose(jawOpen=0.05, mouthClose=0.05, mouthPress=0.3, mouthRollLower=0.1, mouthRollUpper=0.06),
    "m": _pose(jawOpen=0.04, mouthClose=0.04, mouthPress=0.25, mouthRollLower=0.08, mouthRollUpper=0.05),
    # lower lip tucked under the upper teeth
    "f": _pose(jawOpen=0.1, mouthRollLower=0.6, mouthUpperUp=0.22, mouthShrugUpper=0.15),
    "v": _pose(jawOpen=0.1, mouthRollLower=0.55, mouthUpperUp=0.2, mouthShrugUpper=0.12),
    # tongue tip between the teeth
    "th": _pose(jawOpen=0.18, tongueOut=0.55, mouthLowerDown=0.15, mouthUpperUp=0.12),
    "dh": _pose(jawOpen=0.16, tongueOut=0.45, mouthLowerDown=0.12, mouthUpperUp=0.1),
    "t": _pose(jawOpen=0.12, mouthLowerDown=0.12, mouthUpperUp=0.12, mouthStretch=0.12),
    "d": _pose(jawOpen=0.13, mouthLowerDown=0.12, mouthUpperUp=0.1, mouthStretch=0.1),
    "n": _pose(jawOpen=0.12, mouthLowerDown=0.1, mouthUpperUp=0.08, mouthStretch=0.08),
    "l": _pose(jawOpen=0.2, mouthLowerDown=0.15, mouthUpperUp=0.1),
    "s": _pose(jawOpen=0.05, mouthStretch=0.28, mouthUpperUp=0.2, mouthLowerDown=0.18, mouthSmile=0.1),
    "z": _pose(jawOpen=0.06, mouthStretch=0.25, mouthUpperUp=0.18, mouthLowerDown=0.16, mouthSmile=0.08),
    "sh": _pose(jawOpen=0.08, mouthFunnel=0.5, mouthPucker=0.2, mouthUpperUp=0.28, mouthLowerDown=0.22),
    "zh": _pose(jawOpen=0.08, mouthFunnel=0.45, mouthPucker=0.2, mouthUpperUp=0.25, mouthLowerDown=0.2),
    "ch": _pose(jawOpen=0.08, mouthFunnel=0.45, mouthPucker=0.25, mouthUpperUp=0.25, mouthLowerDown=0.2),
    "jh": _pose(jawOpen=0.08, mouthFunnel=0.4, mouthPucker=0.22, mouthUpperUp=0.22, mouthLowerDown=0.18),
    "k": _pose(jawOpen=0.18, mouthLowerDown=0.1, mouthUpperUp=0.05),
    "g": _pose(jawOpen=0.18, mouthLowerDown=0.1, mouthUpperUp=0.05),
    "ng": _pose(jawOpen=0.15, mouthLowerDown=0.08),
    "hh": _pose(jawOpen=0.22, mouthLowerDown=0.12, mouthUpperUp=0.05),
    "y": _pose(jawOpen=0.1, mouthStretch=0.3, mouthSmile=0.15, mouthUpperUp=0.1),
    "r": _pose(jawOpen=0.12, mouthFunnel=0.3, mouthPucker=0.3, mouthUpperUp=0.12),
    "w": _pose(jawOpen=0.08, mouthPucker=0.85, mouthFunnel=0.3),
    "aa": _pose(jawOpen=0.6, mouthLowerDown=0.35, mouthUpperUp=0.15),
    "ae": _pose(jawOpen=0.48, mouthLowerDown=0.3, mouthUpperUp=0.25, mouthStretch=0.25),
    "ah": _pose(jawOpen=0.42, mouthLowerDown=0.25, mouthUpperUp=0.12),
    "ao": _pose(jawOpen=0.48, mouthFunnel=0.4, mouthPucker=0.15, mouthLowerDown=0.2),
    "aw": _pose(jawOpen=0.55, mouthLowerDown=0.32, mouthUpperUp=0.12),
    "ay": _pose(jawOpen=0.55, mouthLowerDown=0.32, mouthUpperUp=0.15),
    "eh": _pose(jawOpen=0.35, mouthLowerDown=0.25, mouthUpperUp=0.15, mouthStretch=0.2),
    "ey": _pose(jawOpen=0.3, mouthLowerDown=0.2, mouthUpperUp=0.15, mouthStretch=0.25),
    "er": _pose(jawOpen=0.22, mouthFunnel=0.35, mouthPucker=0.2, mouthUpperUp=0.1),
    "ih": _pose(jawOpen=0.22, mouthLowerDown=0.15, mouthUpperUp=0.15, mouthStretch=0.3, mouthSmile=0.1),
    "iy": _pose(jawOpen=0.14, mouthLowerDown=0.1, mouthUpperUp=0.15, mouthStretch=0.4, mouthSmile=0.2),
    "ow": _pose(jawOpen=0.35, mouthFunnel=0.55, mouthPucker=0.45, mouthLowerDown=0.1),
    "oy": _pose(jawOpen=0.4, mouthFunnel=0.5, mouthPucker=0.35, mouthLowerDown=0.12),
    "uh": _pose(jawOpen=0.2, mouthFunnel=0.4, mouthPucker=0.45),
    "uw": _pose(jawOpen=0.12, mouthFunnel=0.4, mouthPucker=0.8),
}  # fmt: skip

#: Diphthongs glide from their own pose to a second one over the second part of the phone.
DIPHTHONG_END: dict[str, str] = {"aw": "uw", "ay": "iy", "oy": "iy", "ey": "iy", "ow": "uw"}
