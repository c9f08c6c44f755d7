"""espeak-ng through libespeak-ng (ctypes): audio and IPA phoneme events in one synchronous call.

libespeak-ng keeps global state and is not thread-safe, so every call into it holds `_lock`.
"""

from __future__ import annotations

import ctypes
import re
import threading
from dataclasses import astuple, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TalkfaceError
from ..phonemes import VOWELS, ipa_to_arpabet
from . import NOTHING_TO_SAY, Speech, VoiceInfo, build_speech, check_text, unknown_voice

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PHONEME_MODE = 0x02 | ord("_") << 8  # IPA names, "_" between them (espeakPHONEMES_IPA, separator)
_STRESS = "ˈˌ"
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_STOPS = frozenset({"p", "b", "t", "d", "k", "g", "ch", "jh"})
_NASALS_LIQUIDS = frozenset({"m", "n", "ng", "l", "r", "w", "y"})
_CLOSURE_LEVEL = 1e-3  # espeak-ng writes its stop closures as digital silence
_ONSET_SEARCH_MS = 40
_ONSET_DB = 3.0
_SWITCH = re.compile(r"\(([a-z-]+)\)")  # "(en)" … "(de)": espeak-ng changes language mid-text
#: Language → voice to use for it where espeak-ng's first voice for the language reads it wrongly:
#: its "cmn" voice spells the pinyin of Han characters out as English ("ni three hao three").
_LANGUAGE_VOICE = {"cmn": "cmn-latn-pinyin", "zh": "cmn-latn-pinyin", "zh-cmn": "cmn-latn-pinyin"}
#: Phoneme names espeak-ng prints that are not the IPA of the sound it speaks, by language. Where a
#: language's phoneme table has no IPA for a phoneme, espeak-ng prints its mnemonic read as
#: Kirshenbaum ASCII-IPA, so Russian ы comes out as "y" (rounded ü) and Welsh y as "ø".
_IPA_FIXES: dict[str, dict[str, str]] = {
    "ru": {"y": "ɨ"},  # ы
    "uk": {"y": "ɨ"},  # и after ж ш
    "vi": {"y": "ɨ", "yə": "ɨə"},  # ư, ươ
    "cy": {"ø": "ɨ"},  # y, u
    "de": {"??": "ʊɐ"},  # "Furcht"
    "sv": {"sx": "ɧ"},  # sj
    "cmn": {
        "ph": "pʰ", "th": "tʰ", "kh": "kʰ", "tsh": "tsʰ", "tɕh": "tɕʰ", "s.": "ʂ", "ts.": "ʈʂ",
        "ts.h": "ʈʂʰ", "i.": "ɚ", "i̪": "ɨ", "o-": "ɤ", "onɡ": "ʊŋ", "ər": "ɚ",
    },  # the vowels of "shi", "si", "ge", "dong", "er"
}  # fmt: skip


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """espeak_EVENT (speak_lib.h); `sample` is the event's position in samples."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _VoiceSpec(ctypes.Structure):
    """espeak_VOICE; `languages` is a run of (priority byte, NUL-terminated tag), ended by a 0 byte."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Prosody:
    """espeak-ng's speaking rate (words per minute, 80–450), base pitch and pitch range (0–100)."""

    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50


_PROSODY_PARAMETERS = (1, 3, 4)  # espeakRATE, espeakPITCH, espeakRANGE in speak_lib.h


class _Engine:
    """The process's one libespeak-ng, set up for synchronous synthesis with IPA phoneme events.

    Use it only while holding `_lock`.
    """

    def __init__(self) -> None:
        try:
            lib = ctypes.CDLL("libespeak-ng.so.1")
        except OSError:
            raise TalkfaceError("espeak-ng is not installed: apt-get install espeak-ng") from None
        _declare(lib)
        options = _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA | _INITIALIZE_DONT_EXIT
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, options)
        if self.sample_rate <= 0:
            raise TalkfaceError("espeak-ng could not start: is espeak-ng-data installed?")
        data_dir = ctypes.c_char_p()
        lib.espeak_Info(ctypes.byref(data_dir))
        self.data_dir = Path((data_dir.value or b"").decode())
        self.lib = lib
        self.voice = ""
        self._chunks: list[bytes] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _SynthCallback(self._collect)  # referenced here so it outlives every call
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: Any, numsamples: int, events: Any) -> int:
        if wav and numsamples > 0:
            self._chunks.append(ctypes.string_at(wav, numsamples * 2))
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_PHONEME:
                name = events[i].id.string.decode("utf-8", "ignore")  # 8 bytes: a long name is cut
                self._events.append((events[i].sample, name))
            i += 1
        return 0  # go on

    def _use(self, voice: str) -> None:
        """Switch to `voice`; KeyError if espeak-ng cannot load it."""
        if self.voice != voice:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise KeyError(voice)
            self.voice = voice

    def phonemes(self, voice: str, text: bytes) -> str:
        """`text` as `voice` reads it, in IPA phoneme names (no audio): names joined by "_", words
        by spaces; KeyError if `voice` fails."""
        self._use(voice)
        buffer = ctypes.create_string_buffer(text)
        position = ctypes.c_void_p(ctypes.addressof(buffer))
        clauses = []
        while position.value:  # one clause per call; espeak-ng moves `position` on, to NULL at the end
            clause = self.lib.espeak_TextToPhonemes(ctypes.byref(position), _CHARS_UTF8, _PHONEME_MODE)
            clauses.append((clause or b"").decode("utf-8", "ignore"))
        return " ".join(clauses)

    def synthesize(self, voice: str, text: bytes, prosody: Prosody) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """Audio (float32) and its phoneme events as (sample, IPA name); KeyError if `voice` fails."""
        self._use(voice)
        for parameter, value in zip(_PROSODY_PARAMETERS, astuple(prosody), strict=True):
            self.lib.espeak_SetParameter(parameter, value, 0)
        self._chunks.clear()
        self._events.clear()
        status = self.lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if status != 0:
            raise TalkfaceError(f"espeak-ng failed to speak the text (error {status})")
        audio = np.frombuffer(b"".join(self._chunks), np.int16).astype(np.float32) / 32768.0
        return audio, list(self._events)


def _declare(lib: ctypes.CDLL) -> None:
    """C signatures of the speak_lib.h functions used here."""
    c = ctypes
    lib.espeak_Initialize.argtypes = [c.c_int, c.c_int, c.c_char_p, c.c_int]
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetVoiceByName.argtypes = [c.c_char_p]
    lib.espeak_SetParameter.argtypes = [c.c_int, c.c_int, c.c_int]
    lib.espeak_Synth.argtypes = [c.c_char_p, c.c_size_t, c.c_uint, c.c_int, c.c_uint, c.c_uint, c.c_void_p, c.c_void_p]
    lib.espeak_ListVoices.argtypes = [c.c_void_p]
    lib.espeak_ListVoices.restype = c.POINTER(c.POINTER(_VoiceSpec))
    lib.espeak_Info.argtypes = [c.POINTER(c.c_char_p)]
    lib.espeak_Info.restype = c.c_char_p
    lib.espeak_TextToPhonemes.argtypes = [c.POINTER(c.c_void_p), c.c_int, c.c_int]
    lib.espeak_TextToPhonemes.restype = c.c_char_p


_lock = threading.RLock()
_engines: list[_Engine] = []


def _engine() -> _Engine:
    """The engine, started on first use; call it while holding `_lock`."""
    if not _engines:
        _engines.append(_Engine())
    return _engines[0]


@dataclass(frozen=True)
class _Entry:
    info: VoiceInfo
    identifier: str  # what espeak_SetVoiceByName takes, e.g. "gmw/en-US"
    languages: tuple[tuple[int, str], ...]  # (priority, tag); a lower priority fits the tag better


@cache
def _entries() -> dict[str, _Entry]:
    """espeak-ng's voices keyed by their main language tag (identifier on a clash)."""
    with _lock:
        voices = _engine().lib.espeak_ListVoices(None)
        entries: dict[str, _Entry] = {}
        i = 0
        while voices[i]:
            v = voices[i].contents
            identifier = v.identifier.decode()
            languages = _languages(v.languages)
            key = languages[0][1] if languages else identifier.rsplit("/", 1)[-1].lower()
            if key in entries:
                key = identifier.rsplit("/", 1)[-1].lower()
            info = VoiceInfo(f"espeak:{key}", "espeak", key, f"espeak-ng {v.name.decode()}")
            entries[key] = _Entry(info, identifier, languages)
            i += 1
    return entries


def _languages(address: int | None) -> tuple[tuple[int, str], ...]:
    out: list[tuple[int, str]] = []
    if not address:
        return ()
    while (priority := ctypes.string_at(address, 1)[0]) != 0:
        tag = ctypes.string_at(address + 1)
        out.append((priority, tag.decode().lower()))
        address += len(tag) + 2
    return tuple(out)


def list_voices() -> list[VoiceInfo]:
    """One voice per espeak-ng language."""
    return [e.info for e in _entries().values()]


def load(name: str, prosody: Prosody = Prosody()) -> EspeakVoice:
    """An espeak-ng voice by language tag with an optional variant: "en-us", "en-gb+f3", "de+m3"."""
    tag, plus, variant = name.strip().partition("+")
    entry = _find(tag.lower())
    variant_file = _variant_file(variant) if plus else ""
    if entry is None or variant_file is None:
        raise unknown_voice(f"voice '{name}'")
    return EspeakVoice(entry, variant_file, prosody)


def load_language(lang: str) -> EspeakVoice:
    """The espeak-ng voice that fits language `lang` best ("de", "en-GB", "pt_BR", "zh")."""
    entry = _find(lang.strip().lower().replace("_", "-"), by_language=True)
    if entry is None:
        raise unknown_voice(f"language '{lang}'")
    return EspeakVoice(entry, "")


def _find(tag: str, by_language: bool = False) -> _Entry | None:
    """The voice named `tag`, else the one that fits language `tag` best; `by_language` puts the
    language's best voice before a voice of that name ("cmn")."""
    entries = _entries()
    preferred = entries.get(_LANGUAGE_VOICE.get(tag, ""))
    if preferred is not None and (by_language or tag not in entries):
        return preferred
    if tag in entries:
        return entries[tag]
    fits = [(p, i, e) for i, e in enumerate(entries.values()) for p, t in e.languages if t == tag]
    return min(fits, key=lambda f: f[:2])[2] if fits else None


def _variant_file(variant: str) -> str | None:
    """The file name of a voice variant (voices/!v/f3 …) matched regardless of case, or None."""
    with _lock:
        folder = _engine().data_dir / "voices" / "!v"
    names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    return next((n for n in names if n.lower() == variant.strip().lower()), None)


class EspeakVoice:
    """An espeak-ng voice, optionally with a variant ("f3", "m3", "whisper" …) and prosody."""

    def __init__(self, entry: _Entry, variant: str, prosody: Prosody = Prosody()) -> None:
        suffix = f"+{variant}" if variant else ""
        self.info = VoiceInfo(entry.info.name + suffix, "espeak", entry.info.language, entry.info.description)
        self._espeak_name = entry.identifier + suffix
        self._language = entry.identifier.rsplit("/", 1)[-1].split("-", 1)[0].lower()
        self.prosody = prosody

    def synthesize(self, text: str) -> Speech:
        """Speak `text`; phones come from espeak-ng's own phoneme events."""
        data = check_text(text).encode("utf-8")
        with _lock:
            engine = _engine()
            try:
                audio, events = engine.synthesize(self._espeak_name, data, self.prosody)
            except KeyError:
                raise unknown_voice(f"voice '{self.info.name}'") from None
        events = _ipa_events(events, self._language)
        return build_speech(audio, engine.sample_rate, _corrected(audio, engine.sample_rate, events))

    def pronounce(self, text: str) -> list[list[str]]:
        """ARPAbet phones of each word of `text` as espeak-ng reads it (numbers and abbreviations
        spelled out in this language, so there may be more words than in `text`), named as
        `synthesize` names them; no audio is made. Words with nothing to pronounce are left out (a
        text of none is no words). A transcript is read whole, however long: no speech is made."""
        try:
            data = check_text(text, limit=None).encode("utf-8")
        except TalkfaceError as e:
            if str(e) == NOTHING_TO_SAY:
                return []
            raise
        with _lock:
            try:
                read = _engine().phonemes(self._espeak_name, data)
            except KeyError:
                raise unknown_voice(f"voice '{self.info.name}'") from None
        names = [(0, n.lstrip(_STRESS)) for word in read.split() for n in [*word.split("_"), " "] if n]
        words: list[list[str]] = [[]]
        for _, name in _ipa_events(names, self._language):
            if name == " ":
                words.append([])
            else:
                words[-1] += ipa_to_arpabet(name)
        return [w for w in words if w]


def _ipa_events(events: list[tuple[int, str]], language: str) -> list[tuple[int, str]]:
    """Phoneme events without espeak-ng's language switches ("(en)" … "(de)"), each named by the
    IPA of its sound in the language spoken at that point (`_IPA_FIXES`); `language` is the voice's.

    A glottal stop written into a vowel's name (Danish stød, "ʔe") is creaky voice on the vowel,
    not a pause, so it is left out; a glottal stop of its own stays.
    """
    fixes = _IPA_FIXES.get(language, {})
    out: list[tuple[int, str]] = []
    for sample, name in events:
        switch = _SWITCH.fullmatch(name)
        if switch:
            fixes = _IPA_FIXES.get(switch[1], {})
            continue
        name = fixes.get(name, name)
        out.append((sample, name.replace("ʔ", "") if len(name) > 1 else name))
    return out


def _corrected(audio: np.ndarray, rate: int, events: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Phoneme events moved to where the audio shows the phone starting.

    Two of espeak-ng's event positions (synthesize.c, Generate) are systematically late:

    - A stop's closure (its "prepause") is written before the stop's event, so the event marks
      the release burst and 20-40 ms of closure would count towards the phone before, though
      the lips are already shut there for p/b. The closure is digital silence: the silent run
      before the event joins the stop (not after a pause, which is silence anyway).
    - After a nasal or liquid, a vowel's event comes after the vowel's onset transition, 10-30
      ms late, which would hold the lips shut into the vowel after m. The vowel starts where
      the level first comes within 3 dB of its level at the event.

    A corrected phone never takes more than the second half of the phone before it.
    """
    out = list(events)
    for i in range(1, len(out)):
        start, name = out[i]
        prev_start, prev_name = out[i - 1]
        phone, prev = (ipa_to_arpabet(name) or [""])[0], (ipa_to_arpabet(prev_name) or [""])[-1]
        earliest = (prev_start + start) // 2
        if phone in _STOPS and prev_name.strip():
            loud = np.flatnonzero(np.abs(audio[earliest:start]) > _CLOSURE_LEVEL)
            out[i] = (earliest + (loud[-1] + 1 if loud.size else 0), name)
        elif phone in VOWELS and prev in _NASALS_LIQUIDS:
            out[i] = (_onset(audio, max(earliest, start - rate * _ONSET_SEARCH_MS // 1000), start, rate), name)
    return out


def _onset(audio: np.ndarray, lo: int, event: int, rate: int) -> int:
    """First 5 ms step in [lo, event] where a 10 ms window is within 3 dB of the one at `event`."""
    step, width = rate // 200, rate // 100
    if event + width > len(audio):
        return event
    target = np.mean(audio[event : event + width] ** 2) * 10 ** (-_ONSET_DB / 10)
    for s in range(lo, event, step):
        if np.mean(audio[s : s + width] ** 2) >= target:
            return s
    return event
