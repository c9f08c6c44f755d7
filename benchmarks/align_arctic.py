"""Phone boundary error of align() and recognize() against the hand labels of CMU ARCTIC slt a0009.

Run: python benchmarks/align_arctic.py. Prints errors in ms (phones paired by name in sequence)
and timings: the first call includes building the pocketsphinx decoder, later calls reuse it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from talkface.align import align, boundary_errors, read_htk_labels, recognize
from talkface.audio import load_audio
from talkface.phonemes import TimedPhone

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
TRANSCRIPT = "He turned sharply, and faced Gregson across the table."
REPEATS = 10


def _timed(run: Callable[[], list[TimedPhone]]) -> tuple[list[TimedPhone], float, float]:
    """Result, first-call seconds and median seconds of later calls."""
    start = time.perf_counter()
    phones = run()
    first = time.perf_counter() - start
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return phones, first, float(np.median(times))


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()  # --help; no options
    audio = load_audio(DATA / "arctic_a0009.wav")
    reference = read_htk_labels(DATA / "arctic_a0009_phone.lab")
    duration = len(audio) / 16000
    print(f"clip {duration:.2f} s, {len(reference)} hand-labelled phones")
    print("method      matched  median    mean     max    bias    first    warm    xRT")
    runs = {"align": lambda: align(audio, TRANSCRIPT), "recognize": lambda: recognize(audio)}
    for name, run in runs.items():
        phones, first, warm = _timed(run)
        errors = boundary_errors(phones, reference) * 1000
        magnitude = np.abs(errors)
        print(
            f"{name:<10} {len(errors):>3}/{len(reference) - 1:<4} {np.median(magnitude):>5.1f}ms "
            f"{magnitude.mean():>5.1f}ms {magnitude.max():>5.0f}ms {errors.mean():>+5.1f}ms  "
            f"{first * 1000:>5.0f}ms {warm * 1000:>5.0f}ms {duration / warm:>5.0f}x"
        )
    print("matched: phone starts paired with a hand label (the trivial start at 0 excluded);")
    print("bias: mean signed error (late > 0); xRT: audio seconds per second of warm compute")


if __name__ == "__main__":
    main()
