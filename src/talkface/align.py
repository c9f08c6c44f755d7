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
"""

from __future__ import annotations

import bisect
import functools
import itertools
import logging
import multiprocessing
import re
import threading
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from difflib import SequenceMatcher
from os import PathLike

import numpy as np
from pocketsphinx import Decoder, get_model_path

from .audio import SAMPLE_RATE, load_audio
from .errors import TalkfaceError
from .phonemes import SILENCE, TimedPhone, merge_silences, normalize
from .text import normalize_text

log = logging.getLogger(__name__)

FRAME_RATE = 100  # pocketsphinx frames per second
_HOP = SAMPLE_RATE // FRAME_RATE
_LOCK = threading.Lock()
_MAX_PIECE = 30 * FRAME_RATE  # frames: longest piece of audio decoded at once, when a pause allows
_MIN_PIECE = 10 * FRAME_RATE  # frames: shortest piece cut off a longer stretch
_MIN_PAUSE = 20  # frames of quiet that make a pause where audio may be cut
_LOOKAHEAD = 2 * FRAME_RATE  # frames: at least this much of the next piece is aligned with each piece
#: Seconds: long audio is cut into parts aligned in processes of their own (`jobs`), none shorter than this.
_PART = 300
_ANCHOR = 10 * FRAME_RATE  # frames after a cut aligned (to the next pause) to find the words said there
_ANCHOR_WORDS = 8  # words in a row that must fit the sound after a cut, found in the transcript near there
_MIN_UNEXPLAINED = 20  # frames: speech no word was aligned to counts from this long (a short word's length)
#: Weight of the path that takes any word of the transcript as other speech (`_UNSAID`, pocketsphinx's
#: "spoken noise" model): a replaced word is aligned as that, and its neighbours keep their own sound.
_NOT_SAID = 1e-10
_UNSAID = "unsaid/spn"  # the dictionary word for it
#: Dither added before decoding, relative to the loud speech level (-48 dB): digital silence, as TTS
#: engines write it, derails pocketsphinx's search; real recordings have a noise floor above this.
_DITHER = 4e-3
#: A word whose acoustic score averages at least this per frame (pocketsphinx log units) fits its sound.
#: Measured on real (LibriVox, ARCTIC) and espeak-ng speech: 98 % of words aligned to the right
#: transcript reach it, half of the words forced onto other speech do.
MATCH_SCORE = -50
#: The same for other languages, whose phones the English model hears less well: on espeak-ng speech
#: of ten languages 10 % of right words fall under MATCH_SCORE, 2 % under this.
MATCH_SCORE_ACROSS = -60
#: A word whose score averages below this per frame is taken not to have been said there (it was
#: replaced, or the audio cut it off), and `Animator` animates its stretch from the sound alone. Chosen
#: on the real-speech validation set with a fifth of the words replaced: 0.2 % of right words fall
#: below it (2 % in other languages, read by espeak-ng), 60 % of replaced ones (measured before
#: `_NOT_SAID`, which now takes many replaced words as other speech first).
UNSAID_SCORE = -60
#: Below this share of matched words a transcript is probably not what was said (on the same 18 clips:
#: right transcripts 0.89–1, wrong ones 0.22–0.67).
MIN_SHARE = 0.75
#: Below this share the transcript is taken to be of other speech: `Animator` animates the audio alone
#: (unless told to keep to the text). Right transcripts with a fifth of their words wrong stay above it.
AUDIO_ONLY_BELOW = 0.5
_FAILED = "could not align the transcript to the audio (does the text match the speech?)"

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


class AlignmentError(TalkfaceError):
    """The transcript (of `words` words) could not be aligned to the audio at all."""

    def __init__(self, message: str, words: int = 0) -> None:
        super().__init__(message)
        self.words = words


@dataclass(frozen=True)
class Alignment:
    """A transcript's phones timed against speech, and how many of its words fit the sound.

    A low share of `matched` words means the transcript is probably not what was said.
    """

    phones: list[TimedPhone]  # contiguous from 0 to the audio's duration, pauses as silence
    words: int  # words in the (normalised) transcript
    matched: int  # words whose sound fits their pronunciation (`MATCH_SCORE`) beside another that does
    #: (start, end) seconds the transcript does not explain: words not said there (`UNSAID_SCORE`), and
    #: speech of at least `_MIN_UNEXPLAINED` that no word of the transcript was aligned to.
    unexplained: tuple[tuple[float, float], ...] = ()

    @property
    def share(self) -> float:
        """Fraction of the transcript's words that fit the sound (1.0 for an empty transcript)."""
        return self.matched / self.words if self.words else 1.0

    @property
    def unexplained_seconds(self) -> float:
        return sum(e - s for s, e in self.unexplained)

    @property
    def doubtful(self) -> bool:
        """Whether so few words fit that the transcript is probably not what was said."""
        return self.share < MIN_SHARE


@dataclass(frozen=True)
class _Word:
    """One word (or filler such as <sil>) of a piece's alignment, in frames from the piece's start."""

    name: str
    start: int
    end: int
    score: int  # acoustic score over the word's frames
    phones: list[tuple[str, int, int]]  # (name, start, end)

    @property
    def filler(self) -> bool:
        return self.name.startswith(("<", "[", "+"))

    @property
    def unsaid(self) -> bool:
        """Whether this is a word of the transcript aligned as other speech (see `_NOT_SAID`)."""
        return self.name == _UNSAID

    def fits(self, score: float) -> bool:
        """Whether the sound fits the word's pronunciation: `score` or more per frame (`MATCH_SCORE`)."""
        return self.score >= score * (self.end - self.start)

    @property
    def said(self) -> bool:
        """Whether the word is probably what was said there (see `UNSAID_SCORE`)."""
        return self.score >= UNSAID_SCORE * (self.end - self.start)


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
    aligned to the audio at all. Time and memory grow linearly with the audio.

    With `jobs` > 1, audio of more than `_PART` is cut at pauses into up to `jobs` parts, each aligned
    in a process of its own with the words said in it (found by aligning a little of the audio after
    each cut against the transcript around where it should be). Where the words said after a pause
    do not fit there, the audio is not cut at that pause.
    """
    audio = load_audio(audio, sample_rate)
    words = _words(text) if _english(lang) else _espeak_words(text, str(lang))
    if not words:
        raise TalkfaceError(f"transcript is empty or has nothing to pronounce: {text!r}")
    match = MATCH_SCORE if _english(lang) else MATCH_SCORE_ACROSS
    cuts = _parts(audio, words, jobs, match) if jobs > 1 and len(audio) > 2 * _PART * SAMPLE_RATE else []
    if not cuts:
        return _aligned(audio, words, match, strict)
    return _aligned_in_parts(audio, words, cuts, match, strict)


def _aligned_in_parts(
    audio: np.ndarray, words: Sequence[str], cuts: Sequence[tuple[int, int]], match: float, strict: bool
) -> Alignment:
    """`_aligned` of the parts of `audio` between `cuts` ((frame, first word) each), in processes of
    their own, joined. A part that cannot be aligned at all is unexplained (an error with `strict`)."""
    bounds = [(0, 0), *cuts, (-(-len(audio) // _HOP), len(words))]  # the last part ends with the audio
    with ProcessPoolExecutor(len(bounds) - 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = [
            pool.submit(_aligned_part, _pcm(audio, a, b, 0.0), words[i:k], match, strict)
            for (a, i), (b, k) in itertools.pairwise(bounds)
        ]
        try:
            results = [part.result() for part in parts]
        except AlignmentError:  # with `strict`
            raise AlignmentError(_FAILED, len(words)) from None
    if all(part is None for part in results):
        raise AlignmentError(_FAILED, len(words))
    phones, spans, matched = [], [], 0
    for ((first, _), (last, _)), part in zip(itertools.pairwise(bounds), results, strict=True):
        shift, end = first / FRAME_RATE, min(last / FRAME_RATE, len(audio) / SAMPLE_RATE)
        if part is None:
            phones.append(TimedPhone(shift, end, SILENCE))
            spans.append((shift, end))
            continue
        phones += [TimedPhone(p.start + shift, p.end + shift, p.phone) for p in part.phones]
        spans += [(s + shift, e + shift) for s, e in part.unexplained]
        matched += part.matched
    joined = spans[:1]
    for s, e in spans[1:]:  # spans that meet at a cut are one
        joined[-1:] = [(joined[-1][0], e)] if s <= joined[-1][1] else [joined[-1], (s, e)]
    return Alignment(merge_silences(phones), len(words), matched, tuple(joined))


def _aligned_part(pcm: bytes, words: list[str], match: float, strict: bool) -> Alignment | None:
    """`_aligned` in a worker process, for one part of long audio (16-bit PCM) and its words; None
    when they cannot be aligned at all (without `strict`)."""
    with _LOCK:
        _add_words(_aligner(), words)
    try:
        return _aligned(np.frombuffer(pcm, np.int16), words, match, strict)  # read as it is: no float copy
    except AlignmentError:
        if strict:
            raise
        return None


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
    explained = np.zeros(n, bool)  # frames of words that were said (`_Word.said`)
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
        fits = []  # of the words kept
        for word in aligned:
            keep = word.start < boundary if word.filler else real < kept
            if keep and not word.unsaid:
                segments += [(p, start + s, start + min(e, boundary)) for p, s, e in word.phones]
            if not word.filler:
                if keep and not word.unsaid:
                    heard[start + word.start : start + min(word.end, boundary)] = True
                    explained[start + word.start : start + min(word.end, boundary)] = word.said
                if keep:
                    fits.append(word.fits(match) and not word.unsaid)
                real += 1
        matched += _in_runs(fits)
        done += kept
        start += boundary
    if not done or (strict and done < len(words)):
        raise AlignmentError(_FAILED, len(words))
    unheard = _runs(~heard & ~_runs(quiet, _MIN_PAUSE), _MIN_UNEXPLAINED)  # speech (its closures too) no word took
    unexplained = ~_runs(~(heard & ~explained | unheard), _MIN_PAUSE)
    spans = tuple((a / FRAME_RATE, b / FRAME_RATE) for a, b in _spans(unexplained))
    return Alignment(_timeline(segments, len(audio) / SAMPLE_RATE), len(words), matched, spans)


def has_speech(audio: np.ndarray) -> bool:
    """Whether 16 kHz audio holds anything like speech: 10 ms levels that rise at least 15 dB over
    its quiet parts and above -60 dBFS. Digital silence and steady noise do not."""
    levels = _frame_levels(audio)
    if not len(levels):
        return False
    loud, quiet = np.percentile(levels, [99, 5])
    return bool(loud >= -60 and loud - quiet >= 15)


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
    # The word segmentation the phone pass starts from must be the search's own best path: the
    # lattice's (bestpath) can end in a one-frame silence no phone sequence fits.
    decoder = Decoder(lm=None, bestpath=False, loglevel="FATAL")
    decoder.add_word(_UNSAID, "+SPN+")
    return decoder


@functools.cache
def _recognizer() -> Decoder:
    phone_lm = get_model_path("en-us/en-us-phone.lm.bin")
    return Decoder(allphone=phone_lm, dict=None, lw=2.0, loglevel="FATAL")


def _parts(audio: np.ndarray, words: Sequence[str], jobs: int, match: float) -> list[tuple[int, int]]:
    """(frame, word) where long audio is cut into parts for `jobs` processes: one of the three longest
    pauses within 30 s of each equal share of it, and the first word said after it (`_anchor`). Where
    that word is not found for certain after any of them, the audio is not cut."""
    levels = _frame_levels(audio)
    n = len(levels)
    quiet = levels < _quiet_threshold(levels)
    pauses = _pauses(quiet)
    speech = np.cumsum(~quiet)
    count = min(jobs, n // (_PART * FRAME_RATE))
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
    names = [re.sub(r"\(\d+\)$", "", w.name) for w in said]  # "the(2)": another pronunciation of "the"
    found = [low + i for i in range(high - low) if list(stretch[i : i + _ANCHOR_WORDS]) == names]
    return min(found, key=lambda i: abs(i - guess)) if found else None  # words that recur: the nearest


def _align_piece(decoder: Decoder, pcm: bytes, words: Sequence[str], open_end: bool, starts: int = 1) -> list[_Word]:
    """Word and phone alignment of `words` in one piece of audio; with `open_end` the alignment may
    stop after any word, in a pause (the rest of the stretch is spoken in the next piece), and it
    may start with any of the first `starts` words (after a pause). Raises RuntimeError when the words cannot be
    aligned."""
    n = len(words)
    transitions: list[tuple] = [(i, i + 1, 1.0, word) for i, word in enumerate(words)]
    transitions += [(0, i, 1.0, "<sil>") for i in range(1, starts)]  # start later, in a pause
    transitions += [(i, i + 1, _NOT_SAID, _UNSAID) for i in range(n)]  # each word may be something else
    if open_end:  # a real silence word, not an empty transition: the phone pass cannot take those
        transitions += [(i, n + 1, 1.0, "<sil>") for i in range(n + 1)]
    decoder.add_fsg("_piece", decoder.create_fsg("_piece", 0, n + open_end, transitions))
    decoder.activate_search("_piece")
    _decode(decoder, pcm)  # word alignment first; set_alignment() refines it to phones
    if decoder.hyp() is None:
        raise RuntimeError("no alignment")
    decoder.set_alignment()
    _decode(decoder, pcm)
    return [
        _Word(w.name, w.start, w.start + w.duration, w.score, [(p.name, p.start, p.start + p.duration) for p in w])
        for w in decoder.get_alignment()
    ]


def _in_runs(fits: Sequence[bool]) -> int:
    """How many words fit their sound next to another that does (or alone, a transcript of one word):
    with any word free to be taken as other speech, a short word alone between such words fits a
    transcript of other speech by chance (ARCTIC a0009 under "the quick brown fox": 5 of 9 words
    fit, 4 in runs; on the validation set, 88 of 92 other recordings' transcripts set aside, 80 without)."""
    if len(fits) == 1:
        return int(fits[0])
    padded = [False, *fits, False]
    return sum(f and (padded[i] or padded[i + 2]) for i, f in enumerate(fits))


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


def _frame_levels(audio: np.ndarray) -> np.ndarray:
    """Level (dB) of each 10 ms frame, computed in blocks so that no copy of long audio is made."""
    n = len(audio) // _HOP
    levels = np.empty(n, np.float32)
    block = 6000  # frames
    for i in range(0, n, block):
        frames = _float(audio[i * _HOP : min(i + block, n) * _HOP]).reshape(-1, _HOP)
        levels[i : i + len(frames)] = 10 * np.log10(np.einsum("ij,ij->i", frames, frames) / _HOP + 1e-10)
    if len(audio) > n * _HOP:  # the last, partial frame
        tail = _float(audio[n * _HOP :])
        levels = np.append(levels, np.float32(10 * np.log10(np.mean(tail * tail) + 1e-10)))
    return levels


def _loud_level(levels: np.ndarray) -> float:
    """RMS amplitude of loud speech: the 99th percentile of the frame levels."""
    return float(10 ** (np.percentile(levels, 99) / 20)) if len(levels) else 0.0


def _quiet_threshold(levels: np.ndarray) -> float:
    """Frames below this level (dB) are pauses: 40 dB under loud speech, or just above the noise floor."""
    if not len(levels):
        return 0.0
    return max(float(np.percentile(levels, 5)) + 6, float(np.percentile(levels, 99)) - 40)


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, past-last) frame of each run of True in `mask`."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))).tolist()
    return list(zip(edges[::2], edges[1::2], strict=True))


def _runs(mask: np.ndarray, shortest: int) -> np.ndarray:
    """`mask` with its runs of True shorter than `shortest` frames cleared."""
    out = np.zeros_like(mask)
    for a, b in _spans(mask):
        out[a:b] = b - a >= shortest
    return out


def _pauses(quiet: np.ndarray) -> list[tuple[int, int]]:
    """(middle frame, length) of each run of at least `_MIN_PAUSE` quiet frames."""
    return [((a + b) // 2, b - a) for a, b in _spans(quiet) if b - a >= _MIN_PAUSE]


def _cuts(levels: np.ndarray, pauses: Sequence[tuple[int, int]]) -> list[int]:
    """Frames where long audio is cut into pieces of at most `_MAX_PIECE` frames: first 0, last the end.

    Each cut is at the middle of the longest pause 10–30 s after the one before; with no pause there,
    at the quietest 50 ms of the piece's second half.
    """
    n = len(levels)
    cuts = [0]
    middles = [m for m, _ in pauses]
    while n - cuts[-1] > _MAX_PIECE:
        s = cuts[-1]
        lo, hi = bisect.bisect_left(middles, s + _MIN_PIECE), bisect.bisect_right(middles, s + _MAX_PIECE)
        if lo < hi:
            cuts.append(max(pauses[lo:hi], key=lambda p: (p[1], p[0]))[0])
        else:
            window = levels[s + _MAX_PIECE // 2 : s + _MAX_PIECE]
            smooth = np.convolve(window, np.ones(5) / 5, mode="same")
            cuts.append(s + _MAX_PIECE // 2 + int(np.argmin(smooth)))
    return [*cuts, n]


def _lookahead(cut: int, cuts: Sequence[int], pauses: Sequence[tuple[int, int]]) -> int:
    """Where the audio aligned with the piece ending at `cut` ends: the first pause at least
    `_LOOKAHEAD` frames into the next piece, or the next piece's end."""
    following = cuts[bisect.bisect_right(cuts, cut)]
    middles = [m for m, _ in pauses]
    i = bisect.bisect_left(middles, cut + _LOOKAHEAD)
    return middles[i] if i < len(middles) and middles[i] < following else following


def _float(samples: np.ndarray) -> np.ndarray:
    """Float32 samples in [-1, 1] from float or 16-bit audio (a part of long audio comes as 16-bit)."""
    return samples * np.float32(1 / 32767) if samples.dtype == np.int16 else samples.astype(np.float32)


def _pcm(audio: np.ndarray, start: int, end: int, dither: float) -> bytes:
    """16-bit PCM of frames `start`..`end`, with a little fixed noise (see `_DITHER`)."""
    piece = _float(audio[start * _HOP : end * _HOP])
    piece += dither * np.random.default_rng(start).standard_normal(len(piece), dtype=np.float32)
    return (np.clip(piece, -1.0, 1.0) * 32767).astype(np.int16).tobytes()


def _decode(decoder: Decoder, pcm: bytes) -> None:
    """Decode one utterance. The noise statistics start afresh each time, so that a result never
    depends on what the shared decoder heard before (another caller's audio, the other pass)."""
    with warnings.catch_warnings():  # pocketsphinx deems start_stream() unnecessary; it is not
        warnings.simplefilter("ignore", DeprecationWarning)
        decoder.start_stream()
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


def _english(lang: str | None) -> bool:
    return lang is None or lang.strip().lower().replace("_", "-").split("-")[0] == "en"


def _words(text: str) -> list[str]:
    """Lowercase CMUdict words of `text` (numbers and abbreviations read out, accents and punctuation
    dropped), each in the aligner's dictionary: a missing one is added with a guessed pronunciation."""
    text = unicodedata.normalize("NFKD", normalize_text(text)).encode("ascii", "ignore").decode()
    words = [token.strip("'") for token in re.findall(r"[a-z']+", text.lower()) if token.strip("'")]
    with _LOCK:
        for word in _add_words(_aligner(), words):
            log.warning("%r is not in the pronunciation dictionary; guessing %s", word, _guess_pronunciation(word))
    return words


def _espeak_words(text: str, lang: str) -> list[str]:
    """Words of `text` as espeak-ng reads it in `lang`, each named by its pronunciation ("@m_ih") and
    added to the aligner's dictionary under that name."""
    from .tts import load_voice

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
