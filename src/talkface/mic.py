"""Live animation from a microphone (sounddevice / PortAudio) or a file played in real time.

`run` pushes each chunk of a source through a `Stream` as it arrives, sends the finished frames
to Live Link (when asked) and shows a one-line level meter on the terminal.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import numpy as np
import soundfile as sf

from .animation import Animation
from .animator import Animator
from .audio import reading
from .errors import TalkfaceError
from .livelink import LiveLinkSender

BLOCK_SECONDS = 0.02  # 20 ms chunks
#: Seconds an input device may send nothing before it is taken for gone (unplugged): the take ends there.
SILENT_DEVICE_SECONDS = 5.0

log = logging.getLogger(__name__)


class MicSource:
    """Chunks from an input device (default: the system's default input), mono float32."""

    def __init__(self, device: str | int | None = None, sample_rate: int | None = None) -> None:
        try:
            import sounddevice as sd
        except OSError as e:  # PortAudio itself is missing
            raise TalkfaceError(f"no audio input: PortAudio is not installed ({e})") from None
        self.sd = sd
        try:
            info = sd.query_devices(device, "input")
        except (ValueError, OverflowError, sd.PortAudioError) as e:  # (a number past C's int overflows)
            raise TalkfaceError(f"no audio input device {device if device is not None else '(default)'}: {e}") from None
        self.device, self.name = device, str(info["name"])
        self.sample_rate = int(sample_rate or info["default_samplerate"])
        self.chunks: queue.Queue[np.ndarray] = queue.Queue(maxsize=500)  # 10 s; older audio is dropped past it
        self.dropped = 0

    def _callback(self, data: np.ndarray, frames: int, when: object, status: object) -> None:
        try:
            self.chunks.put_nowait(data[:, 0].copy())
        except queue.Full:
            self.dropped += 1

    def __iter__(self) -> Iterator[np.ndarray]:
        block = max(1, round(self.sample_rate * BLOCK_SECONDS))
        try:
            stream = self.sd.InputStream(
                device=self.device, channels=1, samplerate=self.sample_rate, dtype="float32",
                blocksize=block, callback=self._callback,
            )  # fmt: skip
        except self.sd.PortAudioError as e:
            raise TalkfaceError(f"cannot open the audio input {self.name}: {e}") from None
        with stream:
            while True:
                try:
                    yield self.chunks.get(timeout=SILENT_DEVICE_SECONDS)
                except queue.Empty:  # a device sends every 20 ms: it is gone, and would be waited for for ever
                    log.warning("the audio input %s sent nothing for %g s; stopping", self.name, SILENT_DEVICE_SECONDS)
                    return


class FileSource:
    """Chunks of an audio file, paced in real time (`realtime`) or as fast as they can be read."""

    def __init__(self, path: str | Path, realtime: bool = True) -> None:
        with reading(path):
            self.info = sf.info(os.fsencode(path))
        self.path, self.realtime = path, realtime
        self.sample_rate = int(self.info.samplerate)
        self.name = str(path)

    def __iter__(self) -> Iterator[np.ndarray]:
        block = max(1, round(self.sample_rate * BLOCK_SECONDS))
        start = time.monotonic()
        sent = 0
        with reading(self.path):  # a file torn or corrupt past its header: one clear error, not libsndfile's
            for chunk in sf.blocks(os.fsencode(self.path), blocksize=block, dtype="float32", always_2d=True):
                if self.realtime:
                    wait = start + sent / self.sample_rate - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                sent += chunk.shape[0]
                yield chunk


def meter(chunk: np.ndarray, frames: int, seconds: float, width: int = 30) -> str:
    """One terminal line: the chunk's level as a bar and in dBFS, frames out, time."""
    level = 20 * math.log10(float(np.sqrt(np.mean(np.square(chunk)))) + 1e-9) if chunk.size else -120.0
    filled = max(0, min(width, round((level + 60) / 60 * width)))
    return f"\r[{'#' * filled}{' ' * (width - filled)}] {level:6.1f} dB  {frames:6d} frames  {seconds:7.1f} s "


def run(
    source: MicSource | FileSource,
    animator: Animator,
    fps: float | None = None,
    livelink: LiveLinkSender | None = None,
    seconds: float | None = None,
    show: TextIO | None = sys.stderr,
    keep: bool = True,
) -> Animation:
    """Animate `source` live until it ends, `seconds` pass or Ctrl-C; the whole animation (with `keep`;
    without it no frames are kept, so a session left running for hours holds none, and none come back)."""
    session = animator.stream(fps, sample_rate=source.sample_rate)
    parts = []
    heard = 0
    try:
        for chunk in source:
            frames = session.push(chunk)
            heard += chunk.shape[0]
            if livelink is not None and frames.num_frames:
                livelink.send(frames)
            if keep and frames.num_frames:  # (most 20 ms chunks make one frame or none)
                parts.append(frames)
            if show is not None:
                show.write(meter(np.asarray(chunk), session.frames_out, heard / source.sample_rate))
                show.flush()
            if seconds is not None and heard >= seconds * source.sample_rate:
                break
    except KeyboardInterrupt:
        pass
    except BaseException:  # the error's line after the meter's, not on it
        if show is not None:
            show.write("\n")
        raise
    last = session.flush()
    if livelink is not None and last.num_frames:
        livelink.send(last)
    if show is not None:
        show.write("\n")
    return Animation.join([*parts, last]) if keep else Animation.zeros(0, last.fps, last.names)
