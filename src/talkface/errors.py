"""The one exception type for problems a user can fix (bad input, missing voice, unwritable path), and
the check of a number a user gave."""

from __future__ import annotations

import importlib.util
import math
import numbers
import sys


class TalkfaceError(Exception):
    """Bad input or an unusable resource; the CLI prints its message as one line and exits non-zero."""


def checked_number(value: object, name: str, lo: float, hi: float, whole: bool = False) -> float:
    """A number a user gave (a number or its text: a manifest cell, a setting) within [lo, hi]; TalkfaceError
    otherwise, also for a bool or, where `whole`, a fraction (never rounded away)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool | int | float):  # numpy's numbers
        value = int(value) if isinstance(value, numbers.Integral) else float(value)
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        if whole and isinstance(value, float) and not value.is_integer():  # int() would drop the fraction
            raise ValueError
        number = int(value) if whole else float(value)
    except (ValueError, OverflowError):  # (also text of over 4300 digits)
        raise TalkfaceError(f"{name} must be a {'whole ' if whole else ''}number, not {shown(value)}") from None
    if not (math.isfinite(number) and lo <= number <= hi):
        raise TalkfaceError(f"{name} must be from {lo:g} to {hi:g}, not {shown(value)}")
    return number


def shown(value: object, most: int = 40) -> str:
    """`value` as a message quotes it: its repr, cut short (a user's input may be megabytes)."""
    try:
        text = repr(value)
    except ValueError:  # an int of over 4300 digits, which Python will not turn into text
        return f"a number of over {sys.get_int_max_str_digits()} digits"
    return text if len(text) <= most else text[:most] + "…"


def one_line(message: str) -> str:
    """`message` with its line breaks escaped: it prints as one line, whatever it quotes (a path, a cell)."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


def missing_module(*names: str) -> str | None:
    """The first of the top-level modules `names` that cannot be imported, or None: an extra's absence
    found before any work, without importing anything (`importlib.util.find_spec`)."""
    for name in names:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except ValueError:  # imported already, without a spec: there
            continue
    return None
