"""A transcript aligned to audio in one process, piece by piece between pauses, each piece free to
end after any word so that words slip across a cut."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from ..audio import SAMPLE_RATE
from .decoder import _LOCK, FRAME_RATE, _align_piece, _aligner, _timeline, _Word
from .levels import (
    _DITHER,
    _MIN_PAUSE,
    _cuts,
    _frame_levels,
    _lookahead,
    _loud_level,
    _pauses,
    _pcm,
    _quiet_threshold,
    _runs,
    _spans,
)
from .result import _FAILED, Alignment, AlignmentError

_MIN_UNEXPLAINED = 20  # frames: speech no word was aligned to counts from this long (a short word's length)


def _aligned(audio: np.ndarray, words: Sequence[str], match: float, strict: bool) -> Alignment:
    """The transcript's `words` (in the aligner's dictionary) aligned to 16 kHz `audio` (float, or
    16-bit), piece by piece."""
    decoder = _aligner()
    levels = _frame_levels(audio)
    n = len(levels)
    quiet = levels < _quiet_threshold(levels)
    pauses = _pauses(quiet)
    cuts = _cuts(levels, pauses)
    speech_left = np.cumsum(~quiet[::-1])[::-1]  # speech frames from each frame to the end
    dither = _DITHER * _loud_level(levels)
    segments: list[tuple[str, int, int]] = []
    explained = np.zeros(n, bool)  # frames of words matched (`_in_runs`)
    heard = np.zeros(n, bool)  # frames of any word of the transcript
    matched = done = start = 0
    while start < n and done < len(words):
        cut = cuts[bisect.bisect_right(cuts, start)]
        end = n if cut == n else _lookahead(cut, cuts, pauses)
        rest = words[done:]
        if end < n:  # a stretch of the transcript comfortably longer than this piece's share of it
            ahead = speech_left[start] - speech_left[end]
            rest = rest[: int(1.5 * len(rest) * ahead / max(speech_left[start], 1)) + 10]
        pcm = _pcm(audio, start, end, dither)
        try:
            with _LOCK:
                aligned = _align_piece(decoder, pcm, rest, open_end=end < n)
        except RuntimeError:
            if end < n or strict:
                raise AlignmentError(_FAILED, len(words)) from None
            try:  # the audio ends before the transcript: let it end after any word
                with _LOCK:
                    aligned = _align_piece(decoder, pcm, rest, open_end=True)
            except RuntimeError:
                raise AlignmentError(_FAILED, len(words)) from None
        if end < n:
            kept, boundary = _keep(aligned, cut - start)
        else:  # the audio ends: what is left of the transcript, if anything, was not said
            kept, boundary = sum(not w.filler for w in aligned), end - start
        real = 0  # words of the transcript seen so far in this piece
        kept_words = []  # of the words kept: the frames each was aligned to (as itself or as other speech)
        fits = []  # of the words kept
        for word in aligned:
            keep = word.start < boundary if word.filler else real < kept
            if keep and not word.unsaid:
                segments += [(p, start + s, start + min(e, boundary)) for p, s, e in word.phones]
            if not word.filler:
                if keep:
                    kept_words.append((start + word.start, start + min(word.end, boundary)))
                    fits.append(word.fits(match) and not word.unsaid)
                real += 1
        matches = _in_runs(fits)
        matched += sum(matches)
        for (a, b), ok in zip(kept_words, matches, strict=True):
            heard[a:b] = True
            explained[a:b] = ok
        done += kept
        start += boundary
    if not done or (strict and done < len(words)):
        raise AlignmentError(_FAILED, len(words))
    unheard = _runs(~heard & ~_runs(quiet, _MIN_PAUSE), _MIN_UNEXPLAINED)  # speech (its closures too) no word took
    unexplained = ~_runs(~(heard & ~explained | unheard), _MIN_PAUSE)
    spans = tuple((a / FRAME_RATE, b / FRAME_RATE) for a, b in _spans(unexplained))
    return Alignment(_timeline(segments, len(audio) / SAMPLE_RATE), len(words), matched, spans)


def _in_runs(fits: Sequence[bool]) -> list[bool]:
    """Which words fit their sound next to another that does (or alone, a transcript of one word):
    the words matched, whose stretches the transcript explains. Alone, between words that do not
    fit, a short word fits a transcript of other speech by chance, since any word may be taken as
    other speech (ARCTIC a0009 under "the quick brown fox": 5 of 9 words fit, 4 in runs; on the
    validation set, 88 of 92 other recordings' transcripts set aside, 80 without)."""
    if len(fits) == 1:
        return list(fits)
    padded = [False, *fits, False]
    return [f and (padded[i] or padded[i + 2]) for i, f in enumerate(fits)]


def _keep(aligned: Sequence[_Word], cut: int) -> tuple[int, int]:
    """How many words of a piece's alignment end before frame `cut` (they are kept), and the frame
    where the next piece starts: `cut`, or the start of a word that runs across it."""
    real = [w for w in aligned if not w.filler]
    kept = sum(w.end <= cut for w in real)
    if kept < len(real) and real[kept].start < cut:
        if real[kept].start > 0:
            return kept, real[kept].start
        return kept + 1, real[kept].end  # a word longer than the piece: keep it, go on after it
    return kept, cut
