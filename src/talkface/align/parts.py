"""Long audio aligned in parts, each in a process of its own: the audio is cut at pauses where the
words said next are found in the transcript (`_anchor`), and the parts' alignments are joined."""

from __future__ import annotations

import bisect
import itertools
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from ..audio import SAMPLE_RATE
from ..phonemes import SILENCE, TimedPhone, merge_silences
from .decoder import _HOP, _LOCK, FRAME_RATE, _align_piece, _aligner
from .levels import _DITHER, _frame_levels, _loud_level, _pauses, _pcm, _quiet_threshold
from .pieces import _aligned
from .result import _FAILED, Alignment, AlignmentError
from .words import _add_words

#: Seconds: long audio is cut into parts aligned in processes of their own (`jobs`), none shorter than this.
_PART = 300
_ANCHOR = 10 * FRAME_RATE  # frames after a cut aligned (to the next pause) to find the words said there
_ANCHOR_WORDS = 8  # words in a row that must fit the sound after a cut, found in the transcript near there


def _parts(audio: np.ndarray, words: Sequence[str], match: float) -> list[tuple[int, int]]:
    """(frame, word) where long audio is cut into parts of at least `_PART`: one of the three longest
    pauses within 30 s of each equal share of it, and the first word said after it (`_anchor`). Where
    that word is not found for certain after any of them, the audio is not cut. No cuts for audio of
    at most two `_PART`s. The cuts depend on the audio and the words alone, not on how many processes
    align the parts, so that the alignment is the same on any machine."""
    if len(audio) <= 2 * _PART * SAMPLE_RATE:
        return []
    levels = _frame_levels(audio)
    n = len(levels)
    quiet = levels < _quiet_threshold(levels)
    pauses = _pauses(quiet)
    speech = np.cumsum(~quiet)
    count = n // (_PART * FRAME_RATE)
    dither = _DITHER * _loud_level(levels)
    middles = [m for m, _ in pauses]
    cuts: list[tuple[int, int]] = []
    for k in range(1, count):
        target = n * k // count
        near = sorted((p for p in pauses if abs(p[0] - target) < 30 * FRAME_RATE), key=lambda p: -p[1])
        for frame, _ in near[:3]:  # the longest pauses first
            guess = round(len(words) * speech[frame] / speech[-1])
            end = middles[min(bisect.bisect_left(middles, frame + _ANCHOR), len(middles) - 1)]  # in a pause
            if not frame < end <= frame + 3 * _ANCHOR:
                continue
            word = _anchor(_pcm(audio, frame, end, dither), words, guess, match)
            if word is not None and word > (cuts[-1][1] if cuts else 0):
                cuts.append((frame, word))
                break
    return cuts


def _anchor(pcm: bytes, words: Sequence[str], guess: int, match: float) -> int | None:
    """The index of the first word said in `pcm` (audio that starts in a pause), found by aligning
    it against the transcript around word `guess`, starting with any word there. None unless the
    first `_ANCHOR_WORDS` words aligned there were said, all but two fit their sound, and occur in a
    row in that stretch of the transcript (where they recur, the place nearest `guess` is taken)."""
    reach = max(50, len(words) // 20)
    low, high = max(0, guess - reach), min(len(words), guess + reach)
    stretch = words[low : high + _ANCHOR_WORDS * 20]  # starting late, 30 s hold fewer than this
    try:
        with _LOCK:
            aligned = _align_piece(_aligner(), pcm, stretch, open_end=True, starts=high - low)
    except RuntimeError:
        return None
    said = [w for w in aligned if not w.filler][:_ANCHOR_WORDS]
    if len(said) < _ANCHOR_WORDS or any(w.unsaid for w in said) or sum(w.fits(match) for w in said) < len(said) - 2:
        return None
    names = [w.word for w in said]
    found = [low + i for i in range(high - low) if list(stretch[i : i + _ANCHOR_WORDS]) == names]
    return min(found, key=lambda i: abs(i - guess)) if found else None  # words that recur: the nearest


def _aligned_in_parts(audio: np.ndarray, words: Sequence[str], cuts: Sequence[tuple[int, int]], match: float,
                      strict: bool, loop: bool, jobs: int) -> Alignment:  # fmt: skip
    """`_aligned` of the parts of `audio` between `cuts` ((frame, first word) each), joined: in up to
    `jobs` processes of their own, or in this one for one job. A part that cannot be aligned at all is
    unexplained (an error with `strict`)."""
    bounds = [(0, 0), *cuts, (-(-len(audio) // _HOP), len(words))]  # the last part ends with the audio
    work = [(_pcm(audio, a, b, 0.0), words[i:k], match, strict, loop) for (a, i), (b, k) in itertools.pairwise(bounds)]
    try:
        if jobs < 2:
            results = [_aligned_part(*part) for part in work]
        else:
            with ProcessPoolExecutor(min(jobs, len(work)), mp_context=multiprocessing.get_context("spawn")) as pool:
                results = [part.result() for part in [pool.submit(_aligned_part, *part) for part in work]]
    except AlignmentError:  # with `strict`
        raise AlignmentError(_FAILED, len(words)) from None
    if all(part is None for part in results):
        raise AlignmentError(_FAILED, len(words))
    phones, spans, matched, at_first, run = [], [], 0, 0, 0  # (words matched, before the second pass, in a row)
    for ((first, _), (last, _)), part in zip(itertools.pairwise(bounds), results, strict=True):
        shift, end = first / FRAME_RATE, min(last / FRAME_RATE, len(audio) / SAMPLE_RATE)
        if part is None:
            phones.append(TimedPhone(shift, end, SILENCE))
            spans.append((shift, end))
            continue
        phones += [TimedPhone(p.start + shift, p.end + shift, p.phone) for p in part.phones]
        spans += [(s + shift, e + shift) for s, e in part.unexplained]
        matched += part.matched
        at_first += part.matched_at_first
        run = max(run, part.run)  # (a run across a cut counts as two)
    joined = spans[:1]
    for s, e in spans[1:]:  # spans that meet at a cut are one
        joined[-1:] = [(joined[-1][0], e)] if s <= joined[-1][1] else [joined[-1], (s, e)]
    return Alignment(merge_silences(phones), len(words), matched, tuple(joined), at_first, run)


def _aligned_part(pcm: bytes, words: list[str], match: float, strict: bool, loop: bool) -> Alignment | None:
    """`_aligned` of one part of long audio (16-bit PCM) and its words, in a worker process or this one; None
    when they cannot be aligned at all (without `strict`)."""
    with _LOCK:
        _add_words(_aligner(), words)
    try:
        return _aligned(np.frombuffer(pcm, np.int16), words, match, strict, loop)  # read as it is: no float copy
    except AlignmentError:
        if strict:
            raise
        return None
