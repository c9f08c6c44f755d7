"""The frozen Whisper speech encoder: log-mel front end, frame grid, windowing of long audio, checksum."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from talkface.encoder import (
    CONTEXT_SECONDS,
    FEATURE_DIM,
    FRAME,
    SAMPLE_RATE,
    WINDOW_SECONDS,
    EncoderState,
    SpeechEncoder,
    default_encoder_path,
    mel_filters,
    whisper_log_mel,
)
from talkface.errors import TalkfaceError

WINDOW = int(WINDOW_SECONDS * SAMPLE_RATE)


@pytest.fixture(scope="module")
def encoder() -> SpeechEncoder:
    return SpeechEncoder()


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    audio, rate = sf.read(Path(__file__).parent / "data" / "arctic_a0009.wav", dtype="float32")
    assert rate == SAMPLE_RATE
    return audio


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.01, int(seconds * SAMPLE_RATE)).astype(np.float32)


def test_log_mel_shape_range_and_scale() -> None:
    audio = _noise(1.0)
    mel = whisper_log_mel(audio)
    assert mel.shape == (80, SAMPLE_RATE // 160)
    gapped = whisper_log_mel(np.concatenate([np.zeros(4000, np.float32), 10 * audio]))
    assert gapped.min() == pytest.approx(gapped.max() - 2.0)  # silence meets the (max - 8) clamp, after (x + 4) / 4
    # Ten times the amplitude is 100 times the power: +2 in log10, +0.5 after the scaling.
    np.testing.assert_allclose(whisper_log_mel(10 * audio), mel + 0.5, atol=1e-4)


def test_log_mel_sine_peaks_in_its_mel_band() -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    for hz in (320.0, 1000.0, 4000.0):
        mel = whisper_log_mel((0.1 * np.sin(2 * np.pi * hz * t)).astype(np.float32))
        fft_bin = round(hz / (SAMPLE_RATE / 400))
        assert mel.mean(1).argmax() == mel_filters()[:, fft_bin].argmax()
    # The 1 kHz band: Slaney's scale is linear below 1 kHz, so some filter peaks within 25 Hz of it.
    peaks = mel_filters().argmax(1) * SAMPLE_RATE / 400
    assert np.abs(peaks - 1000).min() <= 25


def test_frame_count_for_any_length(encoder: SpeechEncoder) -> None:
    for n in (0, 1, 319, 320, 321, 5 * SAMPLE_RATE + 7, WINDOW, WINDOW + 1):
        feats = encoder.features(_noise(n / SAMPLE_RATE))
        assert feats.shape == (-(-n // FRAME), FEATURE_DIM) and feats.dtype == np.float32
        assert np.isfinite(feats).all()


def test_long_audio_is_windowed_on_the_whole_clip_frame_grid(encoder: SpeechEncoder) -> None:
    """Clicks near every window join move the frames they should: frame i is centred on sample 320 i."""
    audio = _noise(70.0)
    plain = encoder.features(audio)
    assert plain.shape == (3500, FEATURE_DIM) and np.isfinite(plain).all()
    step = int((WINDOW_SECONDS - 2 * CONTEXT_SECONDS) * SAMPLE_RATE) // FRAME
    clicks = [j + d for j in range(step, 3500, step) for d in (-3, 0, 4)]
    clicked = audio.copy()
    clicked[np.array(clicks) * FRAME] += 0.5
    moved = np.linalg.norm(encoder.features(clicked) - plain, axis=1)
    for k in clicks:
        near = moved[k - 2 : k + 3]
        # On a short clip too a click at 320 k moves frames k and k + 1 most (the convolutions lean late).
        assert k + near.argmax() - 2 in (k, k + 1), (k, near)
    assert moved[clicks[0] - 40 : clicks[0] - 20].max() < moved[clicks[0]]  # far frames barely move


def test_window_joins_are_seamless(encoder: SpeechEncoder, speech: np.ndarray) -> None:
    """Each frame of a long file is the frame its own window gives: no gap or repeat at a join."""
    audio = np.tile(speech, 12)[: 45 * SAMPLE_RATE]
    feats = encoder.features(audio)
    context = int(CONTEXT_SECONDS * SAMPLE_RATE) // FRAME
    step = int(WINDOW_SECONDS * SAMPLE_RATE) // FRAME - 2 * context
    for join in range(step, len(feats), step):
        before = encoder.features(audio[max(0, join - step - context) * FRAME : (join + context) * FRAME])
        after = encoder.features(audio[(join - context) * FRAME : (join + step + context) * FRAME])
        np.testing.assert_allclose(feats[join - 1], before[-context - 1], atol=1e-4)
        np.testing.assert_allclose(feats[join], after[context], atol=1e-4)


def test_silence_and_speech_differ(encoder: SpeechEncoder, speech: np.ndarray) -> None:
    silence = encoder.features(np.zeros(SAMPLE_RATE, np.float32))
    voiced = encoder.features(speech[:SAMPLE_RATE])
    cosine = (silence * voiced).sum(1) / (np.linalg.norm(silence, axis=1) * np.linalg.norm(voiced, axis=1))
    assert cosine.mean() < 0.9
    assert np.ptp(voiced, axis=0).mean() > 2 * np.ptp(silence, axis=0).mean()  # speech varies, silence barely


def test_tampered_or_lonely_encoder_is_refused(tmp_path) -> None:
    path = tmp_path / "enc.onnx"
    shutil.copy(default_encoder_path(), path)
    shutil.copy(default_encoder_path().with_suffix(".json"), path.with_suffix(".json"))
    SpeechEncoder(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(TalkfaceError, match="checksum"):
        SpeechEncoder(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(TalkfaceError, match="no such speech encoder"):
        SpeechEncoder(path)


def test_audio_in_chunks_gives_the_whole_clip_features(encoder: SpeechEncoder, speech: np.ndarray) -> None:
    """`advance` (streams) and `features` (files) are one implementation: any chunking, same frames."""
    long = np.tile(speech, 12)[: 50 * 16000]  # 50 s: three windows
    whole = encoder.features(long)
    for chunk in (4001, 16000 * 7):
        state, parts = EncoderState(), []
        for i in range(0, len(long), chunk):
            parts.append(encoder.advance(state, long[i : i + chunk]))
        parts.append(encoder.advance(state, np.zeros(0, np.float32), ending=True))
        np.testing.assert_array_equal(np.concatenate(parts), whole)
        assert len(state.audio) <= 24 * 16000  # only a window's audio is kept
