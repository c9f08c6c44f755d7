"""Choose a model's viseme calibration on validation speech (issue 13).

Run: .venv/bin/python scripts/calibrate_visemes.py MODEL.onnx [--set build/real_speech/set/manifest.jsonl] [--write]

A regression head hears a /p b m/ less often than it is said: on real voices the viseme head's
logits favour the sounds around a short closure. A bias added to a class's logit before the
closure and rounding rules read them (the model JSON's ``viseme_bias``, see `talkface.model`)
trades heard closures against lips shut on other sounds. This script scores the model on the
**validation** split for each bias on a grid, first for /p b m/ (``PP``), then for the rounded
classes (``ou``, ``oh``) with that closure bias, and takes for each the largest bias whose price
stays small: lips shut on other speech sounds (or rounded on unrounded vowels) at most
`PRICE` above the model without a bias, and open vowels still open at least `OPEN` of the time.
It prints every row; `--write` stores the choice in the model's JSON. The test split is not read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from talkface.animator import Animator
from talkface.audio import SAMPLE_RATE
from talkface.evaluation import FPS, read_set, score_engine
from talkface.files import write_text
from talkface.phonemes import VISEMES

GRID = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
PRICE = 0.02  # the most the share of wrongly shut (or rounded) lips may rise
OPEN = 0.95  # open vowels must stay open at least this often
_CLASSES = (  # the classes biased together, the share they raise, the price they pay
    (("PP",), "closed_on_bilabials", "closed_elsewhere"),
    (("ou", "oh"), "rounded_on_rounded", "rounded_elsewhere"),
)


def _scores(animator: Animator, bias: dict[str, float], clips: list) -> dict:
    """The scores of `animator`'s model with `bias` in place of its own (each new stream reads it)."""
    animator.model.viseme_bias = np.zeros_like(animator.model.viseme_bias)
    for name, value in bias.items():
        animator.model.viseme_bias[VISEMES.index(name)] = value
    return score_engine(lambda audio: animator.animate(audio, sample_rate=SAMPLE_RATE), clips)


def calibrate(model: Path, manifest: Path) -> dict[str, float]:
    """The chosen bias per class, printing each row scored."""
    clips = read_set(manifest, "validation")
    animator = Animator(FPS, "neural", str(model))
    chosen: dict[str, float] = {}
    base = None
    for names, gain, price in _CLASSES:
        best = 0.0
        for value in GRID:
            bias = chosen | dict.fromkeys(names, value)
            r = _scores(animator, {k: v for k, v in bias.items() if v}, clips)
            base = base or r
            ok = r[price][0] <= base[price][0] + PRICE and r["open_on_open_vowels"][0] >= OPEN
            print(f"{'+'.join(names):<6} {value:>5.2f}  {gain} {r[gain][0]:.3f}  {price} {r[price][0]:.3f}  "
                  f"open {r['open_on_open_vowels'][0]:.3f}  rest {r['rest_in_pauses'][0]:.3f}  "
                  f"{'ok' if ok else 'too dear'}", flush=True)  # fmt: skip
            if ok:
                best = value
        chosen |= dict.fromkeys(names, best)
    return {k: v for k, v in chosen.items() if v}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="the model's .onnx (its .json is beside it)")
    parser.add_argument("--set", type=Path, default=Path("build/real_speech/set/manifest.jsonl"),
                        help="the real-speech set of scripts/real_speech.py")  # fmt: skip
    parser.add_argument("--write", action="store_true", help="store the choice as the JSON's viseme_bias")
    args = parser.parse_args()
    chosen = calibrate(args.model, args.set)
    print("chosen viseme_bias:", json.dumps(chosen))
    if args.write:
        path = args.model.with_suffix(".json")
        meta = json.loads(path.read_text(encoding="utf-8"))
        meta["viseme_bias"] = chosen
        write_text(path, json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
