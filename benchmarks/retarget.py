"""Time `--rig` retargeting: an hour of speech animation (a `say` clip repeated) on each built-in rig.

Run: python benchmarks/retarget.py [--minutes 60]. Prints seconds per rig and per hour of animation.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from talkface import Animator
from talkface.animation import Animation
from talkface.retarget import BUILTIN, load_rig

TEXT = "Bob bought a pepper and a map. It was a lovely day, and the sun shone on the water."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args()
    _, clip = Animator().say(TEXT)
    frames = round(args.minutes * 60 * clip.fps)
    anim = Animation(np.resize(clip.weights, (frames, clip.weights.shape[1])), clip.fps, clip.names)
    for name in BUILTIN:
        rig = load_rig(name)
        start = time.perf_counter()
        rig.apply(anim)
        seconds = time.perf_counter() - start
        print(f"{name:7s} {seconds:6.1f} s for {args.minutes:g} min ({seconds * 60 / args.minutes:.1f} s per hour)")


if __name__ == "__main__":
    main()
