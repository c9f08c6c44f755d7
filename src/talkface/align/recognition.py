"""Phones heard in speech without a transcript (pocketsphinx phone-loop recognition), for the phonetic
engine."""

from __future__ import annotations

import functools
import itertools

import numpy as np
from pocketsphinx import Decoder, get_model_path

from ..audio import SAMPLE_RATE, load_audio
from ..phonemes import TimedPhone
from .decoder import _LOCK, _decode, _timeline
from .levels import _DITHER, _cuts, _frame_levels, _loud_level, _pauses, _pcm, _quiet_threshold


def recognize(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> list[TimedPhone]:
    """Phones heard in `audio` without a transcript (phone-loop recognition), contiguous 0..duration.

    Less accurate than `align`: expect some wrong or missing phones, but usable timing for lips.
    Long audio is decoded in pieces cut at pauses, so memory stays bounded.
    """
    audio = load_audio(audio, sample_rate)
    levels = _frame_levels(audio)
    quiet = levels < _quiet_threshold(levels)
    cuts = _cuts(levels, _pauses(quiet))
    dither = _DITHER * _loud_level(levels)
    segments: list[tuple[str, int, int]] = []
    for start, end in itertools.pairwise(cuts):
        pcm = _pcm(audio, start, end, dither)
        with _LOCK:
            decoder = _recognizer()
            _decode(decoder, pcm)
            segments += [(s.word, start + s.start_frame, start + s.end_frame + 1) for s in decoder.seg() or ()]
    return _timeline(segments, len(audio) / SAMPLE_RATE)


@functools.cache
def _recognizer() -> Decoder:
    phone_lm = get_model_path("en-us/en-us-phone.lm.bin")
    return Decoder(allphone=phone_lm, dict=None, lw=2.0, loglevel="FATAL")
