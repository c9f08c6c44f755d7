"""A transcript's words, each added to the aligner's dictionary: English from CMUdict (a missing word
with a pronunciation guessed from its spelling), other languages as espeak-ng pronounces them."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable

from pocketsphinx import Decoder

from ..errors import shown as shown_word
from ..text import normalize_text
from .decoder import _LOCK, _aligner

log = logging.getLogger(__name__)

#: Rough letter-to-sound rules for words missing from CMUdict, matched longest spelling first.
_SPELLINGS = {
    "tch": "CH", "sch": "S K", "igh": "AY", "ch": "CH", "sh": "SH", "th": "TH", "ph": "F", "wh": "W",
    "ck": "K", "ng": "NG", "qu": "K W", "gh": "G", "kn": "N", "wr": "R", "ee": "IY", "ea": "IY",
    "oo": "UW", "ou": "AW", "ow": "OW", "oi": "OY", "oy": "OY", "ai": "EY", "ay": "EY", "ei": "EY",
    "ey": "IY", "au": "AO", "aw": "AO", "ie": "IY", "ar": "AA R", "er": "ER", "ir": "ER", "ur": "ER",
    "or": "AO R", "a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH",
    "i": "IH", "j": "JH", "k": "K", "l": "L", "m": "M", "n": "N", "o": "AA", "p": "P", "q": "K",
    "r": "R", "s": "S", "t": "T", "u": "AH", "v": "V", "w": "W", "x": "K S", "y": "Y", "z": "Z",
}  # fmt: skip


def _english(lang: str | None) -> bool:
    return lang is None or lang.strip().lower().replace("_", "-").split("-")[0] == "en"


def _words(text: str, lang: str | None = None) -> list[str]:
    """Lowercase CMUdict words of `text` (numbers and abbreviations read out as English of `lang` reads
    them, as `say` reads them: "101" is "one hundred and one" in en-gb; accents and punctuation dropped),
    each in the aligner's dictionary: a missing one is added with a guessed pronunciation."""
    text = unicodedata.normalize("NFKD", normalize_text(text, lang)).encode("ascii", "ignore").decode()
    words = [token.strip("'") for token in re.findall(r"[a-z']+", text.lower()) if token.strip("'")]
    with _LOCK:
        new = _add_words(_aligner(), words)
    if new:  # one line, however many: a transcript of invented words is not thousands of warnings
        shown = ", ".join(f"{shown_word(w)} as {shown_word(_guess_pronunciation(w))}" for w in new[:3])
        more = f" and {len(new) - 3} more" if len(new) > 3 else ""
        log.warning("not in the pronunciation dictionary, guessed from the spelling: %s%s", shown, more)
    return words


def _espeak_words(text: str, lang: str) -> list[str]:
    """Words of `text` as espeak-ng reads it in `lang`, each named by its pronunciation ("@m_ih") and
    added to the aligner's dictionary under that name."""
    from ..tts import load_voice

    voice = load_voice(None, lang)
    if not text.strip():
        return []
    words = ["@" + "_".join(phones) for phones in voice.pronounce(text)]
    with _LOCK:
        _add_words(_aligner(), words)
    return words


def _add_words(decoder: Decoder, words: Iterable[str]) -> list[str]:
    """Adds the words the decoder's dictionary lacks, and returns them: a word spelled by its
    pronunciation ("@m_ih", from espeak-ng) as that, another with a pronunciation guessed from its
    spelling. The caller holds `_LOCK`."""
    new = [w for w in dict.fromkeys(words) if decoder.lookup_word(w) is None]
    for k, word in enumerate(new):
        phones = word[1:].replace("_", " ").upper() if word.startswith("@") else _guess_pronunciation(word)
        decoder.add_word(word, phones, update=k == len(new) - 1)
    return [w for w in new if not w.startswith("@")]


def _guess_pronunciation(word: str) -> str:
    """Rough ARPAbet for an out-of-vocabulary word from spelling rules: good enough for lip shapes."""
    w = word.replace("'", "")
    if len(w) > 2 and w.endswith("e") and w[-2] not in "aeiouy":
        w = w[:-1]  # silent final e
    phones: list[str] = []
    i = 0
    while i < len(w):
        chunk = next(w[i : i + n] for n in (3, 2, 1) if w[i : i + n] in _SPELLINGS)
        sound = "IY" if chunk == "y" and i > 0 else _SPELLINGS[chunk]
        for p in sound.split():
            if not phones or phones[-1] != p:  # doubled letters are one sound
                phones.append(p)
        i += len(chunk)
    return " ".join(phones)
