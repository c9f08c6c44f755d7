import numpy as np

from talkface.features import FRAME_RATE, N_MELS, log_mel, num_frames


def chirp(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * (200 + 1500 * t) * t)).astype(np.float32)


def test_shape_and_rate():
    mel = log_mel(chirp(1.234))
    assert FRAME_RATE == 100 and mel.shape == (num_frames(19744), N_MELS) == (124, 80)
    assert mel.dtype == np.float32 and np.isfinite(mel).all()


def test_slices_equal_the_whole():
    audio = chirp(2.0)
    whole = log_mel(audio)
    parts = np.concatenate([log_mel(audio, 0, 7), log_mel(audio, 7, 130), log_mel(audio, 130)])
    np.testing.assert_allclose(parts, whole, atol=1e-5)


def test_energy_follows_the_signal():
    audio = np.concatenate([np.zeros(8000, np.float32), chirp(0.5)])
    mel = log_mel(audio)
    assert mel[:40].max() < -11 < mel[60:].mean()  # digital silence sits at the floor
    # the chirp rises in pitch: its strongest band moves up over time
    assert mel[90:100].argmax(axis=1).mean() > mel[55:70].argmax(axis=1).mean() + 5
