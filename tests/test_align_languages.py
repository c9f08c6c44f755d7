"""Transcripts in languages other than English: espeak-ng reads them, pocketsphinx's model times them.

The speech here is espeak-ng's, spoken by another voice variant, slower and lower than the voice whose
reading gives the pronunciations, and padded with silence: its own phone timings are the reference.
"""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from talkface import Animator
from talkface.align import align_transcript, boundary_errors
from talkface.audio import SAMPLE_RATE, load_audio
from talkface.coarticulation import animate_phones
from talkface.errors import TalkfaceError
from talkface.metrics import mouth_scores
from talkface.phonemes import SILENCE, TimedPhone, merge_silences, read_phones_tsv
from talkface.tts import load_voice
from talkface.tts.espeak import Prosody
from talkface.tts.espeak import load as load_espeak

#: A sentence per language, dense in /p b m/ and in open and rounded vowels.
SENTENCES = {
    "de": "Peter und Maria bauen morgen ein großes Haus am Berg. Bitte bring mir das Buch mit.",
    "fr": "Pierre a mangé une pomme bien mûre. Maman aime beaucoup le beau temps du printemps.",
    "es": "Pablo compró una botella de vino para su madre. Mañana vamos a la playa a bailar.",
    "it": "Il bambino mangia una mela buona. Mio padre porta il pane e il burro a casa.",
    "ru": "Мама мыла раму. Папа купил большой белый хлеб в магазине.",
    "pt": "O menino bebe muito leite de manhã. Minha mãe comprou uma bola azul.",
    "nl": "Mijn broer maakt een mooie boot van papier. Morgen ben ik om negen uur bij de bakker.",
    "pl": "Mama ma małego brata. Po obiedzie pójdziemy do parku na spacer.",
    "cs": "Máma myje malou misku. Bratr přinesl bílý papír do obchodu.",
    "sv": "Min mamma bakar bröd med mjöl och smör. Pappa bor i ett blått hus.",
}
PAD = 0.5  # seconds of silence either side


def _spoken(lang: str) -> tuple[np.ndarray, list[TimedPhone]]:
    """The sentence of `lang` in another voice (+m3, 140 words a minute, low pitch), with its phones."""
    name = load_voice(None, lang).info.name.removeprefix("espeak:")
    speech = load_espeak(f"{name}+m3", Prosody(rate=140, pitch=35)).synthesize(SENTENCES[lang])
    pad = np.zeros(int(PAD * SAMPLE_RATE), np.float32)
    audio = np.concatenate([pad, load_audio(speech.audio, speech.sample_rate), pad])
    shifted = [TimedPhone(p.start + PAD, p.end + PAD, p.phone) for p in speech.phones]
    phones = [TimedPhone(0.0, PAD, SILENCE), *shifted, TimedPhone(shifted[-1].end, len(audio) / SAMPLE_RATE, SILENCE)]
    return audio, merge_silences(phones)


@pytest.fixture(scope="module")
def aligned() -> dict[str, tuple[np.ndarray, list[TimedPhone], object]]:
    out = {}
    for lang in SENTENCES:
        audio, reference = _spoken(lang)
        out[lang] = audio, reference, align_transcript(audio, SENTENCES[lang], lang=lang)
    return out


def test_phone_boundaries_in_ten_languages_are_where_the_voice_put_them(aligned) -> None:
    errors = []
    for lang, (_, reference, alignment) in aligned.items():
        e = np.abs(boundary_errors(alignment.phones, reference))
        assert len(e) > 0.7 * sum(p.phone != SILENCE for p in reference), lang  # most phones are paired
        assert np.median(e) <= 0.025, lang
        errors.append(e)
    assert np.median(np.concatenate(errors)) <= 0.015


def test_lips_close_on_the_bilabials_of_every_language(aligned) -> None:
    closed = []
    for lang, (audio, reference, alignment) in aligned.items():
        scores = mouth_scores(animate_phones(alignment.phones, 30, len(audio) / SAMPLE_RATE), reference)
        assert scores.closed_on_bilabials >= 0.8, lang  # at most two of a language's ~11 missed
        closed += [scores.closed_on_bilabials] * scores.counts["bilabials"]
    assert np.mean(closed) >= 0.95


def test_the_words_of_a_transcript_in_its_language_match(aligned) -> None:
    for lang, (_, _, alignment) in aligned.items():
        assert alignment.share >= 0.6, lang
    assert np.mean([alignment.share for _, _, alignment in aligned.values()]) >= 0.8


def test_the_language_changes_the_pronunciation() -> None:
    """Read as English, "Mama mia" is not what an Italian says; read as Italian, it is."""
    italian = load_voice(None, "it").pronounce("Mamma mia, bambino")
    assert italian[0][:2] == ["m", "aa"] and italian[-1][:2] == ["b", "aa"]
    russian = load_voice(None, "ru").pronounce("Мы были")
    assert russian[0] == ["m", "ih"]  # ы is unrounded (espeak-ng's "y" is not the ü of its name)
    german = load_voice(None, "de").pronounce("Die Homepage")
    assert german[1][0] == "hh" and "n" not in german[1]  # the "(en)" language switch is not a phone


def test_animate_with_a_german_transcript_closes_the_lips() -> None:
    audio, reference = _spoken("de")
    anim, phones, _ = Animator().clip(audio, SENTENCES["de"], sample_rate=SAMPLE_RATE, lang="de")
    assert phones is not None and any(p.phone == "b" for p in phones)
    assert mouth_scores(anim, reference).closed_on_bilabials >= 0.9


def test_an_unknown_language_is_a_clear_error() -> None:
    audio, _ = _spoken("de")
    with pytest.raises(TalkfaceError, match="unknown language 'xx-nowhere'"):
        align_transcript(audio, SENTENCES["de"], lang="xx-nowhere")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "talkface.cli", *args], capture_output=True, text=True, timeout=300)


def test_cli_animates_a_french_transcript_and_writes_its_phones(tmp_path) -> None:
    audio, reference = _spoken("fr")
    wav, out, tsv = tmp_path / "fr.wav", tmp_path / "fr.csv", tmp_path / "fr.tsv"
    sf.write(wav, audio, SAMPLE_RATE)
    result = _cli(
        "animate", str(wav), "--text", SENTENCES["fr"], "--lang", "fr", "-o", str(out), "--phonemes-out", str(tsv)
    )
    assert result.returncode == 0, result.stderr
    phones = read_phones_tsv(tsv)
    assert np.median(np.abs(boundary_errors(phones, reference))) <= 0.025


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["--text", "Guten Tag", "--lang", "xx-nowhere"], "unknown language 'xx-nowhere'"), (["--lang", "de"], "--lang")],
)
def test_cli_refuses_a_bad_lang_before_any_work(tmp_path, args: list[str], fragment: str) -> None:
    out = tmp_path / "out.csv"
    result = _cli("animate", str(tmp_path / "missing.wav"), "-o", str(out), *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert fragment in result.stderr.strip().splitlines()[-1]
    assert not out.exists()


def test_a_transcript_longer_than_say_takes_is_read_whole() -> None:
    # pronunciations make no speech: a German transcript of 129 000 characters was refused with say's
    # "at most 100,000 ... split it", though --text-file takes 1 MB and an English one of that size aligns
    words = load_voice(None, "de").pronounce("Guten Morgen Peter, wie geht es dir heute? " * 3000)
    assert len(words) == 8 * 3000


def test_a_transcript_with_nothing_to_pronounce_is_named_as_in_english() -> None:
    audio, _ = _spoken("de")
    with pytest.raises(TalkfaceError, match=r"transcript is empty or has nothing to pronounce: '\.\.\.'"):
        align_transcript(audio, "...", lang="de")


def test_words_after_a_nul_in_a_transcript_are_read() -> None:
    # (espeak-ng stopped at the NUL: "1 of 1 words matched" for a line of a manifest)
    assert load_voice(None, "de").pronounce("Guten \x00 Morgen Peter") == load_voice(None, "de").pronounce(
        "Guten Morgen Peter"
    )


def test_braille_patterns_do_not_abort_the_process(tmp_path) -> None:
    # libespeak-ng 1.51 aborts ("*** buffer overflow detected ***", exit 134) on "⣟ ⣯ ⣿" in its Arabic,
    # Finnish and Tswana voices, in `say` and in reading a transcript alike
    said = _cli("say", "مرحبا a⣿ b", "--lang", "ar", "-o", str(tmp_path / "o"))
    assert said.returncode == 0, said.stderr
    out = tmp_path / "face.csv"
    aligned = _cli("animate", str(tmp_path / "o" / "speech.wav"), "--text", "mi⣿ hei", "--lang", "fi", "-o", str(out))
    assert aligned.returncode == 0 and out.is_file(), aligned.stderr


@pytest.mark.parametrize("lang", ["ja", "hi"])
def test_a_transcript_of_letters_and_symbols_does_not_crash_the_process(tmp_path, lang: str) -> None:
    # 100 000 random characters of many scripts and emoji: libespeak-ng 1.51 crashed (SIGSEGV, exit 139)
    rng = random.Random(1)
    codes = [rng.choice([rng.randint(32, 0x2FFF), rng.randint(0x4E00, 0x9FFF), rng.randint(0x1F300, 0x1FAFF)])
             for _ in range(100_000)]  # fmt: skip
    transcript = tmp_path / "odd.txt"
    transcript.write_text("".join(chr(c) for c in codes if not 0xD800 <= c <= 0xDFFF), encoding="utf-8")
    audio, _ = _spoken("de")
    wav, out = tmp_path / "de.wav", tmp_path / "face.csv"
    sf.write(wav, audio, SAMPLE_RATE)
    result = _cli("animate", str(wav), "--text-file", str(transcript), "--lang", lang, "-o", str(out))
    assert result.returncode == 0 and out.is_file(), result.stderr
