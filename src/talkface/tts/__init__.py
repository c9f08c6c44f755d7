"""Text to speech with phoneme timings: espeak-ng (always) and Piper (optional, the "joe" voice).

Both engines report which phoneme they spoke when, so the animation follows the synthesised
audio exactly, with no recogniser in between.
"""

from __future__ import annotations

import re
import unicodedata
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Protocol

import numpy as np

from ..errors import TalkfaceError
from ..phonemes import SILENCE, TimedPhone, ipa_to_arpabet, merge_silences, normalize

DEFAULT_VOICE = "espeak:en-us"
NOTHING_TO_SAY = "text is empty or has nothing to pronounce"
#: The longest text a voice speaks at once, in characters: an hour of espeak-ng speech is about 60 000.
MAX_TEXT = 100_000
_SURROGATE = re.compile("[\ud800-\udfff]")
#: Symbols kept for the engine to read ("20 °C" is "zwanzig Grad Celsius" in German); every other "other
#: symbol" (Unicode So: emoji, pictographs, dingbats, Braille) is read as a space, see `_unsayable`.
_SAID_SYMBOLS = frozenset("°©®™№℃℉")


@cache
def _unsayable() -> dict[int, str]:
    """What `check_text` reads as spaces: NUL (engines take C strings: every word after one was left
    unsaid) and the "other symbols" but `_SAID_SYMBOLS`. libespeak-ng 1.51 aborts or crashes the whole
    process on some of those among letters ("a⣿" in its Arabic, Finnish and Tswana voices, "*** buffer
    overflow detected ***"; a line of letters and emoji in Japanese and Hindi); read as their names
    ("grinning face"), they are words no transcript has, and English alignment leaves them out."""
    symbols = (c for c in range(0x20000) if unicodedata.category(chr(c)) == "So" and chr(c) not in _SAID_SYMBOLS)
    return dict.fromkeys([0, *symbols], " ")  # (a table for str.translate; no symbol lies above U+20000)


@dataclass(frozen=True)
class Speech:
    """Synthesised audio and the ARPAbet phones spoken in it, covering the whole audio."""

    audio: np.ndarray  # float32 mono, peak <= 1
    sample_rate: int
    phones: list[TimedPhone]  # sorted and contiguous from 0 to len(audio) / sample_rate


@dataclass(frozen=True)
class VoiceInfo:
    """An installed voice: `name` is what `load_voice` takes, e.g. "espeak:de" or "piper:joe"."""

    name: str
    engine: str  # "espeak" | "piper" | "flite" | "festival"
    language: str  # e.g. "en-us"
    description: str


class Voice(Protocol):
    """A loaded voice."""

    info: VoiceInfo

    def synthesize(self, text: str) -> Speech: ...


def list_voices() -> list[VoiceInfo]:
    """The voices installed now: one per espeak-ng language, and Piper's joe, each if installed."""
    from . import espeak, piper  # engines load only when asked for

    try:
        voices = espeak.list_voices()
    except TalkfaceError:  # espeak-ng is missing
        voices = []
    return voices + piper.list_voices()


def load_voice(name: str | None = None, lang: str | None = None) -> Voice:
    """A voice by name ("espeak:en-us+f3", "en-gb", "piper:joe", "joe") or, without a name, by
    espeak-ng language ("de"); with neither, espeak-ng "en-us". `name` wins over `lang`."""
    from . import espeak, piper

    if name is None and lang is None:
        name = DEFAULT_VOICE
    if name is None:
        return espeak.load_language(str(lang))
    key = name.strip().lower()
    if key in piper.NAMES or key.startswith("piper:"):
        return piper.load(key)
    return espeak.load(key.removeprefix("espeak:"))


def unknown_voice(what: str) -> TalkfaceError:
    """The error for a voice or language that is not installed."""
    return TalkfaceError(f"unknown {what}: run `talkface voices` to list the installed voices")


def check_text(text: str, limit: int | None = MAX_TEXT) -> str:
    """`text` stripped; raises `TalkfaceError` if it has no letter or digit to say (a TTS engine would
    read out punctuation or emoji names, which no transcript aligns to), if it is longer than `limit`
    characters (speech, and the memory to make it, grow with the text; None: no limit, for
    pronunciations without speech) or if it holds a lone surrogate (not text, and not UTF-8: a JSON
    manifest's "\\ud800"). NUL, emoji and other symbols are read as spaces (`_unsayable`)."""
    if (bad := _SURROGATE.search(text)) is not None:
        raise TalkfaceError(f"text is not UTF-8: a lone surrogate (U+{ord(bad[0]):04X}) at character {bad.start()}")
    text = text.translate(_unsayable())
    if not any(c.isalnum() for c in text):
        raise TalkfaceError(NOTHING_TO_SAY)
    if limit is not None and len(text) > limit:
        raise TalkfaceError(f"text of {len(text):,} characters (numbers written out): at most {limit:,} at a time, "
                            "about 100 minutes of speech; split it")  # fmt: skip
    return text.strip()


def build_speech(audio: np.ndarray, sample_rate: int, segments: Sequence[tuple[int, str]]) -> Speech:
    """`Speech` from audio and IPA segments given as (start sample, IPA symbol), in order.

    Each segment lasts until the next one starts, the last one until the end of the audio; time
    before the first is silence. An IPA symbol that gives several ARPAbet phones has its interval
    split evenly; a blank one is silence, and one with no ARPAbet equivalent (a stress or length
    mark on its own) is joined to the phone before it. Raises `TalkfaceError` if no phone is spoken.
    """
    n = len(audio)
    bounds: list[tuple[int, list[str]]] = [(0, [SILENCE])]
    for start, symbol in segments:
        start = min(max(int(start), bounds[-1][0]), n)
        phones = ipa_to_arpabet(symbol) if symbol.strip() else [SILENCE]
        if phones:
            bounds.append((start, phones))
    timed: list[TimedPhone] = []
    ends = [b[0] for b in bounds[1:]] + [n]
    for (start, phones), end in zip(bounds, ends, strict=True):
        cuts = np.linspace(start, end, len(phones) + 1)
        for k, phone in enumerate(phones):
            timed.append(TimedPhone(float(cuts[k]) / sample_rate, float(cuts[k + 1]) / sample_rate, phone))
    phones = merge_silences(timed)
    if all(p.phone == SILENCE for p in phones):
        raise TalkfaceError(NOTHING_TO_SAY)
    return Speech(np.clip(audio, -1.0, 1.0).astype(np.float32), sample_rate, phones)


def speech_from_ends(
    audio: np.ndarray, sample_rate: int, ends: Sequence[tuple[float, str]], shift: float = 0.0
) -> Speech:
    """`Speech` from ARPAbet-style phones given by their end times in seconds, in order (flite, Festival).

    Each phone starts where the one before ends, the first at 0; the last one is stretched or cut
    to the end of the audio. `shift` (seconds) moves every boundary between two phones, to correct
    an engine whose labels are early or late. Raises `TalkfaceError` for a phone name that is not
    ARPAbet or a known alias, or if no phone is spoken.
    """
    duration = len(audio) / sample_rate
    timed: list[TimedPhone] = []
    start = 0.0
    for k, (end, name) in enumerate(ends):
        try:
            phone = normalize(name)
        except KeyError:
            raise TalkfaceError(f"unknown phone {name!r} from the TTS engine") from None
        end = duration if k == len(ends) - 1 else min(max(end + shift, start), duration)
        timed.append(TimedPhone(start, end, phone))
        start = end
    phones = merge_silences(timed)
    if all(p.phone == SILENCE for p in phones):
        raise TalkfaceError(NOTHING_TO_SAY)
    return Speech(np.clip(audio, -1.0, 1.0).astype(np.float32), sample_rate, phones)


def read_wav(path: str) -> tuple[np.ndarray, int]:
    """Float32 samples and sample rate of a 16-bit mono RIFF file, as flite and Festival write them."""
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise TalkfaceError(f"{path}: expected 16-bit mono audio")
        data = w.readframes(w.getnframes())
        return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0, w.getframerate()
