"""Reference phone timings (HTK label files) and the boundary errors of an alignment against them, for
evaluating timings."""

from __future__ import annotations

from collections.abc import Sequence
from difflib import SequenceMatcher
from os import PathLike

import numpy as np

from ..errors import TalkfaceError
from ..phonemes import TimedPhone, merge_silences, normalize


def read_htk_labels(path: str | PathLike) -> list[TimedPhone]:
    """Phones of an HTK/HTS label file ("start end label", times in 100 ns units).

    For HTS full-context labels (``x^y-CUR+z=w@...``) the current phone is taken.
    """
    phones = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = list(f)
    except OSError as e:
        raise TalkfaceError(f"{path}: cannot read label file ({e.strerror})") from None
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        try:
            label = fields[2]
            if "-" in label and "+" in label:
                label = label.split("-", 1)[1].split("+", 1)[0]
            phones.append(TimedPhone(int(fields[0]) / 1e7, int(fields[1]) / 1e7, normalize(label)))
        except (IndexError, ValueError, KeyError):
            raise TalkfaceError(f"{path}:{number}: not a 'start end phone' label line") from None
    return merge_silences(phones)


def boundary_errors(phones: Sequence[TimedPhone], reference: Sequence[TimedPhone]) -> np.ndarray:
    """Signed start-time errors (s) of `phones` against `reference`, for evaluating timings.

    Phones are paired by name in sequence (longest matching runs, as difflib finds them), so
    inserted, missing or misrecognised phones are left out; the trivial start at 0 is skipped.
    """
    matcher = SequenceMatcher(None, [p.phone for p in reference], [p.phone for p in phones], autojunk=False)
    pairs = [(a + k, b + k) for a, b, size in matcher.get_matching_blocks() for k in range(size)]
    return np.array([phones[b].start - reference[a].start for a, b in pairs if reference[a].start > 0])
