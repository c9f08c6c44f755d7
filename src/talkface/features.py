"""Log-mel features at 100 Hz: the neural model's input, computed by this one code in training and inference.

Frame ``i`` covers the 25 ms window centred at ``i * 10 ms`` (the signal is padded by half a window
at both ends), so feature frames line up with animation frames at 100 fps.
"""

from __future__ import annotations

import functools

import numpy as np

from .audio import SAMPLE_RATE

N_MELS = 80
HOP = 160  # 10 ms at 16 kHz
WIN = 400  # 25 ms
N_FFT = 512
FMIN, FMAX = 40.0, 7600.0
FRAME_RATE = SAMPLE_RATE / HOP  # 100 feature frames per second
_FLOOR = 1e-5
#: The log-mel value of digital silence: what pads audio beyond either end.
SILENCE = float(np.log(_FLOOR))


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@functools.cache
def mel_filterbank() -> np.ndarray:
    """Triangular filters [N_MELS, N_FFT // 2 + 1] on the HTK mel scale, each with unit area."""
    bins = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(FMIN)), _hz_to_mel(np.array(FMAX)), N_MELS + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (bins[None, :] - lo) / (mid - lo)
    fall = (hi - bins[None, :]) / (hi - mid)
    bank = np.maximum(0.0, np.minimum(rise, fall))
    return (bank * (2.0 / (hi - lo))).astype(np.float32)


@functools.cache
def _window() -> np.ndarray:
    return np.hanning(WIN + 1)[:-1].astype(np.float32)


def num_frames(num_samples: int) -> int:
    """Feature frames for a signal of `num_samples` samples: one per started hop."""
    return -(-num_samples // HOP)


def log_mel(audio: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Log-mel spectrogram [frames, N_MELS] (float32) of 16 kHz mono audio, frames `start`..`stop`.

    Computing a long signal in slices gives exactly the frames of computing it whole, so long
    files and streams are processed in bounded memory.
    """
    return log_mel_of(windows(audio, start, stop))


def windows(audio: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
    """The 25 ms windows [frames, WIN] under feature frames `start`..`stop` (`log_mel_of` takes
    them; many streams' windows can go through it in one batch)."""
    audio = np.asarray(audio, dtype=np.float32)
    stop = num_frames(audio.size) if stop is None else stop
    count = max(0, stop - start)
    # the samples under frames start..stop, with zeros beyond either end of the signal
    lo = start * HOP - WIN // 2
    padded = np.zeros(max(0, count - 1) * HOP + WIN, np.float32)
    a, b = max(lo, 0), min(lo + padded.size, audio.size)
    if b > a:
        padded[a - lo : b - lo] = audio[a:b]
    # a read-only view, as `sliding_window_view(...)[::HOP]`, built directly: `as_strided` costs ten
    # times as much, and a server makes this view for every stream every tick
    view = np.ndarray((count, WIN), np.float32, padded, 0, (HOP * padded.itemsize, padded.itemsize))
    view.flags.writeable = False
    return view


def log_mel_of(frames: np.ndarray) -> np.ndarray:
    """Log-mel [frames, N_MELS] (float32) of 25 ms windows [frames, WIN] from `windows`."""
    spectrum = np.abs(np.fft.rfft(frames * _window(), n=N_FFT, axis=1)) ** 2
    return np.log(spectrum.astype(np.float32) @ mel_filterbank().T + _FLOOR).astype(np.float32)
