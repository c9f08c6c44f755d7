"""CPU time of the batched streaming engine alone: N streams advanced together, no server, no network.

Run: python benchmarks/stream_cpu.py [--streams 100] [--seconds 10] [--profile]

Each stream is fed the bundled sample (looped, with pauses, from its own offset) in 20 ms chunks,
and every tick advances all of them in one `stream.advance`, as a server's model worker does; one
BLAS thread, as the workers use, and the objects of start-up frozen out of the garbage collector's
passes, as the workers do (`--no-freeze`: not). Prints the process's CPU time per second of audio
per stream (issue 15 asks at most 5 ms: 0.5 % of a core) and the longest pause of the collector,
during which every stream of a worker waits; --profile adds the 30 costliest functions.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from talkface import load_audio
from talkface.engine import Engine
from talkface.model import load_default
from talkface.post import Style
from talkface.stream import Stream, advance

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 320  # 20 ms at 16 kHz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per stream")
    parser.add_argument("--profile", action="store_true", help="also print the costliest functions")
    parser.add_argument("--no-freeze", action="store_true", help="leave start-up's objects to the collector")
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
    if not args.no_freeze:
        gc.freeze()
    pauses = {0: 0.0, 1: 0.0, 2: 0.0}
    began_gc = [0.0]

    def timed(phase: str, info: dict) -> None:
        if phase == "start":
            began_gc[0] = time.perf_counter()
        else:
            pauses[info["generation"]] = max(pauses[info["generation"]], time.perf_counter() - began_gc[0])

    gc.callbacks.append(timed)
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
    print("longest collector pause by generation: " + ", ".join(f"{1000 * v:.1f} ms" for v in pauses.values()))
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
