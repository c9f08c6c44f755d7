"""flite and Festival voices (Debian packages the Makefile installs): audio, phone timings that cover
it, and bilabials where the lips close."""

import itertools

import numpy as np
import pytest

from talkface.errors import TalkfaceError
from talkface.phonemes import SILENCE, VOWELS
from talkface.tts import Speech, festival, flite, speech_from_ends

TEXT = "Bob bought a map."
BILABIALS = ["b", "b", "b", "m", "p"]  # b-aa-b b-ao-t ah m-ae-p


def _rms(speech: Speech, start: float, end: float) -> float:
    quarter = (end - start) / 4
    a, b = int((start + quarter) * speech.sample_rate), int((end - quarter) * speech.sample_rate)
    return float(np.sqrt(np.mean(speech.audio[a : max(b, a + 1)] ** 2)))


def _check(speech: Speech) -> None:
    """Phones contiguous over the whole audio, the expected bilabials, the stops' closures quieter than vowels."""
    phones = speech.phones
    assert speech.audio.dtype == np.float32 and np.abs(speech.audio).max() > 0.05
    assert phones[0].start == 0.0 and phones[0].phone == SILENCE
    assert phones[-1].end == pytest.approx(len(speech.audio) / speech.sample_rate)
    assert all(a.end == b.start for a, b in itertools.pairwise(phones))
    assert [p.phone for p in phones if p.phone in {"p", "b", "m"}] == BILABIALS
    loud = np.median([_rms(speech, p.start, p.end) for p in phones if p.phone in VOWELS])
    for p in phones:
        if p.phone in {"p", "b", "m"}:
            assert 0.02 < p.end - p.start < 0.3, p
        if p.phone in {"p", "b"}:  # a nasal /m/ can be as loud as a vowel
            assert _rms(speech, p.start, p.end) < 0.7 * loud, p


@pytest.mark.parametrize("name", sorted(flite.VOICES))
def test_flite_voice_times_its_bilabials(name):
    speech = flite.load(name).synthesize(TEXT)
    assert speech.sample_rate == (8000 if name == "kal" else 16000)
    _check(speech)


@pytest.mark.parametrize("name", sorted(festival.VOICES))
def test_festival_voice_times_its_bilabials(name):
    speech = festival.load(name).synthesize(TEXT)
    assert speech.sample_rate == 16000
    _check(speech)


def test_rate_and_quotes():
    slow, fast = flite.load("rms", stretch=1.3), flite.load("rms", stretch=0.8)
    assert len(slow.synthesize(TEXT).audio) > 1.3 * len(fast.synthesize(TEXT).audio)
    quoted = festival.load("festival:ked", stretch=1.2).synthesize('He said "Bob\'s map" \\ twice.')
    assert "m" in [p.phone for p in quoted.phones]


def test_unknown_voices_and_slt_are_refused():
    for name in ("slt", "flite:slt", "nobody"):
        with pytest.raises(TalkfaceError, match="unknown"):
            flite.load(name)
    with pytest.raises(TalkfaceError, match="unknown"):
        festival.load("slt")


def test_speech_from_ends_shifts_inner_boundaries_and_fills_the_audio():
    audio = np.zeros(16000, np.float32)
    speech = speech_from_ends(audio, 16000, [(0.2, "pau"), (0.3, "B"), (0.5, "ax"), (1.4, "pau")], shift=0.01)
    assert [(p.phone, round(p.start, 3), round(p.end, 3)) for p in speech.phones] == [
        ("sil", 0.0, 0.21), ("b", 0.21, 0.31), ("ah", 0.31, 0.51), ("sil", 0.51, 1.0)
    ]  # fmt: skip
    with pytest.raises(TalkfaceError, match="unknown phone"):
        speech_from_ends(audio, 16000, [(0.5, "qq")])
