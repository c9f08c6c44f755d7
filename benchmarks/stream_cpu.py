"""CPU time of the batched streaming engine alone: N streams advanced together, no server, no network.

Run: python benchmarks/stream_cpu.py [--streams 100] [--seconds 10] [--profile]

Each stream is fed the bundled sample (looped, with pauses, from its own offset) in 20 ms chunks,
and every tick advances all of them in one `stream.advance`, as a server's model worker does; one
BLAS thread, as the workers use. Prints the process's CPU time per second of audio per stream
(issue 15 asks at most 5 ms: 0.5 % of a core); --profile adds the 30 costliest functions.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from talkface import load_audio
from talkface.model import load_default
from talkface.post import Style
from talkface.stream import Engine, Stream, advance

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 320  # 20 ms at 16 kHz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per stream")
    parser.add_argument("--profile", action="store_true", help="also print the costliest functions")
    args = parser.parse_args()
    if args.streams < 1 or args.seconds <= 0:
        parser.error("--streams must be at least 1 and --seconds above 0")
    threadpool_limits(1, "blas")
    clip = load_audio(ROOT / "tests" / "data" / "arctic_a0009.wav")
    ticks = int(args.seconds * 1000 / 20)
    looped = np.tile(np.concatenate([clip, np.zeros(8000, np.float32)]), 2 + ticks * CHUNK // (len(clip) + 8000))
    engine = Engine(load_default())
    streams = [Stream(engine, 30, Style(seed=i)) for i in range(args.streams)]
    offsets = [(i * 7919) % (len(looped) - ticks * CHUNK) for i in range(args.streams)]
    profile = cProfile.Profile() if args.profile else None
    began = time.process_time()
    if profile:
        profile.enable()
    for k in range(ticks):
        for stream, offset in zip(streams, offsets, strict=True):
            stream.write(looped[offset + k * CHUNK : offset + (k + 1) * CHUNK])
        advance(engine, streams)
    if profile:
        profile.disable()
    cpu = time.process_time() - began
    per = 1000 * cpu / (args.streams * args.seconds)
    print(f"{args.streams} streams x {args.seconds:g} s: {cpu:.2f} s of CPU, {per:.2f} ms a stream-second")
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
