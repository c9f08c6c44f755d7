"""Long work is bounded: an hour of speech through every path, with wall time and peak memory.

Run: python benchmarks/long_files.py [--minutes 60]. It speaks a long text with `talkface say`
(itself one of the paths), then gives that speech to every other path:

- `say` of the text (espeak-ng), and `animate` of its WAV with the neural model (the default),
  with `--text` (forced alignment) and with `--engine phonetic`, each in a fresh process whose peak
  resident memory is read with getrusage;
- `talkface serve`: one WebSocket stream of the whole WAV sent as fast as the server reads it, and
  `POST /v1/animate` of the largest upload the server takes (its `max_audio_seconds`, 600 s),
  with the peak memory of the server and its workers sampled from /proc.

It prints one line per path and the targets of issue 12 for a 60-minute file; `--check` exits
non-zero when a target is missed (tests/test_long_files.py runs the same with 10 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np
import soundfile as sf

TALKFACE = [sys.executable, "-m", "talkface.cli"]
#: Read English of varied phones, repeated to the length wanted.
PARAGRAPH = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
    "It is easy to tell the depth of a well. These days a chicken leg is a rare dish. "
    "Rice is often served in round bowls. The juice of lemons makes fine punch. "
    "The box was thrown beside the parked truck. The hogs were fed chopped corn and garbage. "
    "Four hours of steady work faced us. A large size in stockings is hard to sell. "
    "The boy was there when the sun rose. A rod is used to catch pink salmon. "
    "The source of the huge river is the clear spring. Kick the ball straight and follow through. "
    "Help the woman get back to her feet. A pot of tea helps to pass the evening. "
)
#: (seconds, MB) per path for 60 minutes of audio, from the issue; None where it sets none.
TARGETS_60 = {"animate": (60, 400), "animate --text": (90, 1000), "animate --engine phonetic": (None, 500)}
_WORDS_PER_MINUTE = 200  # espeak-ng reads this text at about this rate: sizes the text to the minutes asked


@dataclass
class Run:
    path: str
    audio_s: float
    wall_s: float
    peak_mb: float


def long_text(minutes: float) -> str:
    words = PARAGRAPH.split()
    reps = int(np.ceil(minutes * _WORDS_PER_MINUTE / len(words)))
    return " ".join(words * reps)


def timed(args: list[str], timeout: float) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of a command: the larger of its own peak (its
    VmHWM, from its exec on; getrusage would count the pages it shared with this process before
    exec) and the sum over it and the processes it starts (`animate --text` aligns long audio in
    several), both sampled every 50 ms."""
    start = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # returns after exec
    peak = _Peak(process.pid)
    peak.start()
    try:
        _, error = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, error = process.communicate()
    wall = time.perf_counter() - start
    peak.running = False
    peak.join()
    if process.returncode:
        message = error.decode(errors="replace").strip()[-400:] or f"ended by signal {-process.returncode}"
        raise RuntimeError(f"{' '.join(args[2:5])}…: {message}")
    return wall, peak.peak


def _status_mb(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next((int(line.split()[1]) for line in status if line.startswith(field + ":")), 0) / 1024  # 0: a zombie


def _family_rss_mb(pid: int) -> float:
    children = map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    return sum(_status_mb(p, "VmRSS") for p in [pid, *children])


class _Peak(threading.Thread):
    """Samples every 50 ms the RSS of a process and its children together, and the process's own
    high-water mark; `peak` is the larger."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0.0, True

    def run(self) -> None:
        while self.running:
            with contextlib.suppress(OSError):  # a worker that just went
                self.peak = max(self.peak, _family_rss_mb(self.pid), _status_mb(self.pid, "VmHWM"))
            time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _stream(url: str, pcm: np.ndarray) -> int:
    """Send the whole PCM in 1 s chunks as fast as the server reads it; the frames received."""
    frames = 0
    timeout = aiohttp.ClientTimeout(total=None)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.ws_connect(f"{url}/v1/stream?output=binary", max_msg_size=0) as ws,
    ):
        await ws.receive()  # ready

        async def reader() -> None:
            nonlocal frames
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    frames += int.from_bytes(msg.data[8:10], "little")

        task = asyncio.create_task(reader())
        for i in range(0, pcm.size, 16000):
            await ws.send_bytes(pcm[i : i + 16000].tobytes())
        await ws.send_str('{"type": "end"}')
        await task
    return frames


async def _post(url: str, body: bytes) -> int:
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.post(f"{url}/v1/animate?format=npz",
                                                                               data=body) as r:  # fmt: skip
        data = await r.read()
        if r.status != 200:
            raise RuntimeError(f"POST /v1/animate: {r.status} {data[:200]!r}")
        return len(data)


def served(wav: Path, seconds: float, timeout: float) -> list[Run]:
    """A whole-file WebSocket stream and the largest POST, each against a fresh server."""
    runs = []
    pcm = (sf.read(wav, dtype="float32")[0] * 30000).astype("<i2")
    post_seconds = min(seconds, 600.0)
    with tempfile.TemporaryDirectory() as tmp:
        upload = Path(tmp) / "upload.wav"
        sf.write(upload, pcm[: int(post_seconds * 16000)], 16000, subtype="PCM_16")
        body = upload.read_bytes()
    for name, job, length in (("serve: WebSocket stream", lambda u: _stream(u, pcm), seconds),
                              ("serve: POST /v1/animate", lambda u: _post(u, body), post_seconds)):  # fmt: skip
        port = _free_port()
        server = subprocess.Popen([*TALKFACE, "serve", "--port", str(port)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_up(url, server)
            peak = _Peak(server.pid)
            peak.start()
            start = time.perf_counter()
            asyncio.run(asyncio.wait_for(job(url), timeout))
            wall = time.perf_counter() - start
            peak.running = False
            peak.join()
            runs.append(Run(name, length, wall, peak.peak))
        finally:
            server.terminate()
            server.wait(30)
    return runs


def _wait_up(url: str, server: subprocess.Popen) -> None:
    import urllib.request

    for _ in range(600):
        if server.poll() is not None:
            raise RuntimeError("the server exited at start")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not come up")


def run(minutes: float, timeout: float, folder: Path) -> list[Run]:
    """Every path on about `minutes` of speech; each must end within `timeout` seconds."""
    text = folder / "text.txt"
    text.write_text(long_text(minutes), encoding="utf-8")  # an hour is ~60 KB: under one argument's 128 KB
    say = folder / "say"
    wall, peak = timed([*TALKFACE, "say", text.read_text(encoding="utf-8"), "-o", str(say)], timeout)
    wav = say / "speech.wav"
    info = sf.info(wav)
    if info.samplerate != 16000:  # the servers' sizes are in 16 kHz seconds: give every path the same file
        audio, rate = sf.read(wav, dtype="float32")
        import soxr

        sf.write(folder / "speech16k.wav", soxr.resample(audio, rate, 16000), 16000, subtype="PCM_16")
        wav = folder / "speech16k.wav"
    seconds = sf.info(wav).duration
    runs = [Run("say", seconds, wall, peak)]
    for name, extra in (("animate", []), ("animate --text", ["--text-file", str(text)]),
                        ("animate --engine phonetic", ["--engine", "phonetic"])):  # fmt: skip
        wall, peak = timed([*TALKFACE, "animate", str(wav), "-o", str(folder / "out.csv"), *extra], timeout)
        runs.append(Run(name, seconds, wall, peak))
    return runs + served(wav, seconds, timeout)


def misses(runs: list[Run]) -> list[str]:
    """The targets (scaled to each run's length for time, as they are for memory) that a run missed."""
    out = []
    for r in runs:
        wall, mb = TARGETS_60.get(r.path, (None, None))
        if wall is not None and r.wall_s > wall * r.audio_s / 3600:
            out.append(f"{r.path}: {r.wall_s:.1f} s for {r.audio_s / 60:.1f} min (target {wall} s an hour)")
        if mb is not None and r.peak_mb > mb:
            out.append(f"{r.path}: {r.peak_mb:.0f} MB (target {mb} MB)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the speech (default 60)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds any one path may take")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--json", action="store_true", help="print the runs as JSON")
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        runs = run(args.minutes, args.timeout, Path(tmp))
    if args.json:
        print(json.dumps([r.__dict__ for r in runs], indent=1))
    else:
        print(f"{'path':<28} {'audio min':>9} {'wall s':>8} {'x real time':>11} {'peak MB':>8}")
        for r in runs:
            speed = r.audio_s / r.wall_s
            print(f"{r.path:<28} {r.audio_s / 60:>9.1f} {r.wall_s:>8.1f} {speed:>11.0f} {r.peak_mb:>8.0f}")
    missed = misses(runs)
    for line in missed:
        print("missed:", line)
    if args.check and missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
