"""English text as it is spoken: numbers, money, times, years, ordinals and abbreviations written out.

`say` speaks the normalised text and `--text` aligns it, so talkface's own speech always re-aligns
with its own transcript ("$100" is "one hundred dollars" in both, not "dollar one hundred" in one).
Numbers are spelled by `num2words`. Other languages pass through unchanged: espeak-ng reads numbers
in its own languages, and forced alignment is English only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from num2words import num2words

#: Abbreviations read the same wherever they stand (matched case-sensitively, with their full stop).
_ABBREVIATIONS = {
    "Mr.": "Mister", "Mrs.": "Missus", "Ms.": "Miz", "Prof.": "Professor", "Jr.": "Junior", "Sr.": "Senior",
    "Mt.": "Mount", "Ave.": "Avenue", "Rd.": "Road", "Blvd.": "Boulevard", "Capt.": "Captain",
    "Lt.": "Lieutenant", "Sgt.": "Sergeant", "Gen.": "General", "Gov.": "Governor", "Inc.": "Incorporated",
    "Ltd.": "Limited", "vs.": "versus", "etc.": "et cetera", "e.g.": "for example", "i.e.": "that is",
    "approx.": "approximately",
}  # fmt: skip
#: Abbreviations read as a title before a name, as a street type after one ("St. John St."), else as the last.
_TITLE_OR_STREET = {"Dr.": ("Doctor", "Drive", "Doctor"), "St.": ("Saint", "Street", "Street")}
#: Currency symbol → (unit, units, subunit, subunits).
_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
    "¥": ("yen", "yen", "sen", "sen"),
}
_SCALES = {"k": "thousand", "m": "million", "bn": "billion", "b": "billion"}
#: Symbols espeak-ng reads out as words, written as the words it says (and a speaker says), so that alignment
#: has them too; "&" and "@" as "and" and "at". The typographic ones it reads out ("*" as "asterisk",
#: "~" as "tilde", "\\" as "backslash", "#" as "hash") no speaker of the line says: left out of both.
_SYMBOLS = {
    "&": "and", "@": "at", "+": "plus", "=": "equals", "×": "times", "÷": "divided by", "±": "plus or minus",
    "°": "degrees", "§": "section", "¶": "paragraph", "√": "square root", "∞": "infinity", "π": "pi",
    "©": "copyright", "®": "registered", "¢": "cents", "*": "", "~": "", "\\": "", "#": "",
}  # fmt: skip
_SYMBOL_WORDS = str.maketrans({symbol: f" {word} " for symbol, word in _SYMBOLS.items()})

# 1,000.5 or 1000.5, never from inside another (so that "1,234,567,…" is tried once, not at every group)
_NUMBER = r"(?<!\d)(?<!\d,)(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_SCALE = r"(?:\s?(thousand|million|billion|trillion|k|m|bn|b)\b)?"
_SYMBOL = "|".join(map(re.escape, _CURRENCIES))
_CURRENCY_BEFORE = re.compile(rf"(-)?({_SYMBOL})\s?(-)?({_NUMBER}){_SCALE}", re.IGNORECASE)
_CURRENCY_AFTER = re.compile(rf"(-)?\b({_NUMBER}){_SCALE}\s?({_SYMBOL})", re.IGNORECASE)
_PERCENT = re.compile(rf"(?<![\w.])(-)?({_NUMBER})\s?%")
_CLOCK = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)(?!\d)(?:\s?([ap])\.?m\b\.?)?", re.IGNORECASE)
_HOUR = re.compile(r"\b(1[0-2]|0?[1-9])\s?([ap])\.?m\b\.?", re.IGNORECASE)
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_YEAR = re.compile(r"(?<![\d.,])(1[1-9]\d\d|20\d\d)(s?)(?![\d]|[.,]\d)")
_NUMBER_SIGN = re.compile(r"\b(?:No|no|Nos|nos)\.\s?(?=\d)|#(?=\d)")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_DECIMAL = re.compile(r"(?<![\w.])(-)?(\d+)\.(\d+)")
_INTEGER = re.compile(r"(?<![\w.-])(-)?(\d+)|(\d+)")


def normalize_text(text: str, lang: str | None = None) -> str:
    """`text` with its numbers, amounts of money, percentages, clock times, years, ordinals and common
    abbreviations written out as an English speaker reads them ("$3.50" → "three dollars and fifty
    cents", "10:30pm" → "ten thirty p.m.", "21st" → "twenty-first", "Dr. Smith" → "Doctor Smith").

    `lang` is an espeak-ng/BCP 47 language tag; British English says "one hundred and one", other
    English "one hundred one". Text in languages other than English is returned unchanged.
    """
    tag = (lang or "en").lower().replace("_", "-")
    if tag.split("-")[0] != "en":
        return text
    british = tag.split("-")[-1] in ("gb", "uk", "ie", "sc", "wls", "rp", "gb-x-rp")

    def say(n: int | str, **kwargs: str) -> str:
        words = num2words(int(n), lang="en", **kwargs).replace(",", "")
        return words if british else words.replace(" and ", " ")

    text = unicodedata.normalize("NFKC", text).replace("\u2212", "-").replace("\u2019", "'")
    text = _NUMBER_SIGN.sub("number ", _abbreviations(text))
    text = _sub(_CURRENCY_BEFORE, lambda m: _money(say, m[1] or m[3], m[4], m[5], m[2]), text)
    text = _sub(_CURRENCY_AFTER, lambda m: _money(say, m[1], m[2], m[3], m[4]), text)
    text = _sub(_PERCENT, lambda m: f"{_signed(say, m[1], m[2])} percent", text)
    text = _sub(_CLOCK, lambda m: _clock(say, m[1], m[2], m[3]), text)
    text = _sub(_HOUR, lambda m: f"{say(m[1])} {m[2].lower()}.m.", text)
    text = _sub(_ORDINAL, lambda m: _ordinal(say, m[1]), text)
    text = _sub(_YEAR, lambda m: _year(say, m[1], bool(m[2])), text)
    text = _THOUSANDS.sub("", text)
    text = _sub(_DECIMAL, lambda m: _signed(say, m[1], f"{m[2]}.{m[3]}"), text)
    text = _sub(_INTEGER, lambda m: _signed(say, m[1], m[2] or m[3]), text)
    text = text.translate(_SYMBOL_WORDS)
    return re.sub(r"[ \t]+(?=[.,;:!?])", "", re.sub(r"[ \t]{2,}", " ", text)).strip()


def _sub(pattern: re.Pattern[str], spell: Callable[[re.Match[str]], str], text: str) -> str:
    """Each match replaced by its spelling, kept apart from the letters around it by spaces."""
    return pattern.sub(lambda m: f" {spell(m)} ", text)


def _abbreviations(text: str) -> str:
    for short, long in _ABBREVIATIONS.items():
        text = re.sub(rf"(?<![\w.]){re.escape(short)}", long, text)

    def title_or_street(m: re.Match[str]) -> str:
        title, street, default = _TITLE_OR_STREET[m[2]]
        if m[3] is not None and m[3][:1].isupper():  # "Dr. Smith", "St. James"
            word = title
        elif m[1] is not None and m[1][:1].isupper():  # "Baker St.", "Mulholland Dr."
            word = street
        else:
            word = default
        return f"{m[1] or ''}{word}"

    keys = "|".join(map(re.escape, _TITLE_OR_STREET))
    # (the word before is tried only where a word starts: a long word is scanned once, not at every letter)
    return re.sub(rf"(?<!\w)(\w+ )?(?<![\w.])({keys})(?=(?: (\w+))?)", title_or_street, text)


def _digits(say: Callable[..., str], digits: str) -> str:
    """A whole number as words; leading zeros and very long numbers (codes, phone numbers) digit by digit."""
    if len(digits) > 12 or (len(digits) > 1 and digits[0] == "0"):
        return " ".join(say(d) for d in digits)
    return say(digits)


def _ordinal(say: Callable[..., str], digits: str) -> str:
    """ "21st" → "twenty-first"; a number too long to say (see `_digits`) is read digit by digit."""
    if len(digits) > 12:
        return _digits(say, digits)
    return say(digits, to="ordinal")


def _number(say: Callable[..., str], number: str) -> str:
    """A number with an optional decimal part ("3.14" → "three point one four")."""
    whole, _, fraction = number.replace(",", "").partition(".")
    words = _digits(say, whole)
    return f"{words} point {' '.join(say(d) for d in fraction)}" if fraction else words


def _signed(say: Callable[..., str], minus: str | None, number: str) -> str:
    return f"minus {_number(say, number)}" if minus else _number(say, number)


def _money(say: Callable[..., str], minus: str | None, number: str, scale: str | None, symbol: str) -> str:
    unit, units, sub, subs = _CURRENCIES[symbol]
    sign = "minus " if minus else ""
    if scale:  # "$1.5 million" → "one point five million dollars"
        return f"{sign}{_number(say, number)} {_SCALES.get(scale.lower(), scale.lower())} {units}"
    whole, _, fraction = number.replace(",", "").partition(".")
    cents = int((fraction + "00")[:2]) if fraction and len(fraction) <= 2 else 0
    if fraction and len(fraction) > 2:  # "$0.005": read as a plain decimal
        return f"{sign}{_number(say, number)} {units}"
    value = whole.lstrip("0") or "0"  # (compared as text: an amount may have thousands of digits)
    parts = [f"{_digits(say, whole)} {unit if value == '1' else units}"] if value != "0" or not cents else []
    if cents:
        parts.append(f"{say(cents)} {sub if cents == 1 else subs}")
    return sign + " and ".join(parts)


def _clock(say: Callable[..., str], hours: str, minutes: str, ampm: str | None) -> str:
    h, m = int(hours), int(minutes)
    if ampm:  # "10:30pm" → "ten thirty p.m.", "10:00pm" → "ten p.m."
        return f"{say(h)} {'oh ' * (0 < m < 10)}{say(m) if m else ''} {ampm.lower()}.m.".replace("  ", " ")
    return f"{say(h)} {'oh ' * (m < 10)}{say(m)}" if m else f"{say(h)} o'clock"


def _year(say: Callable[..., str], digits: str, decade: bool) -> str:
    words = say(digits, to="year")
    if not decade:
        return words
    return words[:-1] + "ies" if words.endswith("y") else words + "s"  # 1990s → nineteen nineties
