"""Whole-process speed and peak memory of `talkface animate` on one CPU core.

Run: python benchmarks/animate_speed.py [SECONDS ...]. For each length it builds a WAV by
repeating the bundled sample with pauses, runs `talkface animate long.wav -o out.csv` pinned to
one core (taskset) in a fresh process, and prints wall time, real-time factor (wall seconds per
audio second, start-up and file writing included), the child's CPU time (user + system: on a host
that others share, the steadier measure of its own work) and its peak resident memory.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from importlib.resources import files
from pathlib import Path

import numpy as np
import soundfile as sf

from talkface.audio import load_audio


def long_wav(seconds: float, path: Path) -> None:
    sample = load_audio(str(files("talkface") / "samples" / "arctic_a0009.wav"))
    unit = np.concatenate([sample, np.zeros(8000, np.float32)])
    reps = int(np.ceil(seconds * 16000 / unit.size))
    sf.write(path, np.tile(unit, reps)[: int(seconds * 16000)], 16000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("seconds", nargs="*", type=float, default=[60.0, 600.0],
                        help="lengths of audio to animate (default: 60 600)")  # fmt: skip
    lengths = parser.parse_args().seconds
    talkface = str(Path(sys.executable).with_name("talkface"))
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    print("audio s  engine     wall s    RTF     CPU s   peak MB   (one core, whole process)")
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in lengths:
            wav = Path(tmp) / "long.wav"
            long_wav(seconds, wav)
            for engine in ("neural", "phonetic"):
                # each run in its own wrapper process, so ru_maxrss is that run's own peak
                code = (
                    "import resource, subprocess, sys, time; t = time.perf_counter();"
                    "subprocess.run(sys.argv[1:], check=True, capture_output=True);"
                    "r = resource.getrusage(resource.RUSAGE_CHILDREN);"
                    "print(time.perf_counter() - t, r.ru_utime + r.ru_stime, r.ru_maxrss)"
                )
                cmd = [*pin, talkface, "animate", str(wav), "-o", str(Path(tmp) / "out.csv"), "--engine", engine]
                out = subprocess.run([sys.executable, "-c", code, *cmd], check=True, capture_output=True, text=True)
                wall, cpu, peak_kb = (float(x) for x in out.stdout.split())
                rtf, peak_mb = wall / seconds, peak_kb / 1024
                print(f"{seconds:>7.0f}  {engine:<9} {wall:>7.2f}  {rtf:>7.4f}  {cpu:>6.2f}  {peak_mb:>8.0f}")


if __name__ == "__main__":
    main()
