"""The pocketsphinx aligner, and one piece of audio aligned with it: words, then their phones.

The aligner is built once per process and shared under `_LOCK`, as is the recogniser (`recognition`):
pocketsphinx decoders are not thread-safe. `_timeline` turns either's frames into contiguous phones.
"""

from __future__ import annotations

import functools
import re
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pocketsphinx import Decoder

from ..audio import SAMPLE_RATE
from ..phonemes import SILENCE, TimedPhone, merge_silences, normalize

FRAME_RATE = 100  # pocketsphinx frames per second
_HOP = SAMPLE_RATE // FRAME_RATE
_LOCK = threading.Lock()
#: Weight of the path that takes any word of the transcript as other speech (`_UNSAID`, pocketsphinx's
#: "spoken noise" model): a replaced word is aligned as that, and its neighbours keep their own sound.
_NOT_SAID = 1e-10
_UNSAID = "unsaid/spn"  # the dictionary word for it
_FILLERS = ("<", "[", "+")  # how the names of silence and noise words begin
_LOOP_PREFIX = "~"  # the loop's phones are the words "~aa" …


@dataclass(frozen=True)
class _Word:
    """One word (or filler such as <sil>) of a piece's alignment, in frames from the piece's start."""

    name: str
    start: int
    end: int
    score: int  # acoustic score over the word's frames
    phones: list[tuple[str, int, int]]  # (name, start, end)

    @property
    def word(self) -> str:
        """The dictionary word without the number of its pronunciation ("the(2)": "the")."""
        return _word_of(self.name)

    @property
    def filler(self) -> bool:
        """Silence, noise, or a phone of the loop that takes sound the transcript lacks."""
        return self.name.startswith((*_FILLERS, _LOOP_PREFIX))

    @property
    def unsaid(self) -> bool:
        """Whether this is a word of the transcript aligned as other speech (see `_NOT_SAID`)."""
        return self.name == _UNSAID

    def fits(self, score: float) -> bool:
        """Whether the sound fits the word's pronunciation: `score` or more per frame (`MATCH_SCORE`)."""
        return self.score >= score * (self.end - self.start)


#: The loop that takes the sound the transcript lacks (`_align_stretch`): the US English model's phones.
#: On the validation recordings with a sentence left out of the text, a loop of one phone per mouth
#: shape (14) took 40 % less CPU but the lips closed on fewer of the bilabials the text explains
#: (93.0 against 95.4 %), and 9 phones matched fewer words (77.3 against 78.7 %, on 40 of them).
_PHONES = ("AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY", "JH",
           "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z",
           "ZH")  # fmt: skip
_LOOP = 1e-3  # weight of each phone of that loop
_SKIP = 1e-3  # weight of a word of the transcript left out with no sound of its own


@functools.cache
def _aligner() -> Decoder:
    # The word segmentation the phone pass starts from must be the search's own best path: the
    # lattice's (bestpath) can end in a one-frame silence no phone sequence fits.
    decoder = Decoder(lm=None, bestpath=False, loglevel="FATAL")
    decoder.add_word(_UNSAID, "+SPN+")
    for k, phone in enumerate(_PHONES):
        decoder.add_word(_LOOP_PREFIX + phone.lower(), phone, update=k == len(_PHONES) - 1)
    return decoder


def _word_of(name: str) -> str:
    return re.sub(r"\(\d+\)$", "", name)


def _align_stretch(decoder: Decoder, pcm: bytes, words: Sequence[str]) -> list[tuple[str, _Word]]:
    """`words` aligned to a stretch of audio where each may be left out, and a loop of phones (the
    words `~aa` …) may take any sound before, between or after them: each word found (one of
    `words`, or a phone of the loop) with its alignment, which may take it as other speech.

    Pocketsphinx follows one empty transition at a time, so the grammar holds every chain of them
    as one: from each state (and from the loop after it) straight to every later one, skipping the
    words between."""
    n = len(words)
    loop_words = [_LOOP_PREFIX + p.lower() for p in _PHONES]
    transitions: list[tuple] = [(i, i + 1, 1.0, word) for i, word in enumerate(words)]
    for i in range(n + 1):
        loop = n + 1 + i
        transitions += [(i, loop, _LOOP, w) for w in loop_words] + [(loop, loop, _LOOP, w) for w in loop_words]
        transitions += [(i, j, _skipped(j - i)) for j in range(i + 1, n + 1)]
        transitions += [(loop, j, _skipped(j - i)) for j in range(i, n + 1)]
    decoder.add_fsg("_stretch", decoder.create_fsg("_stretch", 0, n, transitions))
    decoder.activate_search("_stretch")
    _decode(decoder, pcm)
    if decoder.hyp() is None:
        raise RuntimeError("no alignment")
    # the phone pass cannot follow the grammar's empty transitions: it aligns the words found, in a row
    found = [s.word for s in decoder.seg() if s.word != "(NULL)" and not s.word.startswith(_FILLERS)]
    if not found:
        return []
    aligned = [w for w in _align_piece(decoder, pcm, found, open_end=False) if not w.name.startswith(_FILLERS)]
    if len(aligned) != len(found):  # each word is there, as itself or as other speech
        raise RuntimeError("the words found were not aligned one for one")
    return list(zip(found, aligned, strict=True))


def _skipped(k: int) -> float:
    """Weight of `k` words in a row left out (`_SKIP` each; never under float's 1e-300)."""
    return max(_SKIP**k, 1e-300)


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
