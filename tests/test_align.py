"""Forced alignment and phone recognition against the hand labels of a real CMU ARCTIC clip, and
against espeak-ng's own phone timings for minutes of speech (time and memory must stay linear)."""

from __future__ import annotations

import itertools
import json
import logging
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ARCTIC_TRANSCRIPT, DATA
from synthetic import sentences

from talkface import Animator
from talkface.align import (
    AUDIO_ONLY_BELOW,
    KEPT_RUN,
    RECOVERED_BELOW,
    Alignment,
    align,
    align_transcript,
    boundary_errors,
    read_htk_labels,
    recognize,
)
from talkface.align.words import _words
from talkface.audio import load_audio
from talkface.errors import TalkfaceError
from talkface.phonemes import SILENCE, TimedPhone
from talkface.tts import load_voice

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


WRONG_TRANSCRIPT = "The quick brown fox jumps over the lazy dog."


def test_right_transcript_matches_and_a_wrong_one_does_not(audio) -> None:
    right = align_transcript(audio, ARCTIC_TRANSCRIPT)
    assert (right.matched, right.words) == (9, 9) and not right.doubtful
    wrong = align_transcript(audio, WRONG_TRANSCRIPT)  # forced alignment still "succeeds" …
    assert wrong.words == 9 and wrong.share < AUDIO_ONLY_BELOW and wrong.doubtful  # … but few words fit the sound
    assert wrong.set_aside and not right.set_aside


def test_words_found_only_by_the_second_pass_must_be_more_to_keep_a_transcript() -> None:
    """Under half matched at first, a transcript is kept only if the second pass brings the share to
    `RECOVERED_BELOW`: other speech's transcripts gain a few chance matches there too."""
    silence = [TimedPhone(0.0, 1.0, SILENCE)]
    half, under = round(AUDIO_ONLY_BELOW * 10), round(AUDIO_ONLY_BELOW * 10) - 1
    assert not Alignment(silence, 10, half).set_aside and Alignment(silence, 10, under).set_aside
    assert not Alignment(silence, 10, half, first_matched=half).set_aside
    assert Alignment(silence, 10, half, first_matched=under).set_aside  # found again, but not enough
    assert not Alignment(silence, 10, round(RECOVERED_BELOW * 10), first_matched=under).set_aside
    # … unless a long run of its words matched in a row: chance matches come one or two at a time
    assert not Alignment(silence, 30, KEPT_RUN, first_matched=KEPT_RUN, run=KEPT_RUN).set_aside
    assert Alignment(silence, 30, KEPT_RUN, first_matched=KEPT_RUN, run=KEPT_RUN - 1).set_aside


def test_a_transcript_far_longer_than_the_audio_is_looked_for_only_where_it_could_be_said(audio, monkeypatch) -> None:
    """The second pass looks for a run of words again in its stretch of audio, the words the audio ran
    out before too; a grammar of thousands of words (quadratic in them) took gigabytes, so it gets
    only as many as could be said there."""
    import talkface.align.pieces as pieces

    asked: list[tuple[float, int]] = []

    def spy(decoder, pcm: bytes, names):
        asked.append((len(pcm) / 2 / 16000, len(names)))
        return stretch(decoder, pcm, names)

    stretch = pieces._align_stretch
    monkeypatch.setattr(pieces, "_align_stretch", spy)
    three = np.concatenate([audio] * 3)  # the transcript's first sentence matches the first of three
    result = align_transcript(three, f"{ARCTIC_TRANSCRIPT} {sentences(300, seed=5)}")
    assert asked and result.matched >= 9 and result.words > 2000
    assert all(n <= pieces._WORDS_PER_SECOND * seconds + 1 for seconds, n in asked)


def test_a_transcript_of_many_thousand_words_over_seconds_of_audio_is_bounded(audio, monkeypatch) -> None:
    """The first pass too gets no more words than could be said in its piece: 200 000 words over 3 s
    made one grammar of all of them (gigabytes); now they are set aside as other speech's."""
    import talkface.align.pieces as pieces

    asked: list[tuple[float, int]] = []

    def spy(decoder, pcm: bytes, words, open_end, starts=1):
        asked.append((len(pcm) / 2 / 16000, len(words)))
        return piece(decoder, pcm, words, open_end, starts)

    piece = pieces._align_piece
    monkeypatch.setattr(pieces, "_align_piece", spy)
    result = align_transcript(audio, "tomorrow " * 200_000)
    assert result.words == 200_000 and result.set_aside
    assert asked and all(n <= pieces._WORDS_PER_SECOND * (seconds + 0.01) + 10 for seconds, n in asked)


def test_words_missing_from_the_dictionary_are_one_warning(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="talkface")
    _words("zqbbx zqbby zqbbz zqbbw zqbbv " + "q" * 100_000)
    (record,) = caplog.records
    assert "guessed from the spelling: 'zqbbx' as 'Z K B K S'" in record.getMessage()
    assert record.getMessage().endswith("and 3 more") and len(record.getMessage()) < 300


def test_animator_warns_once_about_a_wrong_transcript(audio, caplog) -> None:
    """A transcript of other speech is set aside: the face follows the audio, and one warning says so."""
    caplog.set_level(logging.WARNING, logger="talkface")
    Animator().animate(audio, text=ARCTIC_TRANSCRIPT, sample_rate=16000)
    assert not caplog.records
    anim, phones, _ = Animator().clip(audio, text=WRONG_TRANSCRIPT, sample_rate=16000)
    [record] = caplog.records
    assert record.name == "talkface.animator"
    set_aside = r"( \([1-4] fit here and there: the transcript is set aside\))?"
    expected = rf"0 of 9 words matched the audio{set_aside}; 3\.\d s animated from the audio alone"
    assert re.fullmatch(expected, record.getMessage())
    alone = Animator().animate(audio, sample_rate=16000)
    assert phones is None and np.array_equal(anim.weights, alone.weights)
    caplog.clear()
    _, phones, _ = Animator(strict_text=True).clip(audio, text=WRONG_TRANSCRIPT, sample_rate=16000)
    [record] = caplog.records  # strict: the text is kept, with the warning
    assert re.fullmatch(r"[0-4] of 9 words matched the audio", record.getMessage()) and phones


def test_a_transcript_that_cannot_be_aligned_leaves_the_audio_to_animate(audio, caplog, tmp_path) -> None:
    caplog.set_level(logging.WARNING, logger="talkface")
    cut = audio[:12800]  # its first 0.8 s: the whole transcript cannot fit
    anim, phones, _ = Animator().clip(cut, text=ARCTIC_TRANSCRIPT, sample_rate=16000)
    assert phones is None and anim.num_frames == 24
    assert caplog.records[-1].getMessage() == (
        "could not align the transcript to the audio; 0.8 s animated from the audio alone"
    )
    with pytest.raises(TalkfaceError, match="could not align"):
        Animator(strict_text=True).animate(cut, text=ARCTIC_TRANSCRIPT, sample_rate=16000)
    import soundfile as sf

    wav = tmp_path / "cut.wav"
    sf.write(wav, cut, 16000)
    args = [sys.executable, "-m", "talkface.cli", "animate", str(wav), "--text", ARCTIC_TRANSCRIPT]
    done = subprocess.run([*args, "-o", str(tmp_path / "a.csv"), "--phonemes-out", str(tmp_path / "a.tsv")],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0 and (tmp_path / "a.csv").is_file() and not (tmp_path / "a.tsv").exists()
    assert done.stderr.splitlines() == [
        "warning: could not align the transcript to the audio; 0.8 s animated from the audio alone",
        f"warning: {tmp_path / 'a.tsv'} not written: the neural model animated the audio alone",
    ]
    strict = subprocess.run([*args, "--strict-text", "-o", str(tmp_path / "b.csv")], capture_output=True, text=True)
    assert strict.returncode == 1 and len(strict.stderr.splitlines()) == 1 and "could not align" in strict.stderr
    assert not (tmp_path / "b.csv").exists()


def test_a_transcript_over_noise_is_an_error() -> None:
    """Without speech there is nothing the transcript could be of: one clear error, strict or not."""
    rng = np.random.default_rng(0)
    for level in (0.1, 1e-4):  # loud white noise; a quiet room
        noise = rng.normal(0, level, 48000).astype(np.float32)
        with pytest.raises(TalkfaceError, match="the audio holds no speech to align the transcript to"):
            Animator().animate(noise, text=ARCTIC_TRANSCRIPT, sample_rate=16000)
        with pytest.raises(TalkfaceError, match="could not align"):
            Animator(strict_text=True).animate(noise, text=ARCTIC_TRANSCRIPT, sample_rate=16000)


def test_align_synthetic_speech_with_digital_silence() -> None:
    # espeak-ng writes its pauses and stop closures as exact zeros, which derailed pocketsphinx
    text = "Difference experience game. The birch canoe slid on the smooth planks."
    speech = load_voice().synthesize(text)
    phones = align(speech.audio, text, speech.sample_rate)
    errors = np.abs(boundary_errors(phones, speech.phones))
    # most phones paired (which of CMUdict's pronunciations is taken changes a few names) and on time
    assert len(errors) >= 0.85 * (len(speech.phones) - 2) and np.median(errors) <= 0.015


#: Run in a fresh process: animates the speech saved by the test as `animate --text` or `animate --engine
#: phonetic` do, and reports the peak resident memory before and after, the CPU time, and the phone
#: boundary errors against espeak-ng's own timings.
_MEASURE = """
import json, pickle, resource, sys, time
import numpy as np
from talkface import Animator
from talkface.align import boundary_errors
from talkface.align.decoder import _aligner
from talkface.align.recognition import _recognizer
audio = np.load(sys.argv[2])
with open(sys.argv[3], "rb") as f:
    text, reference = pickle.load(f)
text = text if sys.argv[1] == "text" else None
_aligner() if text else _recognizer()  # the decoder is built before measuring
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cpu = time.process_time()
anim, phones, _ = Animator(engine="phonetic").clip(audio, text, sample_rate=16000)
cpu = time.process_time() - cpu
errors = np.abs(boundary_errors(phones, reference))
print(json.dumps({"before_mb": before / 1024, "after_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "cpu_s": cpu, "pairs": len(errors), "median": float(np.median(errors)),
                  "within_30ms": float(np.mean(errors <= 0.03)), "end": phones[-1].end, "seconds": anim.duration}))
"""


@pytest.fixture(scope="module")
def minutes_of_speech(tmp_path_factory) -> tuple:
    """Three minutes of espeak-ng speech (audio .npy, pickled text and phones) and its duration."""
    import pickle

    text = sentences(62)
    speech = load_voice().synthesize(text)
    audio = load_audio(speech.audio, speech.sample_rate)
    folder = tmp_path_factory.mktemp("long")
    np.save(folder / "audio.npy", audio)
    with open(folder / "speech.pkl", "wb") as f:
        pickle.dump((text, speech.phones), f)
    return folder / "audio.npy", folder / "speech.pkl", len(audio) / 16000, len(speech.phones)


@pytest.mark.parametrize(("path", "max_growth_mb", "max_median_s"), [("text", 120, 0.015), ("phonetic", 120, 0.03)])
def test_minutes_of_speech_in_bounded_memory(minutes_of_speech, path, max_growth_mb, max_median_s) -> None:
    # was: --text peak memory grew with the square of the length (4 minutes: 2.5 GB), and the prosody
    # both paths measure held 40 ms frames and their spectra for the whole clip at once (phonetic, 10 min: 1.8 GB)
    audio, speech, duration, reference = minutes_of_speech
    assert duration > 150
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, path, str(audio), str(speech)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["after_mb"] - result["before_mb"] <= max_growth_mb, result
    assert result["end"] == pytest.approx(duration)
    assert result["median"] <= max_median_s, result
    if path == "text":  # forced alignment: phone boundaries within a frame or two of espeak-ng's own
        assert result["pairs"] >= 0.9 * reference and result["within_30ms"] >= 0.9, result


def test_the_loop_for_sound_the_transcript_lacks_has_every_mouth_shape() -> None:
    """The second pass's loop of phones (`_second_pass`) can make any mouth shape but silence."""
    from talkface.align.decoder import _PHONES
    from talkface.phonemes import VISEME_OF, VISEMES

    assert {VISEME_OF[p.lower()] for p in _PHONES} == set(VISEMES) - {"sil"}
