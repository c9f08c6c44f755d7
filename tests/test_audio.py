import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from talkface import TalkfaceError, load_audio
from talkface.audio import to_mono


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


def test_a_file_decoded_a_block_at_a_time_gives_the_samples_of_the_whole_array(tmp_path, monkeypatch):
    import talkface.audio

    rng = np.random.default_rng(0)
    stereo = (0.1 * rng.standard_normal((48000 * 5 + 123, 2))).astype(np.float32)
    path = tmp_path / "b.wav"
    sf.write(path, stereo, 48000, subtype="FLOAT")
    whole = load_audio(stereo, 48000)
    real = talkface.audio.audio_blocks
    monkeypatch.setattr(talkface.audio, "audio_blocks", lambda p: real(p, seconds=0.7))  # many blocks
    np.testing.assert_array_equal(load_audio(path), whole)


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
    with pytest.raises(TalkfaceError, match="cannot hold a NUL"):  # (a NUL in the name was a ValueError)
        load_audio(f"{tmp_path}/a\0.wav")


def test_an_array_of_channels_by_samples_is_refused_not_taken_for_one_frame():
    """[2, n] was read as n channels of 2 samples: "silent", or a clip of two samples' length."""
    stereo = np.stack([tone(rate=16000), tone(rate=16000)])
    assert load_audio(stereo.T, 16000).size == 16000
    with pytest.raises(TalkfaceError, match="transpose one that is \\[channels, samples\\]"):
        load_audio(stereo, 16000)


def test_a_short_chunk_of_channels_by_samples_is_refused_but_few_samples_of_few_channels_are_not():
    """A stream chunk channels first ([1, 320], as torchaudio gives) became one sample of 320 channels."""
    chunk = tone(rate=16000)[:320]
    for transposed in (chunk[None, :], np.stack([chunk, chunk])):
        with pytest.raises(TalkfaceError, match="transpose one that is \\[channels, samples\\]"):
            to_mono(transposed)
    assert to_mono(np.stack([chunk, chunk], axis=1)).size == 320
    assert to_mono(np.full((1, 2), 0.5, np.float32)).tolist() == [0.5]  # one frame of stereo
    assert to_mono(np.full((4, 16), 0.5, np.float32)).size == 4  # four frames of 16 channels


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


def test_float_samples_far_beyond_full_scale_are_refused(tmp_path):
    """1e30 in a float WAV is no sound talkface can hear (its squares overflow); nor are integers stored as floats."""
    for peak in (1e30, 32767.0):
        sf.write(tmp_path / "loud.wav", tone(rate=16000) * np.float32(peak), 16000, subtype="FLOAT")
        with pytest.raises(TalkfaceError, match="float audio lies within"):
            load_audio(tmp_path / "loud.wav")
    sf.write(tmp_path / "hot.wav", tone(rate=16000) * np.float32(4.0), 16000, subtype="FLOAT")  # hot, but audio
    assert np.abs(load_audio(tmp_path / "hot.wav")).max() == pytest.approx(1.2, rel=0.05)


def test_a_file_longer_than_allowed_is_refused_from_its_header_before_any_decoding(tmp_path):
    """A 5-hour WAV (sparse: header and a hole) is refused when it is opened, not after hours of work."""
    from talkface.audio import audio_blocks

    path = tmp_path / "five-hours.wav"
    data = 5 * 3600 * 16000 * 2
    header = b"RIFF" + (36 + data).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
    header += (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (16000).to_bytes(4, "little")
    header += (32000).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    path.write_bytes(header + b"data" + data.to_bytes(4, "little"))
    os.truncate(path, 44 + data)
    with pytest.raises(TalkfaceError, match="longer than 4 hours"):
        audio_blocks(path)  # raised by the call itself, before a block is read


def test_array_needs_a_rate_and_long_audio_is_refused(monkeypatch):
    with pytest.raises(TalkfaceError, match="sample_rate"):
        load_audio(tone())
    monkeypatch.setattr("talkface.audio.MAX_SECONDS", 0.5)
    with pytest.raises(TalkfaceError, match="longer than"):
        load_audio(tone(rate=16000), 16000)


def test_a_file_read_in_blocks_is_checked_like_a_whole_one(tmp_path):
    from talkface.audio import audio_blocks

    stereo = np.stack([tone(3.0), tone(3.0)], axis=1)
    sf.write(tmp_path / "ok.wav", stereo, 44100)
    rate, blocks = audio_blocks(tmp_path / "ok.wav", seconds=1.0)
    parts = list(blocks)
    assert rate == 44100 and [p.size for p in parts] == [44100] * 3 and parts[0].ndim == 1
    late_nan = tone(3.0, 16000)
    late_nan[-10] = np.nan
    cases = {"nan.wav": (late_nan, "NaN"), "silent.wav": (np.zeros(48000, np.float32), "silent"),
             "empty.wav": (np.zeros(0, np.float32), "empty")}  # fmt: skip
    for name, (audio, message) in cases.items():
        sf.write(tmp_path / name, audio, 16000, subtype="FLOAT")
        with pytest.raises(TalkfaceError, match=message):
            list(audio_blocks(tmp_path / name, seconds=1.0)[1])
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage")
    with pytest.raises(TalkfaceError, match="not a readable audio file"):
        audio_blocks(tmp_path / "bad.wav")


def test_a_file_animated_a_minute_at_a_time_gives_the_frames_of_the_whole_array(tmp_path, monkeypatch):
    from talkface import Animator
    from talkface.audio import audio_blocks

    speech = load_audio(Path(__file__).parent / "data" / "arctic_a0009.wav")
    sf.write(tmp_path / "s.wav", speech, 16000, subtype="FLOAT")
    monkeypatch.setattr("talkface.animator.audio_blocks", lambda p: audio_blocks(p, seconds=0.37))
    animator = Animator()
    from_file, from_array = animator.animate(tmp_path / "s.wav"), animator.animate(speech, sample_rate=16000)
    assert from_file.num_frames == from_array.num_frames
    np.testing.assert_allclose(from_file.weights, from_array.weights, atol=1e-5)


def test_many_channels_at_a_high_rate_are_decoded_in_small_blocks(tmp_path, monkeypatch):
    """A block is a minute, or less where its samples of all channels would pass `_BLOCK_VALUES`: a
    short file of 8 channels at 192 kHz took gigabytes to decode (a limit of 2**16 stands for 2**23)."""
    path = tmp_path / "many.flac"
    sf.write(path, np.tile(np.sin(np.arange(3 * 192000) / 30)[:, None], (1, 8)) * 0.3, 192000, subtype="PCM_16")
    import talkface.audio

    monkeypatch.setattr(talkface.audio, "_BLOCK_VALUES", 1 << 16)
    rate, blocks = talkface.audio.audio_blocks(path)
    sizes = [len(b) for b in blocks]
    assert rate == 192000 and sum(sizes) == 3 * 192000 and max(sizes) <= (1 << 16) // 8


@pytest.mark.parametrize(("rate", "message"), [(float("nan"), "whole number"), (16000.5, "whole number"),
                                               (10**12, "from 1 to 384000"), (0, "from 1 to 384000")])  # fmt: skip
def test_an_arrays_sample_rate_is_a_whole_number_in_range(rate, message):
    """NaN was a ValueError from int(), 16000.5 was cut to 16000 and 1e12 Hz made an empty animation."""
    with pytest.raises(TalkfaceError, match=message):
        load_audio(tone(), rate)
    assert load_audio(tone(rate=16000), np.int32(16000)).size == 16000  # (a numpy integer is a whole number)


def test_a_source_that_is_neither_a_path_nor_an_array_is_refused_and_no_descriptor_closed(tmp_path):
    """An int was taken for a file descriptor, which soundfile closed: animate(1) closed standard output."""
    from talkface import Animator

    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        for source in (fd, None, [0.1, 0.2]):
            with pytest.raises(TalkfaceError, match="a file path or a numpy array"):
                Animator().animate(source)  # type: ignore[arg-type]
        os.fstat(fd)  # still open
    finally:
        os.close(fd)


def test_unsigned_integer_pcm_is_centred_on_its_midpoint_not_given_a_dc_offset():
    """8-bit WAV PCM is unsigned, silence at 128: it was scaled as is, a DC offset of +0.5 under the voice."""
    signed = (tone(rate=16000) * 127).astype(np.int8)
    unsigned = (signed.astype(np.int16) + 128).astype(np.uint8)
    np.testing.assert_array_equal(load_audio(unsigned, 16000), load_audio(signed, 16000))
    wide = (signed.astype(np.int32) * 256 + 32768).astype(np.uint16)
    assert abs(float(load_audio(wide, 16000).mean())) < 1e-3


def test_a_bad_target_rate_or_an_array_of_no_channels_is_one_clear_error():
    """A target rate of 0 was soxr's ValueError, of text a TypeError; [n, 0] was "contains NaN", with warnings."""
    for rate, message in [(0, "target rate must be from 1"), ("fast", "target rate must be a whole number")]:
        with pytest.raises(TalkfaceError, match=message):
            load_audio(tone(rate=16000), 16000, target_rate=rate)
    with pytest.raises(TalkfaceError, match="audio of 0 channels"):
        load_audio(np.zeros((100, 0), np.float32), 16000)
