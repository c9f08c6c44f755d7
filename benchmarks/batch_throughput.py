"""Throughput of `talkface batch` on a dialogue library: a process pool of one and two workers, and Ray.

Run: python benchmarks/batch_throughput.py [--lines 500] [--library build/batch_library] [--runs 1 2 ray].
It first builds (once, then reuses) a library of TTS lines of 1–8 s spoken by espeak-ng voices
(`talkface.tts`): a CSV manifest whose lines have a transcript in a `text` column, in a `text_file`
beside the audio, or none, and a few corrupt, empty and silent files. Then it runs, each in a fresh
process into a fresh output folder,

- ``talkface batch lines.csv -o OUT --jobs 1`` and ``--jobs 2``;
- ``talkface batch lines.csv -o OUT --ray auto`` against a Ray cluster started beforehand on this
  machine (``ray start --head``, as a cluster outlives the runs it serves), stopped after;

and prints for each: wall time (start-up included), lines per second (done and failed), hours of
audio animated per hour, the CPU time of the run's own processes (the batch and its workers; with
Ray, the cluster's processes too), and the CPU cores the whole machine kept busy meanwhile (from
/proc/stat, so other work counts too: run it on an otherwise quiet machine, see `uptime`).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

TALKFACE = [sys.executable, "-m", "talkface.cli"]
#: Harvard sentences (IEEE 1969), one to three per line.
SENTENCES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.",
    "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.",
    "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.",
    "Read verse out loud for pleasure.",
]
#: Short barks, as games have many of, two to a line.
BARKS = ["Watch out!", "Over here!", "Thank you.", "Follow me.", "Not now.", "Stay close.", "Got it.", "Hold on."]
VOICES = ["en-us", "en-gb", "espeak:en-us+f3", "espeak:en-us+m3", "espeak:en-gb+f2"]


def build_library(folder: Path, count: int) -> Path:
    """A manifest of `count` lines in `folder` (built once): about 96 % speech of 1–8 s, a third each
    with a `text` column, a `text_file` and no transcript; the rest corrupt, empty or silent files."""
    manifest = folder / f"lines-{count}.csv"
    if manifest.is_file():
        return manifest
    from talkface.tts import load_voice

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    voices = {name: load_voice(name if ":" in name else None, None if ":" in name else name) for name in VOICES}
    rows = []
    for k in range(count):
        audio = f"clips/line{k:05d}.wav"
        path = folder / audio
        path.parent.mkdir(exist_ok=True)
        row = {"audio": audio, "text": "", "text_file": ""}
        kind = k % 50
        if kind == 7:
            path.write_bytes(b"RIFF" + rng.randbytes(4000))  # corrupt
        elif kind == 19:
            path.write_bytes(b"")  # empty
        elif kind == 33:
            sf.write(path, np.zeros(32000, np.float32), 16000)  # silent
        else:
            while True:
                said = rng.sample(BARKS, 2) if k % 5 == 0 else rng.sample(SENTENCES, rng.randint(1, 3))
                text = " ".join(said)
                speech = voices[rng.choice(VOICES)].synthesize(text)
                if 1.0 <= len(speech.audio) / speech.sample_rate <= 8.0:
                    break
            sf.write(path, speech.audio, speech.sample_rate, subtype="PCM_16")
            if kind % 3 == 1:
                row["text"] = text
            elif kind % 3 == 2:
                path.with_suffix(".txt").write_text(text + "\n")
                row["text_file"] = Path(audio).with_suffix(".txt").as_posix()
        rows.append(row)
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, ["audio", "text", "text_file"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, in clock ticks, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


def children_cpu() -> float:
    """CPU seconds of this process's finished children (a `talkface batch` and the workers it joined)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ray_cpu() -> dict[int, float]:
    """CPU seconds so far of each process of the Ray cluster on this machine (raylet, GCS, workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for entry in Path("/proc").iterdir():
        try:
            head = entry.joinpath("cmdline").read_bytes().split(b"\0")[:3]
            if entry.name.isdigit() and b"ray" in b" ".join(head).lower():
                fields = entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()
                seconds[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except OSError:  # not a process, or gone
            continue
    return seconds


def measure(name: str, manifest: Path, out: Path, extra: list[str], on_ray: bool) -> dict[str, float | str]:
    """Run one `talkface batch` and measure it."""
    shutil.rmtree(out, ignore_errors=True)
    cores = os.cpu_count() or 1
    ray0, ray_seen, done = (ray_cpu() if on_ray else {}), {}, threading.Event()

    def sample() -> None:  # a job's Ray workers exit with it: read them while they run
        while not done.wait(0.2):
            ray_seen.update(ray_cpu())

    sampler = threading.Thread(target=sample)
    if on_ray:
        sampler.start()
    own0 = children_cpu()
    busy0, total0 = busy_jiffies()
    started = time.perf_counter()
    run = subprocess.run([*TALKFACE, "batch", str(manifest), "-o", str(out), *extra], capture_output=True, text=True)
    wall = time.perf_counter() - started
    busy1, total1 = busy_jiffies()
    done.set()
    if on_ray:
        sampler.join()
    cpu = children_cpu() - own0 + sum(seconds - ray0.get(pid, 0.0) for pid, seconds in ray_seen.items())
    if run.returncode not in (0, 1):
        sys.exit(f"{name}: talkface batch failed ({run.returncode}): {run.stderr.strip()[-2000:]}")
    records = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
    ok = [r for r in records if r["status"] == "ok"]
    audio_h = sum(r["duration_s"] for r in ok) / 3600
    return {
        "run": name,
        "lines": len(records),
        "ok": len(ok),
        "failed": len(records) - len(ok),
        "wall": wall,
        "lines/s": len(records) / wall,
        "audio h/h": audio_h / (wall / 3600),
        "cpu s": cpu,
        "machine": cores * (busy1 - busy0) / max(total1 - total0, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=500)
    parser.add_argument("--library", type=Path, default=Path("build/batch_library"))
    parser.add_argument("--runs", nargs="+", choices=["1", "2", "ray"], default=["1", "2", "ray"],
                        help="Which to run: --jobs 1, --jobs 2, Ray (default: all three).")  # fmt: skip
    args = parser.parse_args()
    manifest = build_library(args.library, args.lines)
    print(f"library: {manifest} ({args.lines} lines); load before: {os.getloadavg()[0]:.2f}")
    results = []
    for jobs in [run for run in ("1", "2") if run in args.runs]:
        out = args.library / f"out-jobs{jobs}"
        results.append(measure(f"--jobs {jobs}", manifest, out, ["--jobs", jobs], on_ray=False))
    if "ray" in args.runs:
        ray = str(Path(sys.executable).with_name("ray"))
        subprocess.run([ray, "start", "--head", "--num-cpus", "2", "--include-dashboard=false"], check=True,
                       capture_output=True)  # fmt: skip
        try:
            results.append(measure("--ray auto", manifest, args.library / "out-ray", ["--ray", "auto"], on_ray=True))
        finally:
            subprocess.run([ray, "stop", "--force"], capture_output=True)
    speeds = {r["run"]: r["lines/s"] for r in results}
    base, pool = speeds.get("--jobs 1", math.nan), speeds.get("--jobs 2", math.nan)
    print(f"{'run':<12} {'lines':>5} {'ok':>4} {'failed':>6} {'wall s':>7} {'lines/s':>8} {'audio h/h':>9} "
          f"{'run CPU s':>9} {'busy cores':>10} {'vs jobs 1':>9} {'vs jobs 2':>9}")  # fmt: skip
    for r in results:
        speed = r["lines/s"]
        print(f"{r['run']:<12} {r['lines']:>5} {r['ok']:>4} {r['failed']:>6} {r['wall']:>7.1f} {speed:>8.2f} "
              f"{r['audio h/h']:>9.0f} {r['cpu s']:>9.1f} {r['machine']:>10.2f} {speed / base:>8.2f}× "
              f"{speed / pool:>8.0%}")  # fmt: skip
    print("run CPU s: CPU time of the run's own processes (with Ray: the cluster's too); busy cores: the whole "
          "machine's, other work included")  # fmt: skip


if __name__ == "__main__":
    main()
