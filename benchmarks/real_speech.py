"""Audio-only lip sync on real speech: the neural model against the phonetic baseline.

Run: python benchmarks/real_speech.py [MODEL.onnx]. Same as `talkface evaluate`: mouth checks at
reference phone midpoints (hand labels for CMU ARCTIC a0009; pocketsphinx forced alignment of
the transcripts for Debian's pocketsphinx-testdata), the mouth-to-sound lag, and the error on a
TTS voice held out of training.
"""

from __future__ import annotations

import sys
import time

from talkface.evaluation import evaluate, report


def main() -> None:
    start = time.perf_counter()
    print(report(evaluate(sys.argv[1] if len(sys.argv) > 1 else None)))
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
