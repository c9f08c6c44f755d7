"""Load benchmark of `talkface serve --grpc-port`: N concurrent real-time Audio2Face-3D gRPC streams.

Starts `talkface serve --no-http --grpc-port P` (a separate process), opens N ProcessAudioStream
calls that each send an audio header, then 20 ms chunks of 16 kHz speech in real time (staggered
starts; pipecat's service streams TTS audio so), then end_of_audio, and reports what
benchmarks/stream_load.py reports for the WebSocket (its speech and process readings are reused):

- frame latency beyond the look-ahead: for frame k, from the moment the client sent the chunk that
  completed the audio frame k needs (k / fps + the stream's latency) to the frame's arrival;
  p50 / p99 / max over all frames;
- end-to-end latency from a sample's send to the frame at its time;
- memory (RSS) of the server and its workers, CPU cores used by them and by this client.

    python benchmarks/grpc_load.py --streams 50 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

import grpc
import numpy as np
from nvidia_ace import audio_pb2
from nvidia_audio2face_3d import audio2face_pb2_grpc, messages_pb2
from stream_load import CHUNK, cpu_seconds, free_port, load_report, rss_kib, speech

from talkface import Animator

FPS = 30.0


def requests(pcm: np.ndarray) -> tuple[messages_pb2.AudioWithEmotionStream, list, messages_pb2.AudioWithEmotionStream]:
    """The header, the 20 ms audio messages, end_of_audio."""
    audio = audio_pb2.AudioHeader(channel_count=1, samples_per_second=16000, bits_per_sample=16)
    header = messages_pb2.AudioWithEmotionStreamHeader(audio_header=audio)
    chunks = [
        messages_pb2.AudioWithEmotionStream(
            audio_with_emotion=messages_pb2.AudioWithEmotion(audio_buffer=pcm[i : i + CHUNK].tobytes())
        )
        for i in range(0, pcm.size, CHUNK)
    ]
    end = messages_pb2.AudioWithEmotionStream(end_of_audio=messages_pb2.AudioWithEmotionStream.EndOfAudio())
    return messages_pb2.AudioWithEmotionStream(audio_stream_header=header), chunks, end


async def one_stream(target: str, messages: tuple, latency: float, delay: float, out: dict) -> None:
    await asyncio.sleep(delay)
    header, chunks, end = messages
    sent_at: list[float] = []  # when each chunk went out
    lat, e2e = out.setdefault("beyond", []), out.setdefault("e2e", [])
    async with grpc.aio.insecure_channel(target) as channel:
        call = audio2face_pb2_grpc.A2FControllerServiceStub(channel).ProcessAudioStream()

        async def reader() -> None:
            while (message := await call.read()) != grpc.aio.EOF:
                now = time.monotonic()
                for weights in message.animation_data.skel_animation.blend_shape_weights:
                    k = round(weights.time_code * FPS)
                    need = int(np.ceil((k / FPS + latency) * 16000 / CHUNK))  # chunks needed
                    if need <= len(sent_at):
                        lat.append(now - sent_at[need - 1])
                        at = int(k / FPS * 16000 / CHUNK)  # the chunk holding the frame's own time
                        e2e.append(now - sent_at[min(at, len(sent_at) - 1)])
                    out["frames"] = out.get("frames", 0) + 1

        await call.write(header)
        task = asyncio.create_task(reader())
        start = time.monotonic()
        for i, chunk in enumerate(chunks):
            wait = start + i * CHUNK / 16000 - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            sent_at.append(time.monotonic())
            await call.write(chunk)
        await call.write(end)
        await task
        out["code"] = (await call.code()).name


async def main(args: argparse.Namespace) -> dict:
    port = free_port()
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "talkface.cli", "serve", "--no-http", "--grpc-port", str(port), "--max-streams", "1000",
         *(["--workers", str(args.workers)] if args.workers else [])],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    target = f"127.0.0.1:{port}"
    latency = Animator(FPS).stream(FPS).latency  # the look-ahead the server's sessions have
    try:
        async with grpc.aio.insecure_channel(target) as channel:  # up when it answers
            await channel.unary_unary("/grpc.health.v1.Health/Check")(b"", wait_for_ready=True, timeout=120)
        idle = rss_kib(server.pid)
        messages = requests(speech(args.seconds))
        results = [dict() for _ in range(args.streams)]
        cpu0, t0, client0 = cpu_seconds(server.pid), time.monotonic(), time.process_time()
        peak = idle

        async def sampler() -> None:
            nonlocal peak
            while True:
                await asyncio.sleep(1)
                peak = max(peak, rss_kib(server.pid))

        watch = asyncio.create_task(sampler())
        await asyncio.gather(
            *(one_stream(target, messages, latency, i * 0.02 % 1.0, results[i]) for i in range(args.streams))
        )
        watch.cancel()
        wall, cpu, client = time.monotonic() - t0, cpu_seconds(server.pid) - cpu0, time.process_time() - client0
    finally:
        server.terminate()
        server.wait(10)
    report = load_report(args, results, idle, peak, cpu / wall, client / wall)
    return {**report, "ok": sum(r.get("code") == "OK" for r in results), "lookahead_ms": round(latency * 1000, 1)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0, help="audio per stream (real time)")
    parser.add_argument("--workers", type=int, help="the server's model workers (default: one per core)")
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=1))
