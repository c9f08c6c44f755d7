"""Load and soak benchmark of `talkface serve`: N concurrent real-time WebSocket streams.

Starts a server on a free loopback port (a separate process, so its memory can be read), opens
N streams that each send 20 ms chunks of 16 kHz speech in real time (staggered starts) and
receive binary frames at 30 fps, and reports:

- frame latency beyond the look-ahead: for frame k, from the moment the client sent the chunk that
  completed the audio frame k needs (k / fps + the stream's latency) to the frame's arrival;
  p50 / p99 / max over all frames (a stream "keeps up" while its p99 is under 50 ms);
- end-to-end latency from a sample's capture (its send time) to the frame at that time;
- memory (RSS) of the server and its model workers idle, with the streams, and per stream; CPU
  cores used by the server and its workers, and by this client;
- with --soak: RSS every 10 s over the run, and its growth from the first to the last minute.

    python benchmarks/stream_load.py --streams 60 --seconds 30
    python benchmarks/stream_load.py --streams 40 --seconds 600 --soak
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np

from talkface import load_audio

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 320  # 20 ms at 16 kHz
HEADER = struct.Struct("<4sIHHd")


def speech(seconds: float) -> np.ndarray:
    """Real speech (ARCTIC a0009) with pauses, repeated to `seconds`, as 16-bit PCM."""
    clip = load_audio(ROOT / "tests" / "data" / "arctic_a0009.wav")
    unit = np.concatenate([clip, np.zeros(8000, np.float32)])
    reps = int(np.ceil(seconds * 16000 / unit.size))
    return (np.tile(unit, reps)[: int(seconds * 16000)] * 30000).astype("<i2")


def family(pid: int) -> list[int]:
    """The server and its model workers."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]


def rss_kib(pid: int) -> int:
    total = 0
    for p in family(pid):
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def cpu_seconds(pid: int) -> np.ndarray:
    """CPU seconds of the server's event loop (the first) and of each of its model workers (not of
    multiprocessing's resource tracker, which does nothing here)."""
    ticks = []
    for p in family(pid):
        if b"resource_tracker" in Path(f"/proc/{p}/cmdline").read_bytes():
            continue
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        ticks.append(int(fields[11]) + int(fields[12]))
    return np.array(ticks) / os.sysconf("SC_CLK_TCK")


async def one_stream(url: str, pcm: np.ndarray, delay: float, out: dict) -> None:
    await asyncio.sleep(delay)
    sent_at: list[float] = []  # when each chunk went out
    lat, e2e = out.setdefault("beyond", []), out.setdefault("e2e", [])
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/v1/stream?output=binary") as ws:
        ready = json.loads((await ws.receive()).data)
        latency, fps = ready["latency"], ready["fps"]

        async def reader() -> None:
            async for msg in ws:
                now = time.monotonic()
                if msg.type != aiohttp.WSMsgType.BINARY:
                    continue
                _, first, count, _, _ = HEADER.unpack_from(msg.data)
                for k in range(first, first + count):
                    need = int(np.ceil((k / fps + latency) * 16000 / CHUNK))  # chunks needed
                    if need <= len(sent_at):
                        lat.append(now - sent_at[need - 1])
                        at = int(k / fps * 16000 / CHUNK)  # the chunk holding the frame's own time
                        e2e.append(now - sent_at[min(at, len(sent_at) - 1)])
                out["frames"] = out.get("frames", 0) + count

        task = asyncio.create_task(reader())
        start = time.monotonic()
        for i in range(0, pcm.size, CHUNK):
            wait = start + i / 16000 - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            sent_at.append(time.monotonic())
            await ws.send_bytes(pcm[i : i + CHUNK].tobytes())
        await ws.send_str('{"type": "end"}')
        await task


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_report(args: argparse.Namespace, results: list[dict], idle: int, peak: int, cpu: np.ndarray,
                client: float) -> dict:  # fmt: skip
    """The figures of a load run: frames, latency beyond the look-ahead and end to end (ms), the
    server's memory (KiB in, MiB out) and the cores the server and the clients used."""
    beyond = np.array([x for r in results for x in r.get("beyond", [])]) * 1000
    e2e = np.array([x for r in results for x in r.get("e2e", [])]) * 1000
    return {
        "streams": args.streams,
        "seconds": args.seconds,
        "frames": int(sum(r.get("frames", 0) for r in results)),
        "beyond_lookahead_ms": {q: round(float(np.percentile(beyond, p)), 1) for q, p in
                                (("p50", 50), ("p99", 99), ("max", 100))} if beyond.size else None,
        "end_to_end_ms": {q: round(float(np.percentile(e2e, p)), 1) for q, p in
                          (("p50", 50), ("p99", 99))} if e2e.size else None,
        "server_rss_mib": {"idle": round(idle / 1024, 1), "peak": round(peak / 1024, 1),
                           "per_stream": round((peak - idle) / 1024 / args.streams, 2)},
        "server_cpu_cores": round(float(cpu.sum()), 2),
        "event_loop_cpu_cores": round(float(cpu[0]), 2),
        "worker_cpu_cores": [round(float(c), 2) for c in cpu[1:]],
        "client_cpu_cores": round(client, 2),
    }  # fmt: skip


async def main(args: argparse.Namespace) -> dict:
    port = free_port()
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "talkface.cli", "serve", "--port", str(port), "--max-streams", "1000",
         *(["--workers", str(args.workers)] if args.workers else [])],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                try:
                    async with session.get(f"{url}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
        idle = rss_kib(server.pid)
        pcm = speech(args.seconds)
        results = [dict() for _ in range(args.streams)]
        cpu0, t0, client0 = cpu_seconds(server.pid), time.monotonic(), time.process_time()
        samples: list[tuple[float, int]] = []

        async def sampler() -> None:
            while True:
                await asyncio.sleep(10 if args.soak else 1)
                samples.append((time.monotonic() - t0, rss_kib(server.pid)))

        watch = asyncio.create_task(sampler())
        await asyncio.gather(*(one_stream(url, pcm, i * 0.02 % 1.0, results[i]) for i in range(args.streams)))
        watch.cancel()
        wall, cpu, client = time.monotonic() - t0, cpu_seconds(server.pid) - cpu0, time.process_time() - client0
    finally:
        server.terminate()
        server.wait(10)
    peak = max(kib for _, kib in samples) if samples else idle
    report = load_report(args, results, idle, peak, cpu / wall, client / wall)
    if args.soak and len(samples) >= 12:
        first = np.mean([k for t, k in samples if t < 60 + samples[0][0]])
        last = np.mean([k for t, k in samples if t > samples[-1][0] - 60])
        report["soak_rss_mib"] = {
            "first_minute": round(first / 1024, 1),
            "last_minute": round(last / 1024, 1),
            "growth": round((last - first) / 1024, 1),
            "samples": [k // 1024 for _, k in samples],
        }
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0, help="audio per stream (real time)")
    parser.add_argument("--workers", type=int, help="the server's model workers (default: one per core)")
    parser.add_argument("--soak", action="store_true", help="sample memory every 10 s and report its growth")
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=1))
