"""Phones of other languages: espeak-ng's IPA becomes the ARPAbet phones a phonetician would write.

Each sentence is spoken by the real espeak-ng through the voice `--lang` picks, and is dense in what
the lips show: bilabials (p b m), open vowels and rounded against unrounded vowels. Expected phones
leave out silences; "|" separates words and is only there to read them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from talkface.phonemes import BILABIALS, ROUNDED, SILENCE, VOWELS, read_phones_tsv
from talkface.tts import load_voice

SENTENCES = {
    # English must not change: the guard for every mapping below
    "en": (
        "Bob made a pie, but Pam wore blue boots.",
        "b aa b | m ey d | ah | p ay | b ah t | p ae m | w ow r | b l uw | b uw t s",
    ),
    # "Homepage" is read as English, between espeak-ng's "(en)" and "(de)" switches; ü ö rounded
    "de": (
        "Die Homepage von Müller ist schön, Papa baut mit Mama ein Boot.",
        "d iy | hh ow m p ey jh | f ao n | m uw l er | ih s t | sh ow n | p aa p aa | b aw t | m ih t"
        " | m aa m aa | ay n | b ow t",
    ),
    # u and eu are rounded; nasal vowels keep their vowel
    "fr": (
        "Le bébé boit du jus, peu à peu, avec papa et maman.",
        "l ah | b ey b ey | b w aa | d uw | zh uw | p ow | aa | p ow | aa v eh k | p aa p aa | ey | m aa m aa",
    ),
    # b and v between vowels are the bilabial [β]: the lips close as for b, they do not bite as for v
    "es": ("Mi papá bebe mucho vino bueno.", "m iy | p aa p aa | b ey b ey | m uw ch ow | b iy n ow | b w ey n ow"),
    "it": (
        "Il bambino mangia la pappa buona.",
        "iy l | b aa m b iy n ow | m aa n jh aa | l aa | p aa p aa | b uh ao n aa",
    ),
    # ы is unrounded, printed "y" by espeak-ng
    "ru": (
        "Мы были в парке, мама пила молоко.",
        "m ih | b ih l ih | f | p aa r k iy | m aa m aa | p iy l aa | m ah l ah k ow",
    ),
    # centralised ä and lowered o̞ e̞ are the vowels a o e; u [ɯᵝ] has compressed lips
    "ja": (
        "まだまだ。ママもパパもパンもたべます。",
        "m aa d aa m aa d aa | m aa m aa m ow | p aa p aa m ow | p aa m m ow | t aa b ey m aa s uh",
    ),
    # Han characters in pinyin: bà ba mā ma, wǒ men mǎi miàn bāo
    "zh": ("爸爸妈妈，我们买面包。", "p aa p aa m aa m aa | w ow m ah n | m aa iy | m iy eh n | p aa uw"),
}


def _phones(lang: str, text: str) -> list[str]:
    """Phones of `text` spoken in `lang` (English: the default voice), silences left out."""
    voice = load_voice() if lang == "en" else load_voice(lang=lang)
    return [p.phone for p in voice.synthesize(text).phones if p.phone != SILENCE]


def _expected(lang: str) -> list[str]:
    return SENTENCES[lang][1].replace("|", " ").split()


@pytest.fixture(scope="module")
def spoken() -> dict[str, list[str]]:
    return {lang: _phones(lang, text) for lang, (text, _) in SENTENCES.items()}


@pytest.mark.parametrize("lang", SENTENCES)
def test_sentence_gives_the_expected_phones(spoken: dict[str, list[str]], lang: str) -> None:
    assert " ".join(spoken[lang]) == " ".join(_expected(lang))


@pytest.mark.parametrize("lang", SENTENCES)
def test_bilabials_are_where_the_text_has_them(spoken: dict[str, list[str]], lang: str) -> None:
    assert [p for p in spoken[lang] if p in BILABIALS] == [p for p in _expected(lang) if p in BILABIALS]


def test_language_switches_give_no_phones(spoken: dict[str, list[str]]) -> None:
    # German "Homepage" used to gain "ey n" from "(en)" and "d ey" from "(de)"
    homepage = spoken["de"][spoken["de"].index("hh") : spoken["de"].index("f")]
    assert homepage == ["hh", "ow", "m", "p", "ey", "jh"]


def test_russian_y_is_unrounded() -> None:
    assert _phones("ru", "Мы были") == ["m", "ih", "b", "ih", "l", "ih"]


@pytest.mark.parametrize(
    ("lang", "text"),
    [("de", "früh, schön, Glück, Öl"), ("fr", "du jus, peu, sœur"), ("fi", "yö, tyttö"), ("tr", "üzüm, göl, gül")],
)
def test_front_rounded_vowels_are_rounded(lang: str, text: str) -> None:
    vowels = [p for p in _phones(lang, text) if p in VOWELS]
    assert len(vowels) >= 4 and all(p in ROUNDED for p in vowels), vowels


@pytest.mark.parametrize(
    ("lang", "text", "phones"),
    [
        ("tr", "kırmızı", "k ih r m ih z ih"),  # ı is unrounded [ɯ]
        ("vi", "từ thư", "t ih t ih"),  # ư is unrounded, printed "y" by espeak-ng
        ("cy", "dyn pump", "d ih n p ih m p"),  # y and u are unrounded, printed "ø" by espeak-ng
        ("pl", "być cicho", "b ih ch ch iy hh ao"),  # ɨ unrounded; ć and ci are one affricate [tɕ]
        ("de", "Furcht", "f uh ah hh t"),  # espeak-ng prints this [ʊɐ̯] as "??"
        ("da", "mennesker", "m eh n eh s k ah"),  # Danish ɛ is printed as the Greek letter ε
    ],
)
def test_vowels_espeak_misprints_keep_their_lips(lang: str, text: str, phones: str) -> None:
    assert " ".join(_phones(lang, text)) == phones


def test_danish_stod_is_no_pause() -> None:
    # stød ("født" [føʔd]) is creaky voice on the vowel: the mouth keeps the vowel's shape
    phones = [p.phone for p in load_voice(lang="da").synthesize("født").phones]
    assert phones == [SILENCE, "f", "ow", "t", SILENCE]


@pytest.mark.parametrize(
    ("text", "phones"),
    [
        ("是四哥", "sh er s ih k ah"),  # apical vowels of shi, si; unrounded e [ɤ]
        ("朋友不怕", "p ah ng y iy ow uw p uw p aa"),  # aspirated p is one phone, not p + h
        ("中国女儿", "ch uh ng k uw ow n uw er"),  # zh is one affricate; ü rounded; er
    ],
)
def test_mandarin_han_text_reads_as_pinyin(text: str, phones: str) -> None:
    assert " ".join(_phones("zh", text)) == phones


def test_mandarin_language_picks_the_pinyin_voice_and_a_voice_name_stays() -> None:
    assert load_voice(lang="cmn").info.name == load_voice(lang="zh").info.name == "espeak:cmn-latn-pinyin"
    assert load_voice("espeak:cmn").info.name == "espeak:cmn"


def test_say_keeps_japanese_vowels(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "talkface.cli", "say", "まだまだ", "--lang", "ja", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    phones = [p.phone for p in read_phones_tsv(str(tmp_path / "phonemes.tsv")) if p.phone != SILENCE]
    assert phones == ["m", "aa", "d", "aa", "m", "aa", "d", "aa"]
