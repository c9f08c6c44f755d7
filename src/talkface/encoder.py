"""A frozen speech encoder front end: Whisper tiny.en's encoder cut after its second layer, run by onnxruntime.

The ONNX file (built by ``scripts/build_encoder.py`` from OpenAI's MIT weights) takes Whisper's 80-bin
log-mel and returns 384 features per 20 ms frame: conv1 + GELU, conv2 (stride 2) + GELU, positions, two
pre-LN transformer layers, then the encoder's final layer norm. The log-mel is computed here in numpy.
A file that does not match the checksum in the ``.json`` beside it is refused.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path

import numpy as np

from .errors import TalkfaceError
from .onnx_file import open_checked

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
#: Samples per encoder frame (conv2 has stride 2 over 10 ms mel frames): 20 ms, 50 frames a second.
FRAME = 2 * HOP
FEATURE_DIM = 384
#: Audio up to this long is encoded whole (the encoder's positions reach 30 s).
WINDOW_SECONDS = 20.0
#: Longer audio is encoded in windows with this much audio either side of the frames each one keeps.
CONTEXT_SECONDS = 2.0
DEFAULT_ENCODER = "whisper-tiny-en-l2.onnx"
_SPECTRA = 200  # log-mel frames whose spectra are computed at a time
FORMAT = "talkface-speech-encoder/1"


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above."""
    hz = np.asarray(hz, np.float64)
    mel = hz / (200.0 / 3.0)
    log_part = hz >= 1000.0
    return np.where(log_part, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * (200.0 / 3.0))


@functools.cache
def mel_filters() -> np.ndarray:
    """[80, 201] triangular filters, 0–8 kHz, evenly spaced on Slaney's mel scale, each of unit area (slaney norm)."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    bins = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    rising = (bins[None] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    falling = (edges[2:, None] - bins[None]) / np.diff(edges)[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def whisper_log_mel(audio: np.ndarray) -> np.ndarray:
    """Whisper's log-mel [80, len // 160] for 16 kHz mono float audio (at least 201 samples).

    Centred 400-sample periodic-Hann frames every 160 samples (reflect-padded at both ends), power
    spectrum, the mel filters above, log10 floored at 1e-10, values below (max − 8) raised to it, then
    (x + 4) / 4. Frame j is centred on sample 160 j; like Whisper the last frame (centred on the end) is
    dropped. Whisper takes the max over its 30 s window (padded with silence); here it is the max over
    the audio passed in.
    """
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1 or len(audio) <= N_FFT // 2:
        raise TalkfaceError(f"log-mel needs 1-D audio of more than {N_FFT // 2} samples, got shape {audio.shape}")
    padded = np.pad(audio, N_FFT // 2, mode="reflect")
    n_frames = len(audio) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n_frames]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    power = np.empty((n_frames, N_FFT // 2 + 1), np.float32)
    for i in range(0, n_frames, _SPECTRA):  # (the same spectra; temporaries small enough to stay in cache)
        np.square(np.abs(np.fft.rfft(frames[i : i + _SPECTRA] * window, axis=1)), out=power[i : i + _SPECTRA])
    log_spec = np.log10(np.maximum(mel_filters() @ power.T, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


def default_encoder_path() -> Path:
    return Path(str(files("talkface") / "assets" / DEFAULT_ENCODER))


class SpeechEncoder:
    """Frozen Whisper tiny.en features (first 2 of 4 encoder layers): 16 kHz audio in, [T, 384] at 50 Hz out."""

    def __init__(self, path: str | Path | None = None, threads: int = 1) -> None:
        self.path = Path(path) if path is not None else default_encoder_path()
        self.meta, self.session = open_checked(self.path, FORMAT, "speech encoder", threads)

    def _encode(self, audio: np.ndarray) -> np.ndarray:
        """Features of audio whose length is a positive multiple of `FRAME`: one row per 320 samples."""
        mel = whisper_log_mel(audio)
        return self.session.run(None, {"mel": mel[None]})[0][0]

    def features(self, audio: np.ndarray) -> np.ndarray:
        """[ceil(len / 320), 384] float32 features of 16 kHz mono float audio of any length.

        Frame i is centred on sample 320 i (time 0.02 i s): its convolutions read the log-mel frames
        centred on samples 320 i − 320 … 320 i + 320, i.e. audio from 320 i − 520 to 320 i + 520, and its
        attention reads the whole window. The learned convolutions lean late: a click at sample 320 k
        moves frames k and k + 1 most. The audio is zero-padded at the end to a whole frame. Up to
        `WINDOW_SECONDS` it is encoded whole; longer audio in windows on the same frame grid, each
        keeping the frames at least `CONTEXT_SECONDS` from its edges (except at the ends of the audio),
        so memory stays bounded. Each window's log-mel takes its own max (see `whisper_log_mel`).

        Whisper adds absolute positions, so a frame's features also depend on where it sits in its
        window (the same audio 0.5 s later in a window: cosine ~0.8): train heads on features made by
        this method, from audio cut as it will be at run time. It is `advance` with the whole audio
        in one chunk.
        """
        return self.advance(EncoderState(), audio, ending=True)

    def advance(self, state: EncoderState, audio: np.ndarray, ending: bool = False) -> np.ndarray:
        """Audio arriving in chunks: add `audio` to `state` and return the frames that became final
        (those `features` gives for the whole audio, in order). A window is encoded once the audio
        after its last kept frame reaches `CONTEXT_SECONDS`; with `ending` the rest is encoded."""
        audio = np.asarray(audio, np.float32)
        if audio.ndim != 1:
            raise TalkfaceError(f"speech encoder needs mono audio, got shape {audio.shape}")
        state.audio = np.concatenate([state.audio, audio])
        state.received += audio.size
        n = -(-state.received // FRAME) if ending else state.received // FRAME  # frames that can be encoded
        window = round(WINDOW_SECONDS * SAMPLE_RATE) // FRAME
        context = round(CONTEXT_SECONDS * SAMPLE_RATE) // FRAME
        step = window - 2 * context
        out = []
        if ending and n <= window and not state.done:  # short audio is encoded whole
            if n:
                out.append(self._encode(state.frames(0, n)))
            state.done = n
        elif ending or n > window:
            while state.done < n and (ending or state.done + step + context <= n):
                start = state.done
                stop = min(start + step, n)
                lo, hi = max(0, start - context), min(n, stop + context)
                out.append(self._encode(state.frames(lo, hi))[start - lo : stop - lo])
                state.done = stop
            state.forget(max(0, state.done - context))
        return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM), np.float32)


class EncoderState:
    """One stream's audio not yet encoded (from frame `start` on), for `SpeechEncoder.advance`."""

    def __init__(self) -> None:
        self.audio = np.zeros(0, np.float32)
        self.start = 0  # the frame at which `audio` begins
        self.received = 0  # samples so far
        self.done = 0  # frames encoded so far

    def frames(self, lo: int, hi: int) -> np.ndarray:
        """Audio of frames lo..hi, zero-padded past the end of what arrived."""
        piece = self.audio[(lo - self.start) * FRAME : (hi - self.start) * FRAME]
        return np.pad(piece, (0, (hi - lo) * FRAME - piece.size))

    def forget(self, frame: int) -> None:
        """Drop the audio before `frame`: no later window reads it."""
        if frame > self.start:
            self.audio = self.audio[(frame - self.start) * FRAME :]
            self.start = frame


@functools.cache
def load_default() -> SpeechEncoder:
    """The packaged speech encoder, loaded once per process."""
    return SpeechEncoder()
