import numpy as np
import pytest
import soundfile as sf

from talkface import TalkfaceError, load_audio


def tone(seconds: float = 1.0, rate: int = 44100) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_file_is_decoded_downmixed_and_resampled(tmp_path):
    stereo = np.stack([tone(), tone()], axis=1)
    path = tmp_path / "a.flac"
    sf.write(path, stereo, 44100)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 16000) <= 2
    assert 0.25 < np.abs(audio).max() < 0.35


def test_int16_array_is_scaled():
    pcm = (tone(rate=16000) * 32767).astype(np.int16)
    audio = load_audio(pcm, 16000)
    assert 0.25 < np.abs(audio).max() < 0.35


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "not a readable audio file"), (b"RIFF\x00\x00\x00\x00WAVEgarbage", "not a readable audio file")],
)
def test_corrupt_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(TalkfaceError, match=message):
        load_audio(path)


def test_missing_file(tmp_path):
    with pytest.raises(TalkfaceError, match="no such audio file"):
        load_audio(tmp_path / "nope.wav")


def test_empty_silent_and_nonfinite_audio_are_rejected(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(TalkfaceError, match="empty"):
        load_audio(path)
    with pytest.raises(TalkfaceError, match="silent"):
        load_audio(np.zeros(16000, np.float32), 16000)
    bad = tone(rate=16000)
    bad[100] = np.nan
    with pytest.raises(TalkfaceError, match="NaN"):
        load_audio(bad, 16000)


def test_array_needs_a_rate_and_long_audio_is_refused(monkeypatch):
    with pytest.raises(TalkfaceError, match="sample_rate"):
        load_audio(tone())
    monkeypatch.setattr("talkface.audio.MAX_SECONDS", 0.5)
    with pytest.raises(TalkfaceError, match="longer than"):
        load_audio(tone(rate=16000), 16000)
