"""Phone timings from speech with pocketsphinx: forced alignment of a transcript, or phone recognition.

Both run the packaged US English model offline. A transcript in another language is aligned with the
same model: espeak-ng reads it in that language, and its phones, mapped to the nearest English ones
(as `say` maps them), are the words' pronunciations. Decoders take ~70 ms to build, so one of each is kept
and shared under a lock (pocketsphinx decoders are not thread-safe); the lock is taken per piece of
audio, so a long file does not hold up other callers.

Long audio is cut at pauses into pieces of at most ~30 s and decoded piece by piece, so time grows
linearly and memory stays bounded (pocketsphinx's phone-level alignment is quadratic in the length
of what it aligns). A transcript is split between the pieces as it goes: each piece is aligned
together with a little of the next one, against a stretch of the transcript that may end after any
word, and only the words that end before the cut are kept; the next piece starts with the next word.

The modules: `result` (what an alignment gives, and the scores that judge its words), `decoder` (the
shared decoders, one piece's or stretch's alignment), `levels` (frame levels, pauses and where audio
is cut), `words` (a transcript's words and their pronunciations), `pieces` (a transcript aligned
piece by piece in one process, then again where long runs of words did not match), `parts` (long
audio in parts, each in a process of its own), `recognition` (phones without a transcript) and
`labels` (reference label files and boundary errors, for evaluation).
"""

from __future__ import annotations

import numpy as np

from ..audio import SAMPLE_RATE, load_audio
from ..errors import TalkfaceError, shown
from ..phonemes import TimedPhone
from .decoder import FRAME_RATE
from .labels import boundary_errors, read_htk_labels
from .levels import has_speech
from .parts import _aligned_in_parts, _parts
from .pieces import _aligned
from .recognition import recognize
from .result import (
    AUDIO_ONLY_BELOW,
    KEPT_RUN,
    MATCH_SCORE,
    MATCH_SCORE_ACROSS,
    MIN_SHARE,
    RECOVERED_BELOW,
    Alignment,
    AlignmentError,
)
from .words import _english, _espeak_words, _words

__all__ = [
    "AUDIO_ONLY_BELOW",
    "FRAME_RATE",
    "KEPT_RUN",
    "MATCH_SCORE",
    "MATCH_SCORE_ACROSS",
    "MIN_SHARE",
    "RECOVERED_BELOW",
    "Alignment",
    "AlignmentError",
    "align",
    "align_transcript",
    "boundary_errors",
    "has_speech",
    "read_htk_labels",
    "recognize",
]


def align(audio: np.ndarray, text: str, sample_rate: int = SAMPLE_RATE, lang: str | None = None) -> list[TimedPhone]:
    """Phones of `text` timed against the speech in `audio` (forced alignment); see `align_transcript`."""
    return align_transcript(audio, text, sample_rate, lang).phones


def align_transcript(
    audio: np.ndarray,
    text: str,
    sample_rate: int = SAMPLE_RATE,
    lang: str | None = None,
    *,
    strict: bool = False,
    jobs: int = 1,
) -> Alignment:
    """Phones of `text` timed against the speech in `audio`, with the share of words that fit it.

    The phones are contiguous from 0 to the audio's duration, with pauses as silence. `lang` is the
    transcript's language as `say --lang` takes it (default English). English is read with CMUdict:
    numbers, amounts, times and abbreviations are read as words first (`normalize_text`), and words
    missing from the dictionary get a rough spelled-out pronunciation (a warning is logged the first
    time each is seen). Other languages are read by espeak-ng (`EspeakVoice.pronounce`).

    The audio may end before the transcript does (its last words were cut off or never said): those
    words count as not matched. With `strict`, every word must be aligned. Raises `TalkfaceError`
    for an empty transcript or an unknown language, and `AlignmentError` when the text cannot be
    aligned to the audio at all. Time and memory grow linearly with the audio (a piece of it is aligned
    with no more words than could be said in it).

    Audio of more than two `_PART`s is cut at pauses into parts of at least `_PART`, each aligned with
    the words said in it (found by aligning a little of the audio after each cut against the transcript
    around where it should be), in up to `jobs` processes. Where the words said after a pause do not
    fit there, the audio is not cut at that pause. The cuts do not depend on `jobs`: any number of
    processes gives the same alignment.
    """
    audio = load_audio(audio, sample_rate)
    words = _words(text, lang) if _english(lang) else _espeak_words(text, str(lang))
    if not words:
        raise TalkfaceError(f"transcript is empty or has nothing to pronounce: {shown(text)}")
    english = _english(lang)  # the loop of phones of a second pass is English's (`_second_pass`)
    match = MATCH_SCORE if english else MATCH_SCORE_ACROSS
    cuts = _parts(audio, words, match)
    if not cuts:
        return _aligned(audio, words, match, strict, english)
    return _aligned_in_parts(audio, words, cuts, match, strict, english, jobs)
