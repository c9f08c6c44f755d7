"""A transcript is a hint: words replaced, a sentence left out or added, words cut off at the edges.

Every case animates; the lips close on the /p b m/ of the words that were said (CMU ARCTIC a0009, hand
labelled); speech the transcript does not explain is animated from the sound; the warning and the
output's metadata say how much of the transcript matched.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import ARCTIC_TRANSCRIPT, DATA

from talkface import Animator
from talkface.align import read_htk_labels
from talkface.audio import SAMPLE_RATE, load_audio
from talkface.metrics import mouth_scores
from talkface.phonemes import SILENCE, TimedPhone
from talkface.tts import load_voice

WORDS = len(ARCTIC_TRANSCRIPT.split())  # 9
OTHER = "Bob bought a map and a big pepper by the pump."


@pytest.fixture(scope="module")
def arctic() -> tuple[np.ndarray, list[TimedPhone]]:
    return load_audio(DATA / "arctic_a0009.wav"), read_htk_labels(DATA / "arctic_a0009_phone.lab")


def _bilabials_close(clip, reference: list[TimedPhone]) -> float:
    return mouth_scores(clip.animation, reference).closed_on_bilabials


def _clip(audio: np.ndarray, text: str, caplog) -> tuple:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="talkface.animator"):
        clip = Animator().clip(audio, text, sample_rate=SAMPLE_RATE)
    return clip, [r.getMessage() for r in caplog.records if r.name == "talkface.animator"]


def test_a_right_transcript_animates_from_the_text_alone(arctic, caplog) -> None:
    audio, reference = arctic
    clip, warnings = _clip(audio, ARCTIC_TRANSCRIPT, caplog)
    assert clip.alignment.matched == WORDS and not clip.alignment.unexplained and not warnings
    assert _bilabials_close(clip, reference) == 1.0


def test_replaced_words_are_reported_and_the_rest_still_closes_the_lips(arctic, caplog) -> None:
    audio, reference = arctic
    text = ARCTIC_TRANSCRIPT.replace("He turned", "Nobody asked").replace("Gregson", "elephants")
    clip, warnings = _clip(audio, text, caplog)
    assert clip.phones is not None  # the transcript was used, not set aside
    assert abs(clip.alignment.share - 6 / WORDS) <= 0.15  # three of nine words replaced
    assert _bilabials_close(clip, reference) == 1.0  # sharply, table
    # the words that do not match are animated from the sound: "he turned" is said from 0.13 to 0.59 s,
    # "Gregson" from 1.57 to 2.0 s (the hand labels)
    replaced = [p for p in reference if 0.13 <= p.mid < 0.59 or 1.57 <= p.mid < 2.0]
    from_sound = sum(any(s <= p.mid < e for s, e in clip.alignment.unexplained) for p in replaced)
    assert from_sound >= 0.8 * len(replaced)
    assert len(warnings) == 1 and f"of {WORDS} words matched" in warnings[0]


@pytest.mark.parametrize(("said", "written", "start", "end"), [("sharply", "quickly", 0.59, 1.14),
                                                            ("faced", "watched", 1.28, 1.57)])  # fmt: skip
def test_the_sound_drives_a_word_that_does_not_fit_from_its_first_phone_to_its_last(arctic, caplog, said, written,
                                                                                    start, end) -> None:  # fmt: skip
    """Beside a word that does not fit, where its neighbours end is the aligner's guess: the span
    animated from the sound reaches past it, so that none of the word's phones (hand labelled: "sharply"
    from 0.59 to 1.14 s, "faced" from 1.28 to 1.57) is animated from a neighbour's."""
    audio, reference = arctic
    clip, _ = _clip(audio, ARCTIC_TRANSCRIPT.replace(said, written), caplog)
    assert clip.alignment.matched == WORDS - 1
    word = [p for p in reference if start <= p.mid < end]
    assert all(any(s <= p.mid < e for s, e in clip.alignment.unexplained) for p in word)
    assert _bilabials_close(clip, reference) == 1.0


def test_words_left_out_of_the_transcript_do_not_pull_the_rest_askew(arctic, caplog) -> None:
    audio, reference = arctic
    clip, _ = _clip(audio, "He turned sharply and faced the table.", caplog)  # "Gregson across" left out
    assert clip.alignment.matched == clip.alignment.words == 7  # every word of the text is said, and found
    left_out = [p for p in reference if 1.57 <= p.mid < 2.34]  # "Gregson across", hand labelled
    from_sound = sum(any(s <= p.mid < e for s, e in clip.alignment.unexplained) for p in left_out)
    assert from_sound >= 0.8 * len(left_out)
    assert _bilabials_close(clip, reference) == 1.0


def test_a_sentence_missing_from_the_transcript_is_animated_from_the_sound(arctic, caplog) -> None:
    audio, reference = arctic
    speech = load_voice().synthesize(OTHER)
    before = load_audio(speech.audio, speech.sample_rate)
    pause = np.zeros(SAMPLE_RATE // 2, np.float32)
    joined = np.concatenate([before, pause, audio])
    shift = (len(before) + len(pause)) / SAMPLE_RATE
    clip, warnings = _clip(joined, ARCTIC_TRANSCRIPT, caplog)
    spoken = [p for p in speech.phones if p.phone != SILENCE]
    heard = sum(any(s <= p.mid < e for s, e in clip.alignment.unexplained) for p in spoken)
    assert heard >= 0.8 * len(spoken)  # the sentence the text leaves out comes from the sound
    moved = [TimedPhone(p.start + shift, p.end + shift, p.phone) for p in reference]
    assert _bilabials_close(clip, moved) == 1.0
    assert "animated from the audio alone" in warnings[0]


def test_a_sentence_that_was_never_said_does_not_stop_the_rest(arctic, caplog) -> None:
    audio, reference = arctic
    clip, warnings = _clip(audio, f"{ARCTIC_TRANSCRIPT} Then we went home.", caplog)
    assert clip.phones is not None
    assert abs(clip.alignment.share - WORDS / (WORDS + 4)) <= 0.15
    assert _bilabials_close(clip, reference) == 1.0
    assert len(warnings) == 1


def test_a_sentence_never_said_in_the_middle_leaves_the_words_after_it_their_sound(arctic, caplog) -> None:
    audio, reference = arctic  # said twice; the transcript has a sentence between that is not heard
    pause = np.zeros(SAMPLE_RATE // 2, np.float32)
    clip, warnings = _clip(np.concatenate([audio, pause, audio]), f"{ARCTIC_TRANSCRIPT} Then we went home. "
                           f"{ARCTIC_TRANSCRIPT}", caplog)  # fmt: skip
    assert clip.phones is not None  # the words after the sentence are found, so the transcript is kept
    assert abs(clip.alignment.share - 2 * WORDS / (2 * WORDS + 4)) <= 0.1
    shift = (len(audio) + len(pause)) / SAMPLE_RATE
    again = [TimedPhone(p.start + shift, p.end + shift, p.phone) for p in reference]
    assert _bilabials_close(clip, reference + again) == 1.0
    assert len(warnings) == 1 and f"of {2 * WORDS + 4} words matched" in warnings[0]


def test_words_cut_off_at_both_edges(arctic, caplog) -> None:
    audio, reference = arctic
    spoken = [p for p in reference if p.phone != SILENCE]
    start, end = spoken[0].mid, spoken[-1].mid  # inside "He" and inside "table"
    cut = audio[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
    clip, _ = _clip(cut, ARCTIC_TRANSCRIPT, caplog)
    assert clip.phones is not None and clip.alignment.matched >= WORDS - 2
    moved = [TimedPhone(p.start - start, p.end - start, p.phone) for p in reference if start <= p.mid < end]
    assert _bilabials_close(clip, moved) == 1.0


def _animate_cli(audio: np.ndarray, text: str, out) -> subprocess.CompletedProcess:
    """`talkface animate` of `audio` (written beside `out` as a WAV) with `text`, writing `out`."""
    wav = out.with_suffix(".wav")
    sf.write(wav, audio, SAMPLE_RATE)
    command = [sys.executable, "-m", "talkface.cli", "animate", str(wav), "--text", text, "-o", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def test_a_transcript_of_other_speech_is_set_aside_and_says_so(arctic, caplog, tmp_path) -> None:
    audio, _ = arctic
    out = tmp_path / "a0009.json"
    result = _animate_cli(audio, OTHER, out)
    warning = result.stderr.strip().splitlines()
    words = len(OTHER.split())
    assert len(warning) == 1 and f"0 of {words} words matched the audio" in warning[0]  # none of it is used
    assert "from the audio alone" in warning[0]
    metadata = json.loads(out.read_text())["metadata"]
    assert metadata["transcript_words"] == words and metadata["words_matched"] == 0
    assert metadata["seconds_from_audio_alone"] == pytest.approx(len(audio) / SAMPLE_RATE, abs=0.01)
    assert metadata["engine"] == "neural" and "engine_without_text" not in metadata  # the sound made all of it


def test_metadata_in_npz_says_how_many_words_matched(arctic, tmp_path) -> None:
    audio, _ = arctic
    out = tmp_path / "a0009.npz"
    _animate_cli(audio, ARCTIC_TRANSCRIPT, out)
    with np.load(out, allow_pickle=False) as data:
        metadata = json.loads(str(data["metadata"]))
    expected = {"transcript_words": WORDS, "words_matched": WORDS, "seconds_from_audio_alone": 0.0}
    assert {k: metadata[k] for k in expected} == expected  # beside the provenance (test_provenance.py)
