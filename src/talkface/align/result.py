"""What an alignment gives (`Alignment`, `AlignmentError`), and the per-frame scores that judge its words."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TalkfaceError
from ..phonemes import TimedPhone

#: A word whose acoustic score averages at least this per frame (pocketsphinx log units) fits its sound.
#: Measured on real (LibriVox, ARCTIC) and espeak-ng speech: 98 % of words aligned to the right
#: transcript reach it, half of the words forced onto other speech do.
MATCH_SCORE = -50
#: The same for other languages, whose phones the English model hears less well: on espeak-ng speech
#: of ten languages 10 % of right words fall under MATCH_SCORE, 2 % under this.
MATCH_SCORE_ACROSS = -60
#: Below this share of matched words a transcript is probably not what was said (on the same 18 clips:
#: right transcripts 0.89–1, wrong ones 0.22–0.67).
MIN_SHARE = 0.75
#: Below this share the transcript is taken to be of other speech: `Animator` animates the audio alone
#: (unless told to keep to the text). Right transcripts with a fifth of their words wrong stay above it.
AUDIO_ONLY_BELOW = 0.5
#: The same line for a transcript under `AUDIO_ONLY_BELOW` after the first pass, whose words the second
#: pass found again: a transcript of other speech gains a few chance matches there too. Chosen on the
#: validation recordings of `benchmarks/perturbed_text.py` (another recording's transcript is kept no
#: more often than with the first pass alone; with the second pass on every transcript and 0.5, 8 of
#: 92 were kept instead of 2).
RECOVERED_BELOW = 0.6
#: A transcript with this many words in a row matched is kept below those lines: chance matches on
#: other speech come in short runs. On the validation recordings of `benchmarks/perturbed_text.py`
#: another recording's transcript matched at most 7 in a row (among those set aside), while 14 of 37
#: with a sentence added that was never said, set aside by the share, had 8 to 24.
KEPT_RUN = 8
_FAILED = "could not align the transcript to the audio (does the text match the speech?)"


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
    #: (start, end) seconds the transcript does not explain: words not matched there, and speech of at
    #: least `_MIN_UNEXPLAINED` that no word of the transcript was aligned to; each reaches `_MARGIN`
    #: (0.2 s) into the words beside it, whose edges next to it are a guess.
    unexplained: tuple[tuple[float, float], ...] = ()
    first_matched: int | None = None  # words matched before the second pass (None: the same as `matched`)
    run: int = 0  # the most words matched in a row

    @property
    def share(self) -> float:
        """Fraction of the transcript's words that fit the sound (1.0 for an empty transcript)."""
        return self.matched / self.words if self.words else 1.0

    @property
    def matched_at_first(self) -> int:
        """Words matched before the second pass."""
        return self.matched if self.first_matched is None else self.first_matched

    @property
    def set_aside(self) -> bool:
        """Whether so few words fit that the transcript is taken to be of other speech
        (`AUDIO_ONLY_BELOW`; `RECOVERED_BELOW` where only the second pass found enough), and none
        of its runs of matched words is long enough to say otherwise (`KEPT_RUN`)."""
        line = RECOVERED_BELOW if self.matched_at_first < AUDIO_ONLY_BELOW * self.words else AUDIO_ONLY_BELOW
        return self.share < line and self.run < KEPT_RUN

    @property
    def unexplained_seconds(self) -> float:
        return sum(e - s for s, e in self.unexplained)

    @property
    def doubtful(self) -> bool:
        """Whether so few words fit that the transcript is probably not what was said."""
        return self.share < MIN_SHARE
