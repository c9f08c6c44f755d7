"""Long transcripts aligned in parts, in processes of their own (`align_transcript(jobs=...)`): the
parts must give the alignment of the audio aligned whole, the same for any number of processes, and
audio is cut only where the words said after the cut are found in the transcript."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import sentences

from talkface.align import MATCH_SCORE, align_transcript, boundary_errors
from talkface.align import parts as align_parts
from talkface.align.decoder import FRAME_RATE
from talkface.align.parts import _parts
from talkface.align.pieces import _MARGIN, _aligned
from talkface.align.words import _words
from talkface.audio import load_audio
from talkface.tts import load_voice


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, str]:
    """About 80 s of espeak-ng speech of random sentences, and its text."""
    text = sentences(24, seed=3)
    spoken = load_voice().synthesize(text)
    return load_audio(spoken.audio, spoken.sample_rate), text


@pytest.fixture
def short_parts(monkeypatch) -> None:
    """Parts of 20 s instead of minutes, so that a test's audio is cut into a few."""
    monkeypatch.setattr(align_parts, "_PART", 20)


def test_parts_align_as_the_whole_audio_does(speech, short_parts) -> None:
    audio, text = speech
    assert len(audio) / 16000 > 70
    cuts = _parts(audio, _words(text), MATCH_SCORE)
    assert len(cuts) == 2  # each at a pause, with the word said after it
    whole = _aligned(audio, _words(text), MATCH_SCORE, False, True)
    parts = align_transcript(audio, text, jobs=3)
    errors = np.abs(boundary_errors(parts.phones, whole.phones))
    assert len(errors) >= 0.98 * (len(whole.phones) - 1) and np.mean(errors <= 0.02) >= 0.98
    assert parts.phones[-1].end == pytest.approx(len(audio) / 16000)
    # each part measures its own loudness and is cut into its own pieces: a few words scored at the
    # edge of `MATCH_SCORE` (espeak-ng's speech has many) may fall either way, and with them the
    # stretches animated from the sound, each with its margin either side
    assert parts.words == whole.words and abs(parts.matched - whole.matched) <= 0.03 * whole.words
    few = 0.03 * whole.words * 2 * _MARGIN / FRAME_RATE
    assert parts.unexplained_seconds <= whole.unexplained_seconds + 0.03 * len(audio) / 16000 + few
    # the words matched before the second pass add up over the parts too (they judge `set_aside`)
    assert abs(parts.first_matched - whole.first_matched) <= 0.03 * whole.words and not parts.set_aside


def test_any_number_of_processes_gives_the_same_alignment(speech, short_parts) -> None:
    """The cuts depend on the audio and the transcript alone: `animate` aligns on every core, and a
    machine with one core or eight must write the file a two-core one writes (the parts were one per
    process, so each count of cores cut the audio elsewhere and moved phones all through it)."""
    audio, text = speech
    one, two, three = (align_transcript(audio, text, jobs=jobs) for jobs in (1, 2, 3))
    assert one.phones == two.phones == three.phones
    assert one.matched == two.matched == three.matched and one.unexplained == two.unexplained == three.unexplained


def test_where_the_words_do_not_fit_the_audio_is_not_cut(speech, short_parts) -> None:
    other = sentences(24, seed=4)  # another recording's transcript: no stretch of it fits the audio
    assert _parts(speech[0], _words(other), MATCH_SCORE) == []


def test_where_the_same_words_recur_the_nearest_place_is_taken(short_parts) -> None:
    text = " ".join(["The birch canoe slid on the smooth planks."] * 18)  # the same eight words every 2 s
    spoken = load_voice().synthesize(text)
    audio = load_audio(spoken.audio, spoken.sample_rate)
    assert len(audio) / 16000 > 40
    assert len(_parts(audio, _words(text), MATCH_SCORE)) == 1
    whole, parts = _aligned(audio, _words(text), MATCH_SCORE, False, True), align_transcript(audio, text, jobs=2)
    # pairing phones in sequence can slip by whole sentences in text this repetitive: look near each one
    near = [any(q.phone == p.phone and abs(q.start - p.start) <= 0.02 for q in whole.phones) for p in parts.phones]
    assert np.mean(near) >= 0.95 and abs(len(parts.phones) - len(whole.phones)) <= 0.02 * len(whole.phones)
    assert abs(parts.matched - whole.matched) <= 0.03 * whole.words
