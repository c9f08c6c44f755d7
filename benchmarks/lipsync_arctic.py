"""Lip-sync quality and speed of the phoneme-driven path on real speech (CMU ARCTIC slt a0009).

Run: python benchmarks/lipsync_arctic.py. The animation is scored at the midpoints of the
hand-labelled phones (lips closed on /p b m/, open on open vowels, rounded on /uw ow w/, at rest
in pauses), for phones from forced alignment (`--text`) and from phone recognition (no text).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from talkface import Animator
from talkface.align import read_htk_labels
from talkface.audio import SAMPLE_RATE, load_audio
from talkface.metrics import mouth_scores

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
TRANSCRIPT = "He turned sharply, and faced Gregson across the table."


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()  # --help; no options
    audio = load_audio(DATA / "arctic_a0009.wav")
    hand = read_htk_labels(DATA / "arctic_a0009_phone.lab")
    duration = len(audio) / SAMPLE_RATE
    animator = Animator(fps=30)
    animator.animate(audio, TRANSCRIPT, sample_rate=SAMPLE_RATE)  # warm up the decoders
    print(f"clip {duration:.2f} s; scored at hand-labelled phone midpoints, 30 fps")
    print("phones from      closed p/b/m  open vowels  rounded  rest   animate s   xRT")
    for name, text in (("alignment", TRANSCRIPT), ("recognition", None)):
        start = time.perf_counter()
        anim = animator.animate(audio, text, sample_rate=SAMPLE_RATE)
        seconds = time.perf_counter() - start
        s = mouth_scores(anim, hand)
        print(
            f"{name:<16} {s.closed_on_bilabials:>8.0%} ({s.counts['bilabials']})"
            f" {s.open_on_open_vowels:>8.0%} ({s.counts['open_vowels']})"
            f" {s.rounded_on_rounded:>6.0%} {s.rest_in_pauses:>6.0%} {seconds:>9.3f} {seconds / duration:>7.3f}"
        )
    print("nan: no such phone in the clip; xRT: compute seconds per audio second (lower is faster)")


if __name__ == "__main__":
    main()
