"""Forced alignment and phone recognition against the hand labels of a real CMU ARCTIC clip."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import ARCTIC_TRANSCRIPT, DATA

from talkface.align import _words, align, boundary_errors, read_htk_labels, recognize
from talkface.audio import load_audio
from talkface.errors import TalkfaceError
from talkface.phonemes import SILENCE, TimedPhone

LABELS = DATA / "arctic_a0009_phone.lab"


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return load_audio(DATA / "arctic_a0009.wav")


@pytest.fixture(scope="module")
def reference() -> list[TimedPhone]:
    return read_htk_labels(LABELS)


@pytest.fixture(scope="module")
def aligned(audio: np.ndarray) -> list[TimedPhone]:
    return align(audio, ARCTIC_TRANSCRIPT)


def _assert_contiguous(phones: list[TimedPhone], duration: float) -> None:
    assert phones[0].start == 0.0
    assert phones[-1].end == pytest.approx(duration)
    for a, b in itertools.pairwise(phones):
        assert a.end == pytest.approx(b.start) and a.end > a.start


def test_read_htk_labels(reference: list[TimedPhone]) -> None:
    assert reference[0] == TimedPhone(0.0, 0.13, SILENCE)
    assert reference[1].phone == "hh" and reference[1].start == pytest.approx(0.13)
    assert reference[-1].end == pytest.approx(3.075)
    assert [p.phone for p in reference[-4:]] == ["b", "ah", "l", SILENCE]  # HTS "ax" → "ah"


def test_read_htk_labels_plain_and_bad(tmp_path) -> None:
    plain = tmp_path / "plain.lab"
    plain.write_text("0 500000 pau\n500000 1500000 AA1\n")
    assert read_htk_labels(plain) == [TimedPhone(0.0, 0.05, SILENCE), TimedPhone(0.05, 0.15, "aa")]
    bad = tmp_path / "bad.lab"
    bad.write_text("0 500000 pau\n500000 1500000 qq\n")
    with pytest.raises(TalkfaceError, match=r"bad\.lab:2"):
        read_htk_labels(bad)
    with pytest.raises(TalkfaceError, match="cannot read"):
        read_htk_labels(tmp_path / "missing.lab")


def test_align_matches_hand_labels(audio, aligned, reference) -> None:
    _assert_contiguous(aligned, len(audio) / 16000)
    assert [p.phone for p in aligned] == [p.phone for p in reference]  # CMUdict agrees with ARCTIC here
    errors = np.abs(boundary_errors(aligned, reference))
    assert len(errors) == len(reference) - 1
    assert np.median(errors) <= 0.020
    assert errors.max() <= 0.080


@pytest.mark.parametrize(("phone", "after"), [("p", 0.7), ("b", 2.5)])  # sharPly, taBle
def test_align_places_bilabials(aligned, reference, phone: str, after: float) -> None:
    def start(phones: list[TimedPhone]) -> float:
        return next(p.start for p in phones if p.phone == phone and p.start > after)

    assert abs(start(aligned) - start(reference)) <= 0.050


def test_align_resamples_other_rates(aligned) -> None:
    audio_44k = load_audio(DATA / "arctic_a0009.wav", target_rate=44100)
    phones = align(audio_44k, ARCTIC_TRANSCRIPT, sample_rate=44100)
    assert [p.phone for p in phones] == [p.phone for p in aligned]
    assert max(abs(a.start - b.start) for a, b in zip(phones, aligned, strict=True)) <= 0.011


def test_recognize_is_plausible(audio, reference) -> None:
    phones = recognize(audio)
    _assert_contiguous(phones, len(audio) / 16000)
    speech = [p for p in phones if 0.15 < p.mid < 2.9]
    assert len(speech) >= 20
    assert sum(p.phone != SILENCE for p in speech) / len(speech) >= 0.9
    errors = np.abs(boundary_errors(phones, reference))
    assert len(errors) >= 15
    assert np.median(errors) <= 0.030


def test_align_empty_transcript(audio) -> None:
    for text in ("", "  ", "!?, ...", "日本語"):
        with pytest.raises(TalkfaceError, match="transcript is empty"):
            align(audio, text)


def test_align_out_of_vocabulary_word(audio, caplog) -> None:
    phones = align(audio, "He turned zorblax")
    names = [p.phone for p in phones]
    assert names[:9] == [SILENCE, "hh", "iy", "t", "er", "n", "d", "z", "ao"]
    assert "zorblax" in caplog.text


def test_align_normalises_punctuation(audio, aligned) -> None:
    text = "HE TURNED — sharply; and faced “Gregson” across the table!!"
    assert [p.phone for p in align(audio, text)] == [p.phone for p in aligned]


def test_transcript_words() -> None:
    assert _words("It’s 1,250 café-owners, 3.5 'quoted' and 007") == [
        "it's", "one", "thousand", "two", "hundred", "fifty", "cafe", "owners", "three", "point",
        "five", "quoted", "and", "zero", "zero", "seven",
    ]  # fmt: skip


def test_align_mismatch_is_a_clean_error(audio) -> None:
    noise = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    with pytest.raises(TalkfaceError, match="could not align"):
        align(noise, ARCTIC_TRANSCRIPT)
    with pytest.raises(TalkfaceError, match="could not align"):
        align(audio[:1600], ARCTIC_TRANSCRIPT)
