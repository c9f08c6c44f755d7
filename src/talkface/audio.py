"""Audio in: decode, check, downmix and resample, so every path sees clean mono float32."""

from __future__ import annotations

import contextlib
import itertools
import math
import os
from collections.abc import Iterator

import numpy as np
import soundfile as sf
import soxr

from .errors import TalkfaceError, checked_number
from .files import refuse_nul, special_kind

SAMPLE_RATE = 16000
#: Highest sample rate of an audio array (a stream's too).
MAX_RATE = 384000
#: Longest input accepted in one call (seconds); longer audio should be streamed in parts.
MAX_SECONDS = 4 * 3600
_BLOCK_VALUES = 1 << 23  # samples of all channels decoded at a time (32 MB): a minute of 48 kHz stereo is 5.8 M
_SILENCE_PEAK = 1e-4
#: Float samples beyond this (40 dB over full scale) are not audio talkface can hear: the level is
#: garbage, or integers were stored as floats.
MAX_PEAK = 100.0
#: Most channels of a [samples, channels] array (libsndfile's own limit): more is a [channels, samples] array.
MAX_CHANNELS = 1024
#: More channels than this, and than samples, is also a [channels, samples] array: a chunk of a stream
#: channels first ([1, 320], as torchaudio gives) is otherwise one frame of 320 channels, silently.
_FEW_CHANNELS = 16

AudioSource = str | os.PathLike | np.ndarray


def load_audio(source: AudioSource, sample_rate: int | None = None, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 audio at `target_rate` from a file path or an array.

    An array needs its `sample_rate`; a multi-channel array is [samples, channels]. Raises
    `TalkfaceError` for unreadable, empty, silent, non-finite or overlong audio.
    """
    target_rate = int(checked_number(target_rate, "target rate", 1, MAX_RATE, whole=True))  # (was soxr's ValueError)
    if not isinstance(source, np.ndarray):
        return _decoded(source, target_rate)
    if sample_rate is None:
        raise TalkfaceError("an audio array needs its sample_rate")
    rate = int(checked_number(sample_rate, "sample rate", 1, MAX_RATE, whole=True))  # int() took NaN, cut 16000.5
    return _checked(np.asarray(source), rate, target_rate, "audio")


def _decoded(path: str | os.PathLike, target_rate: int) -> np.ndarray:
    """A file's mono audio at `target_rate`, decoded and resampled a block at a time into one array
    (the same samples as resampling it whole), so that the file at its own rate and channels is
    never in memory whole: a 48 kHz stereo hour would be 1.4 GB of float32."""
    rate, blocks = audio_blocks(path)
    with reading(path):
        frames = sf.info(os.fsencode(path)).frames
    if rate == target_rate:
        resample = None
    else:
        resample = soxr.ResampleStream(rate, target_rate, 1, dtype="float32", quality="HQ").resample_chunk
    out, n = np.empty(max(0, math.ceil(frames * target_rate / rate)), np.float32), 0
    beyond: list[np.ndarray] = []  # samples past the length the header gave (it may be an estimate)
    for block in itertools.chain(blocks, [None] if resample else []):
        if resample is not None:
            block = resample(np.zeros(0, np.float32) if block is None else block, last=block is None)
        take = min(block.size, out.size - n)
        out[n : n + take] = block[:take]
        n += take
        if take < block.size:
            beyond.append(block[take:])
    return np.concatenate([out[:n], *beyond]) if beyond else out[:n]


@contextlib.contextmanager
def reading(path: str | os.PathLike) -> Iterator[str]:
    """The file's name for messages; a missing or undecodable file as one `TalkfaceError`."""
    if not isinstance(path, str | bytes | os.PathLike):  # an int would be taken for a file descriptor, and closed
        raise TalkfaceError(f"audio must be a file path or a numpy array, not {type(path).__name__}")
    name = str(path)
    refuse_nul(path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        raise TalkfaceError(f"{name}: no such audio file") from None
    if kind := special_kind(mode):  # a device or a pipe would never end, or hang waiting for a writer
        raise TalkfaceError(f"{name}: is {kind}, not an audio file")
    try:
        yield name
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise TalkfaceError(f"{name}: not a readable audio file ({e})") from None


def audio_blocks(path: str | os.PathLike, seconds: float = 60.0) -> tuple[int, Iterator[np.ndarray]]:
    """The sample rate of an audio file and its mono float32 samples, `seconds` at a time (less
    where many channels at a high rate would make a block over `_BLOCK_VALUES`), so a long file
    never has to be in memory whole. The iterator raises `TalkfaceError` for what
    `load_audio` refuses: a block with NaN at once, an empty, silent or overlong file at the end."""
    with reading(path) as name:
        info = sf.info(os.fsencode(path))  # bytes: soundfile encodes a str as strict UTF-8
    rate = int(info.samplerate)
    if rate <= 0:
        raise TalkfaceError(f"{name}: invalid sample rate {rate}")
    _refuse(name, info.frames, rate, None)  # an overlong file, as its header says, before any work

    def blocks() -> Iterator[np.ndarray]:
        size, peak = 0, 0.0
        with reading(path):
            step = max(1, min(int(seconds * rate), _BLOCK_VALUES // max(1, info.channels)))
            for block in sf.blocks(os.fsencode(path), blocksize=step, dtype="float32", always_2d=True):
                audio = to_mono(block, name)
                size += audio.size
                _refuse(name, size, rate, None)  # an overlong file stops as soon as it is
                peak = max(peak, _peak(audio))
                yield audio
        _refuse(name, size, rate, peak)

    return rate, blocks()


def to_mono(audio: np.ndarray, name: str = "audio") -> np.ndarray:
    """Samples as mono float32: integers scaled to [-1, 1] (unsigned ones, as 8-bit WAV holds, centred on
    their midpoint first), channels ([samples, channels]) averaged.

    Raises `TalkfaceError` for non-numeric, badly shaped or non-finite audio.
    """
    audio = np.asarray(audio)
    kind = audio.dtype.kind
    if kind not in "fiu":
        raise TalkfaceError(f"{name}: audio must be numeric, got {audio.dtype}")
    if kind != "f":
        top = np.iinfo(audio.dtype).max
        middle = (top + 1) // 2 if kind == "u" else 0  # unsigned PCM is centred on it: 128 was a DC offset of +0.5
        audio = audio.astype(np.float32)  # (a copy: scaled in place)
        if middle:
            audio -= np.float32(middle)
        audio /= np.float32(top - middle)
    if audio.ndim == 2 and audio.shape[1] == 0:  # (its mean was NaN: "audio contains NaN", and numpy's warnings)
        raise TalkfaceError(f"{name}: audio of 0 channels")
    if audio.ndim == 2 and (audio.shape[1] > MAX_CHANNELS or audio.shape[0] < audio.shape[1] > _FEW_CHANNELS):
        # read as a few frames of many channels: "silent", or wrong
        raise TalkfaceError(f"{name}: audio of {audio.shape[1]} channels: a multi-channel array is [samples, "
                            f"channels]; transpose one that is [channels, samples]")  # fmt: skip
    if audio.ndim == 2:
        audio = audio[:, 0] if audio.shape[1] == 1 else audio.mean(axis=1)  # no copy of a long mono file
    elif audio.ndim != 1:
        raise TalkfaceError(f"{name}: audio must be 1-D or [samples, channels]")
    audio = audio.astype(np.float32, copy=False)
    if kind == "f" and audio.size:  # (scaled integers are finite and within ±1: nothing to check)
        low, high = float(audio.min()), float(audio.max())
        if not (math.isfinite(low) and math.isfinite(high)):  # NaN and inf carry through
            raise TalkfaceError(f"{name}: audio contains NaN or infinite samples")
        if max(high, -low) > MAX_PEAK:
            raise TalkfaceError(f"{name}: a sample of {max(high, -low):.3g}: float audio lies within ±1 "
                                "(integer samples stored as float?)")  # fmt: skip
    return audio


def _checked(audio: np.ndarray, rate: int, target_rate: int, name: str) -> np.ndarray:
    audio = to_mono(audio, name)
    if rate <= 0:
        raise TalkfaceError(f"{name}: invalid sample rate {rate}")
    _refuse(name, audio.size, rate, _peak(audio))
    if rate != target_rate:
        audio = soxr.resample(audio, rate, target_rate, quality="HQ").astype(np.float32)
    return audio


def _peak(audio: np.ndarray) -> float:
    """The largest absolute sample, without a whole-length temporary."""
    return max(float(audio.max(initial=0.0)), -float(audio.min(initial=0.0)))


def _refuse(name: str, samples: int, rate: int, peak: float | None) -> None:
    """`TalkfaceError` for audio that is overlong, or (given its `peak`) empty or silent."""
    if samples / rate > MAX_SECONDS:
        raise TalkfaceError(f"{name}: audio is longer than {MAX_SECONDS // 3600} hours")
    if peak is not None and samples == 0:
        raise TalkfaceError(f"{name}: audio is empty")
    if peak is not None and peak < _SILENCE_PEAK:
        raise TalkfaceError(f"{name}: audio is silent")
