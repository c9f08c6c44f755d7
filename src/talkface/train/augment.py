"""Audio augmentation that makes TTS sound like people in rooms on real microphones.

Each function takes and returns 16 kHz float32 audio and draws its parameters from a numpy
Generator, so a corpus is reproducible from its seed. Vocal-tract-length (formant) warping acts
on the log-mel features instead and lives in `dataset.py`.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
from scipy import signal

from ..audio import SAMPLE_RATE


def reverb(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a synthetic room: exponentially decaying noise, RT60 0.1–0.9 s, with a direct path."""
    rt60 = rng.uniform(0.1, 0.9)
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    rir = np.concatenate([[1.0], np.zeros(int(rng.uniform(0.002, 0.02) * SAMPLE_RATE)), tail * rng.uniform(0.05, 0.3)])
    wet = signal.fftconvolve(audio, rir)[: audio.size]
    return (wet * (np.abs(audio).max() / (np.abs(wet).max() + 1e-9))).astype(np.float32)


def noise(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add coloured noise (spectral slope from blue to brown) at an SNR of 0–35 dB."""
    white = np.fft.rfft(rng.standard_normal(audio.size))
    freqs = np.maximum(np.fft.rfftfreq(audio.size, 1 / SAMPLE_RATE), 20.0)
    coloured = np.fft.irfft(white * freqs ** rng.uniform(-1.0, 0.5), n=audio.size)
    snr_db = rng.uniform(0, 35)
    power = np.mean(audio**2) / (10 ** (snr_db / 10))
    coloured *= np.sqrt(power / (np.mean(coloured**2) + 1e-12))
    return (audio + coloured).astype(np.float32)


def band_limit(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A telephone band (300–3400 Hz) or a random low-pass and high-pass, like cheap microphones."""
    if rng.random() < 0.4:
        low, high = 300.0, 3400.0
    else:
        low, high = rng.uniform(20, 250), rng.uniform(3500, 7900)
    sos = signal.butter(4, [low, high], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return signal.sosfilt(sos, audio).astype(np.float32)


def codec(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Round-trip through a lossy codec: Ogg Vorbis at a low quality, or 8-bit mu-law."""
    buf = io.BytesIO()
    if rng.random() < 0.5:
        sf.write(buf, audio, SAMPLE_RATE, format="OGG", subtype="VORBIS", compression_level=rng.uniform(0.6, 1.0))
    else:
        sf.write(buf, audio, SAMPLE_RATE, format="WAV", subtype="ULAW")
    buf.seek(0)
    out, _ = sf.read(buf, dtype="float32")
    return out[: audio.size] if out.size >= audio.size else np.pad(out, (0, audio.size - out.size))


def gain(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scale by −30 to +10 dB, clipping like an overdriven input."""
    peak = np.abs(audio).max() + 1e-9
    return np.clip(audio / peak * 10 ** (rng.uniform(-30, 10) / 20), -1.0, 1.0).astype(np.float32)


#: Each augmentation and the probability with which it is applied, in order.
CHAIN = ((reverb, 0.5), (band_limit, 0.35), (noise, 0.7), (codec, 0.25), (gain, 1.0))


def augment(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply the augmentation chain, each step with its probability."""
    for step, probability in CHAIN:
        if rng.random() < probability:
            audio = step(audio, rng)
    return audio
