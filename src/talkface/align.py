"""Phone timings from speech with pocketsphinx: forced alignment of a transcript, or phone recognition.

Both run the packaged US English model offline. Decoders take ~70 ms to build, so one of each is kept
and shared under a lock (pocketsphinx decoders are not thread-safe).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from difflib import SequenceMatcher
from os import PathLike

import numpy as np
from pocketsphinx import Decoder, get_model_path

from .audio import SAMPLE_RATE, load_audio
from .errors import TalkfaceError
from .phonemes import SILENCE, TimedPhone, merge_silences, normalize

log = logging.getLogger(__name__)

FRAME_RATE = 100  # pocketsphinx frames per second
_LOCK = threading.Lock()

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
_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
)  # fmt: skip
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))


def align(audio: np.ndarray, text: str, sample_rate: int = SAMPLE_RATE) -> list[TimedPhone]:
    """Phones of `text` timed against the speech in `audio` (forced alignment).

    The result is contiguous from 0 to the audio's duration, with pauses as silence. Words missing
    from the dictionary get a rough spelled-out pronunciation (a warning is logged the first time
    each is seen, then the decoder keeps it). Raises
    `TalkfaceError` for an empty transcript or when the text cannot be aligned to the audio.
    """
    audio = load_audio(audio, sample_rate)
    words = _words(text)
    if not words:
        raise TalkfaceError(f"transcript is empty or has nothing to pronounce: {text!r}")
    pcm = _pcm(audio)
    with _LOCK:
        decoder = _aligner()
        for word in words:
            if decoder.lookup_word(word) is None:
                phones = _guess_pronunciation(word)
                log.warning("%r is not in the pronunciation dictionary; guessing %s", word, phones)
                decoder.add_word(word, phones)
        try:
            decoder.set_align_text(" ".join(words))
            _decode(decoder, pcm)  # word alignment first; set_alignment() refines it to phones
            decoder.set_alignment()
            _decode(decoder, pcm)
        except RuntimeError:
            raise TalkfaceError(
                "could not align the transcript to the audio (does the text match the speech?)"
            ) from None
        segments = [(p.name, p.start, p.start + p.duration) for p in decoder.get_alignment().phones()]
    return _timeline(segments, len(audio) / SAMPLE_RATE)


def recognize(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> list[TimedPhone]:
    """Phones heard in `audio` without a transcript (phone-loop recognition), contiguous 0..duration.

    Less accurate than `align`: expect some wrong or missing phones, but usable timing for lips.
    """
    audio = load_audio(audio, sample_rate)
    pcm = _pcm(audio)
    with _LOCK:
        decoder = _recognizer()
        _decode(decoder, pcm)
        segments = [(s.word, s.start_frame, s.end_frame + 1) for s in decoder.seg() or ()]
    return _timeline(segments, len(audio) / SAMPLE_RATE)


def read_htk_labels(path: str | PathLike) -> list[TimedPhone]:
    """Phones of an HTK/HTS label file ("start end label", times in 100 ns units).

    For HTS full-context labels (``x^y-CUR+z=w@...``) the current phone is taken.
    """
    phones = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = list(f)
    except OSError as e:
        raise TalkfaceError(f"{path}: cannot read label file ({e.strerror})") from None
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        try:
            label = fields[2]
            if "-" in label and "+" in label:
                label = label.split("-", 1)[1].split("+", 1)[0]
            phones.append(TimedPhone(int(fields[0]) / 1e7, int(fields[1]) / 1e7, normalize(label)))
        except (IndexError, ValueError, KeyError):
            raise TalkfaceError(f"{path}:{number}: not a 'start end phone' label line") from None
    return merge_silences(phones)


def boundary_errors(phones: Sequence[TimedPhone], reference: Sequence[TimedPhone]) -> np.ndarray:
    """Signed start-time errors (s) of `phones` against `reference`, for evaluating timings.

    Phones are paired by name in sequence (longest matching runs, as difflib finds them), so
    inserted, missing or misrecognised phones are left out; the trivial start at 0 is skipped.
    """
    matcher = SequenceMatcher(None, [p.phone for p in reference], [p.phone for p in phones], autojunk=False)
    pairs = [(a + k, b + k) for a, b, size in matcher.get_matching_blocks() for k in range(size)]
    return np.array([phones[b].start - reference[a].start for a, b in pairs if reference[a].start > 0])


@functools.cache
def _aligner() -> Decoder:
    return Decoder(lm=None, loglevel="FATAL")


@functools.cache
def _recognizer() -> Decoder:
    phone_lm = get_model_path("en-us/en-us-phone.lm.bin")
    return Decoder(allphone=phone_lm, dict=None, lw=2.0, loglevel="FATAL")


def _pcm(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16).tobytes()


def _decode(decoder: Decoder, pcm: bytes) -> None:
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


def _timeline(segments: Iterable[tuple[str, int, int]], duration: float) -> list[TimedPhone]:
    """Contiguous phones from (name, start frame, end frame) segments; gaps and the tail are silence."""
    phones = []
    t = 0.0
    for name, start, end in segments:
        s, e = start / FRAME_RATE, min(end / FRAME_RATE, duration)
        if s > t:
            phones.append(TimedPhone(t, s, SILENCE))
        phones.append(TimedPhone(max(s, t), e, normalize(name)))
        t = max(t, e)
    if t < duration:
        phones.append(TimedPhone(t, duration, SILENCE))
    return merge_silences(phones)


def _words(text: str) -> list[str]:
    """Lowercase dictionary-style words of `text`: accents and punctuation dropped, numbers spelled."""
    text = unicodedata.normalize("NFKD", text.replace("\u2019", "'")).encode("ascii", "ignore").decode()
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,000 → 1000
    text = re.sub(r"(?<=\d)\.(?=\d)", " point ", text)
    words: list[str] = []
    for token in re.findall(r"[a-z']+|\d+", text.lower()):
        if token.isdigit():
            words += _number_words(token)
        elif token.strip("'"):
            words.append(token.strip("'"))
    return words


def _number_words(digits: str) -> list[str]:
    """English words for a digit string; long numbers and leading zeros are read digit by digit."""
    n = int(digits)
    if len(digits) > 12 or (digits[0] == "0" and len(digits) > 1):
        return [_ONES[int(d)] for d in digits]
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10 - 2]] + (_number_words(str(n % 10)) if n % 10 else [])
    size, name = next((size, name) for size, name in _SCALES if n >= size)
    head, rest = divmod(n, size)
    return _number_words(str(head)) + [name] + (_number_words(str(rest)) if rest else [])


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
