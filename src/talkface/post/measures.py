"""The level and the pitch of 40 ms windows of 16 kHz audio: what `prosody` measures on its grid,
for streams and whole clips alike."""

from __future__ import annotations

import numpy as np

from ..audio import SAMPLE_RATE

_F0_MIN, _F0_MAX = 60.0, 400.0
_WINDOW = np.hanning(640).astype(np.float32)
_BATCH = 64  # windows measured at a time: bounded memory, temporaries small enough to reuse, few calls
_LAGS = slice(int(SAMPLE_RATE / _F0_MAX), int(SAMPLE_RATE / _F0_MIN))  # the autocorrelation lags of f0s in range
_LAG_RANGE = np.arange(_LAGS.start, _LAGS.stop)
_AC_FFT = 1024  # points of the FFTs of `_f0` (a power of two, at least 640 + the longest lag)


def _centred(windows: np.ndarray) -> np.ndarray:
    """The windows (float32, copied) less their means: what both measures start from."""
    frames = windows.astype(np.float32)
    frames -= frames.mean(axis=1, keepdims=True)
    return frames


def window_levels(windows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Level (dBFS) of the 40 ms windows [n, 640] `rows` (a few at a time: `windows` may be a view
    of a whole clip's audio, too big to copy at once)."""
    out = np.empty(len(rows))
    for i in range(0, len(rows), _BATCH):
        some = _centred(windows[rows[i : i + _BATCH]])
        out[i : i + _BATCH] = 20 * np.log10(np.sqrt((some**2).mean(axis=1)) + 1e-9)
    return out


def window_pitches(windows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """f0 (Hz, 0 if unvoiced) of the 40 ms windows [n, 640] `rows`."""
    out = np.empty(len(rows))
    for i in range(0, len(rows), _BATCH):
        out[i : i + _BATCH] = _f0(_centred(windows[rows[i : i + _BATCH]]))
    return out


def _f0(frames: np.ndarray) -> np.ndarray:
    """f0 (Hz, 0 if unvoiced) of centred windows [n, 640] (float32, windowed in place), from their
    autocorrelation.

    In float32, through FFTs of `_AC_FFT` points: the autocorrelation is exact up to lag
    `_AC_FFT` - 640 (384, past the longest period searched), and the wrapped part beyond it only
    matters to a window whose autocorrelation stays positive that far (no pitch in range)."""
    win = frames.shape[1]
    frames *= _WINDOW
    spec = np.fft.rfft(frames, n=_AC_FFT)
    ac = np.fft.irfft(spec.real**2 + spec.imag**2, n=_AC_FFT)[:, :win]
    # search past the first zero crossing, so the main lobe around lag 0 is never taken for a period
    # (the divisor is positive: normalising changes no sign, so only the lags searched are normalised)
    first_negative = np.argmax(ac < 0, axis=1)
    band = ac[:, _LAGS] / np.maximum(ac[:, :1], 1e-12)
    band[_LAG_RANGE[None, :] < first_negative[:, None]] = -1.0
    lag = np.argmax(band, axis=1)
    peak = band[np.arange(len(lag)), lag]
    return np.where(peak > 0.45, SAMPLE_RATE / (_LAGS.start + lag), 0.0)
