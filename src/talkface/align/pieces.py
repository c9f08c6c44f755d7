"""A transcript aligned to audio in one process, piece by piece between pauses, each piece free to
end after any word so that words slip across a cut; then long runs of words that did not match
aligned again, free to leave words out and to take sound the transcript lacks as other speech."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE
from .decoder import (
    _HOP,
    _LOCK,
    _LOOP_PREFIX,
    FRAME_RATE,
    _align_piece,
    _align_stretch,
    _aligner,
    _timeline,
    _Word,
    _word_of,
)
from .levels import (
    _DITHER,
    _MAX_PIECE,
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
_MIN_STRETCH = FRAME_RATE  # frames between matched words from which the words between are aligned again
#: Frames either side of a stretch the transcript does not explain that the sound drives too: beside a
#: word that does not fit, where its neighbours begin and end is the aligner's guess. Chosen on the
#: validation recordings of `benchmarks/perturbed_text.py` (README, "Transcripts that are only hints").
_MARGIN = 20
#: The second pass looks for at most this many words a second of a stretch (speech runs at 2–5), the
#: first of its run: it bounds its grammar (quadratic in the words) where a long transcript meets short audio.
_WORDS_PER_SECOND = 10
#: The second pass runs where at least this share of the words the first reached (before the audio ran
#: out) matched there. On the validation recordings of `benchmarks/perturbed_text.py` that keeps 8 of the
#: 9 recordings with words replaced that it saves from being set aside (`RECOVERED_BELOW`), and 17 of 18
#: with a sentence left out of the text; it runs on a third of other recordings' transcripts, where it
#: keeps none (run on all of those, it took their alignment 4.3× the CPU of the first pass alone: 20.8 →
#: 89.2 s on 40 of them). (Measured when the share was of all the words; README, stop 32.)
_SECOND_PASS_FROM = 0.25


@dataclass
class _Kept:
    """A word of the transcript as aligned: its index, frames and phones (none when taken as other
    speech or left out), whether it fits its sound, and whether it counts as matched (`_in_runs`)."""

    index: int
    start: int
    end: int
    phones: list[tuple[str, int, int]]
    fits: bool
    matched: bool = False


def _aligned(audio: np.ndarray, words: Sequence[str], match: float, strict: bool, loop: bool) -> Alignment:
    """The transcript's `words` (in the aligner's dictionary) aligned to 16 kHz `audio` (float, or
    16-bit), piece by piece; with `loop`, long stretches of words that did not match aligned again
    (`_second_pass`)."""
    decoder = _aligner()
    levels = _frame_levels(audio)
    n = len(levels)
    quiet = levels < _quiet_threshold(levels)
    pauses = _pauses(quiet)
    cuts = _cuts(levels, pauses)
    speech_left = np.cumsum(~quiet[::-1])[::-1]  # speech frames from each frame to the end
    dither = _DITHER * _loud_level(levels)
    records: list[_Kept] = []  # the words of the transcript aligned so far, in order
    done = start = 0
    while start < n and done < len(words):
        cut = cuts[bisect.bisect_right(cuts, start)]
        end = n if cut == n else _lookahead(cut, cuts, pauses)
        # no more words than could be said in the piece (a transcript far longer than the audio would make
        # a grammar of gigabytes), and where more audio follows, a stretch comfortably longer than its share
        rest = words[done : done + _WORDS_PER_SECOND * (end - start) // FRAME_RATE + 10]
        if end < n:
            ahead = speech_left[start] - speech_left[end]
            rest = rest[: int(1.5 * (len(words) - done) * ahead / max(speech_left[start], 1)) + 10]
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
        piece: list[_Kept] = []
        for word in aligned:
            if not word.filler:
                if real < kept:
                    a, b = start + word.start, start + min(word.end, boundary)
                    phones = [(p, start + s, start + min(e, boundary)) for p, s, e in word.phones]
                    phones = [] if word.unsaid else phones
                    piece.append(_Kept(done + real, a, b, phones, word.fits(match) and not word.unsaid))
                real += 1
        _mark_matched(piece)
        records += piece
        done += kept
        start += boundary
    if not done or (strict and done < len(words)):
        raise AlignmentError(_FAILED, len(words))
    lacked: list[tuple[str, int, int]] = []  # phones of the speech the transcript lacks (`_second_pass`)
    first = sum(k.matched for k in records)
    # (also where under half matched: a few replaced words can pull a whole piece off its sound, and the
    # second pass finds its words again; `Alignment.set_aside` judges the share after it)
    if loop and not strict and first >= _SECOND_PASS_FROM * done:
        # words the audio ran out before are looked for again too: sound the text lacks came first
        records += [_Kept(i, n, n, [], False) for i in range(done, len(words))]
        records, lacked = _second_pass(audio, words, records, match, dither)
    heard = np.zeros(n, bool)  # frames of any word of the transcript, or of speech it lacks
    explained = np.zeros(n, bool)  # frames of words matched (`_in_runs`)
    for _, a, b in lacked:
        heard[a:b] = True
    for k in records:
        heard[k.start : k.end] = True
        explained[k.start : k.end] = k.matched
    segments = sorted([segment for k in records for segment in k.phones] + lacked, key=lambda x: x[1])
    matched = sum(k.matched for k in records)
    unheard = _runs(~heard & ~_runs(quiet, _MIN_PAUSE), _MIN_UNEXPLAINED)  # speech (its closures too) no word took
    unexplained = _widened(~_runs(~(heard & ~explained | unheard), _MIN_PAUSE), _MARGIN)
    spans = tuple((a / FRAME_RATE, b / FRAME_RATE) for a, b in _spans(unexplained))
    run = max((len(list(g)) for fit, g in itertools.groupby(k.matched for k in records) if fit), default=0)
    return Alignment(_timeline(segments, len(audio) / SAMPLE_RATE), len(words), matched, spans, first, run)


def _widened(mask: np.ndarray, by: int) -> np.ndarray:
    """`mask` with each run of True grown by `by` frames either side (within the mask's length)."""
    out = mask.copy()
    for a, b in _spans(mask):
        out[max(0, a - by) : b + by] = True
    return out


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


def _mark_matched(kept: Sequence[_Kept]) -> None:
    """Set which of a row of aligned words count as matched (`_in_runs`)."""
    for k, ok in zip(kept, _in_runs([k.fits for k in kept]), strict=True):
        k.matched = ok


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


def _second_pass(audio: np.ndarray, words: Sequence[str], records: list[_Kept], match: float,
                 dither: float) -> tuple[list[_Kept], list[tuple[str, int, int]]]:  # fmt: skip
    """`records` with each run of words that did not match, over at least `_MIN_STRETCH` between
    the matched words around it, aligned again there with any word free to be left out and a loop
    of phones free to take sound the transcript lacks (a sentence missing from the text pulls the
    words around it into its sound otherwise); and the loop's phones (name, start, end), the speech
    the transcript lacks, for the phone and viseme tracks."""
    decoder = _aligner()
    out: list[_Kept] = []
    lacked: list[tuple[str, int, int]] = []
    i = 0
    while i < len(records):
        j = i
        while j < len(records) and not records[j].matched:
            j += 1
        if j == i:
            out.append(records[i])
            i += 1
            continue
        run, left = records[i:j], records[i - 1].end if i else 0
        right = records[j].start if j < len(records) else len(audio) // _HOP
        i = j
        if not _MIN_STRETCH <= right - left <= _MAX_PIECE:
            out += run
            continue
        most = _WORDS_PER_SECOND * (right - left) // FRAME_RATE + 1
        run, untried = run[:most], run[most:]
        names = list(words[run[0].index : run[-1].index + 1])
        try:
            with _LOCK:
                aligned = _align_stretch(decoder, _pcm(audio, left, right, dither), names)
        except RuntimeError:
            out += run + untried
            continue
        again: dict[int, _Kept] = {}
        k = 0
        for name, word in aligned:
            phones = [] if word.unsaid else [(p, left + s, left + e) for p, s, e in word.phones]
            if name.startswith(_LOOP_PREFIX):
                lacked += phones
                continue
            while k < len(names) and names[k] != _word_of(name):  # the words left out before it
                k += 1
            if k < len(names):
                fits = word.fits(match) and not word.unsaid
                again[k] = _Kept(run[0].index + k, left + word.start, left + word.end, phones, fits)
                k += 1
        out += [again.get(k, _Kept(r.index, left, left, [], False)) for k, r in enumerate(run)] + untried
    _mark_matched(out)
    return out, lacked
