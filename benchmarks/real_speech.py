"""Audio-only lip sync on real speech: the neural model against the phonetic baseline.

Run: python benchmarks/real_speech.py [MODEL.onnx] [--set MANIFEST --split validation|test].
Same as `talkface evaluate`: mouth checks at reference phone midpoints at 30 fps and the
mouth-to-sound lag. Without --set: hand labels for CMU ARCTIC a0009 and pocketsphinx forced
alignment of Debian's pocketsphinx-testdata transcripts, plus the error on a TTS voice held out
of training. With --set: one split of the real-speech set that scripts/real_speech.py builds
(build/real_speech/set/manifest.jsonl), pooled and per source. Make choices on validation; look
at test once per shipped model.
"""

from __future__ import annotations

import argparse
import time

from talkface.evaluation import SPLITS, evaluate, read_set, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="an exported model (default: the packaged one)")
    parser.add_argument("--set", dest="manifest", help="a real-speech set's manifest.jsonl")
    parser.add_argument("--split", choices=SPLITS, default="validation")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.manifest is None:
        print(report(evaluate(args.model)))
    else:
        clips = read_set(args.manifest, args.split)
        print(report(evaluate(args.model, clips), f"{args.split} split of {args.manifest}"))
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
