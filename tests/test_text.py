"""Text normalisation: numbers, money, times, years, ordinals and abbreviations are read out the same way
by `say` and by forced alignment, so talkface's own speech re-aligns with its own text."""

import time

import numpy as np
import pytest

from talkface import Animator
from talkface.align import boundary_errors
from talkface.align.words import _words
from talkface.text import normalize_text


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("It costs $100.", "It costs one hundred dollars."),
        ("$3.50 or $1", "three dollars and fifty cents or one dollar"),
        ("$0.99", "ninety-nine cents"),
        ("$1.5 million", "one point five million dollars"),
        ("-$5", "minus five dollars"),
        ("£5 and €20, or 30€", "five pounds and twenty euros, or thirty euros"),
        ("£0.01", "one penny"),
        ("about 3.5 or 0.25", "about three point five or zero point two five"),
        ("Meet at 10:30pm", "Meet at ten thirty p.m."),
        ("at 9:05 a.m. or 7am", "at nine oh five a.m. or seven a.m."),
        ("at 10:00", "at ten o'clock"),
        ("Born in 1999, moved in 2005", "Born in nineteen ninety-nine, moved in two thousand five"),
        ("the 1990s", "the nineteen nineties"),
        ("Dr. Smith lives on Baker St. now", "Doctor Smith lives on Baker Street now"),
        ("St. James St.", "Saint James Street"),
        ("Ask the Dr. today", "Ask the Doctor today"),
        ("We are 100% sure", "We are one hundred percent sure"),
        ("-2.5% growth", "minus two point five percent growth"),
        ("the 21st, 2nd and 3rd", "the twenty-first, second and third"),
        ("It fell to -5 degrees", "It fell to minus five degrees"),
        ("1,000 people, 1,999 votes", "one thousand people, one thousand nine hundred ninety-nine votes"),
        ("No. 7 and #3", "number seven and number three"),
        ("Mr. & Mrs. Jones, e.g. them", "Mister and Missus Jones, for example them"),
        ("agent 007", "agent zero zero seven"),
    ],
)  # fmt: skip
def test_normalize_text_reads_numbers_and_abbreviations(text: str, spoken: str) -> None:
    assert normalize_text(text) == spoken


def test_long_and_huge_inputs_are_read_in_linear_time() -> None:
    """A megabyte word or list of grouped numbers took hours (patterns tried again at every letter);
    numbers of hundreds or thousands of digits are read digit by digit, never passed to int()."""
    start = time.monotonic()
    assert normalize_text("a" * 1_000_000) == "a" * 1_000_000
    assert normalize_text("123," * 250_000).startswith("one two three one two three")
    assert time.monotonic() - start < 60  # (a few seconds; it was hours)
    assert normalize_text("the 1" + "0" * 400 + "th").startswith("the one zero zero")
    assert normalize_text("$" + "9" * 5000).endswith("nine nine dollars")
    assert normalize_text("9" * 5000 + "€ and $01.50").startswith("nine nine")


def test_normalize_text_british_and_other_languages() -> None:
    assert normalize_text("$101", "en-gb") == "one hundred and one dollars"
    assert normalize_text("$101", "en-us") == "one hundred one dollars"
    assert normalize_text("Es kostet 101 €.", "de") == "Es kostet 101 €."  # espeak-ng reads German itself


def test_percent_is_not_lost_before_alignment() -> None:
    assert _words("We are 100% sure") == ["we", "are", "one", "hundred", "percent", "sure"]


@pytest.mark.parametrize(
    "text",
    [
        "Dr. Smith paid $100 at 10:30pm on the 21st, in 1999.",
        "We are 100% sure St. James St. is 3.5 miles away.",
        "It was £5 and €20, down -5 from 1,000.",
    ],
)
def test_say_output_aligns_with_its_own_text(text: str) -> None:
    animator = Animator(engine="phonetic")
    speech, _ = animator.say(text)
    alignment = animator.align(speech.audio, text, speech.sample_rate)
    assert not alignment.doubtful, alignment.share
    errors = np.abs(boundary_errors(alignment.phones, speech.phones))
    assert len(errors) >= 0.85 * (len(speech.phones) - 2)
    assert np.median(errors) <= 0.02
