"""Streaming SDK: chunks in, final frames out, identical to offline `animate` with the same model.

An `Animator` streams with the live model and animates files with the speech-encoder model; given
one model (`Animator(model=...)`) it uses that for both, which is how offline and streaming are
compared here.
"""

import gc

import numpy as np
import pytest
import soundfile as sf
import soxr
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from talkface import Animation, Animator, TalkfaceError, load_audio
from talkface.articulation import Articulations
from talkface.engine import Engine
from talkface.model import OFFLINE_MODEL, default_model_path, load_default
from talkface.post import EmotionSettings, FaceParams, LifeConfig, Style
from talkface.rig import INDEX
from talkface.stream import Stream, _resample_all, advance

TOL = 1e-5
LIVE, FILES = str(default_model_path()), str(default_model_path(OFFLINE_MODEL))


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    """16 kHz real speech: ARCTIC a0009 three times with pauses (about 11 s)."""
    clip = load_audio("tests/data/arctic_a0009.wav")
    gap = np.zeros(int(0.7 * 16000), np.float32)
    return np.concatenate([clip, gap, clip * 0.6, gap, clip])


def run(session: Stream, audio: np.ndarray, chunk: int, rate: int | None = None) -> Animation:
    parts = [session.push(audio[i : i + chunk], rate) for i in range(0, len(audio), chunk)]
    return Animation.join([*parts, session.flush()])


@pytest.mark.parametrize(("model", "chunk"), [(LIVE, 37), (LIVE, 320), (LIVE, 4801), (FILES, 333), (FILES, 48000)])
def test_any_chunking_gives_the_offline_frames(speech, model, chunk):
    style = Style(emotion={"joy": 0.6}, face=FaceParams(lower_face_smoothing=0.03), seed=4)
    animator = Animator(model=model, style=style)
    offline = animator.animate(speech, sample_rate=16000)
    streamed = run(animator.stream(), speech, chunk)
    assert streamed.names == offline.names and streamed.num_frames == offline.num_frames
    np.testing.assert_allclose(streamed.weights, offline.weights, atol=TOL)


def test_other_sample_rates_and_integer_pcm(speech, tmp_path):
    pcm48 = (soxr.resample(speech, 16000, 48000) * 20000).astype(np.int16)
    path = tmp_path / "speech48.wav"
    sf.write(path, pcm48, 48000)
    animator = Animator(fps=60, model=LIVE)
    offline = animator.animate(path)
    streamed = run(animator.stream(sample_rate=48000), pcm48, 960, 48000)  # 20 ms chunks
    assert streamed.num_frames == offline.num_frames
    # soxr's streaming resampler and its one-shot call differ in the last bits
    assert np.abs(streamed.weights - offline.weights).max() < 2e-3


def test_frames_come_within_the_documented_latency(speech):
    for fps in (24, 25, 29.97, 30, 60, 120):
        assert 0.09 < Animator(fps=fps).stream().latency <= 0.1
    for fps in (30, 24):
        session = Animator(fps=fps).stream()
        hop = 80  # 5 ms
        for i in range(0, 3 * 16000, hop):
            session.push(speech[i : i + hop])
            heard = (i + hop) / 16000
            # every frame whose audio (its time + latency) has arrived is out; none before its
            # look-ahead and analysis window have (less the 2.5 ms a frame may snap back)
            assert session.frames_out >= max(0, np.floor((heard - session.latency) * fps + 1e-6) + 1)
            assert session.frames_out <= max(0, np.floor((heard - 0.090) * fps + 1e-6) + 1)


def test_emotion_and_face_change_mid_stream(speech):
    style = Style(emotion_settings=EmotionSettings(transition=0.1), life=LifeConfig.off())
    animator = Animator(model=LIVE, style=style)
    plain = animator.animate(speech, sample_rate=16000)
    session = animator.stream()
    half = 5 * 16000
    first = session.push(speech[:half])
    session.set_emotion("joy=1")
    session.set_face(FaceParams(jaw_strength=0.0))
    rest = run(session, speech[half:], 1600)
    np.testing.assert_allclose(first.weights, plain.weights[: first.num_frames], atol=TOL)
    later = slice(first.num_frames + 15, None)  # after the 0.1 s transition
    smile = INDEX["mouthSmileLeft"]
    assert (rest.weights[15:, smile] > plain.weights[later, smile] + 0.3).all()
    assert rest.weights[:, INDEX["jawOpen"]].max() == 0 and plain.weights[later, INDEX["jawOpen"]].max() > 0.1


def test_liveliness_streams_blinks_gaze_and_head(speech):
    anim = Animator(style=Style(seed=2)).animate(np.tile(speech, 3), sample_rate=16000)  # ~33 s
    blink = anim["eyeBlinkLeft"]
    closings = np.flatnonzero((blink[1:] > 0.6) & (blink[:-1] <= 0.6))
    assert 4 <= closings.size <= 25
    yaw = np.degrees(anim["headYaw"])
    assert 0.3 < yaw.std() < 5 and np.abs(np.degrees(anim["headPitch"])).max() < 15
    assert np.abs(np.diff(anim["leftEyeYaw"])).max() > np.radians(2)  # saccades
    assert (
        Animator(style=Style(seed=3)).animate(speech, sample_rate=16000).weights.tolist()
        != anim.weights[: len(speech) * 30 // 16000].tolist()
    )


def test_bad_chunks_are_refused_and_the_stream_goes_on(speech):
    session = Animator().stream()
    session.push(speech[:1600])
    for bad, message in [
        (np.array([0.1, np.nan]), "NaN"),
        (np.zeros((2, 2, 2)), "1-D"),
        (np.array(["a"]), "numeric"),
        ([[0.1, 0.2], [0.1]], "rows of one length"),  # (was numpy's ValueError)
    ]:
        with pytest.raises(TalkfaceError, match=message):
            session.push(bad)
    with pytest.raises(TalkfaceError, match="44100"):
        session.push(speech[:100], 44100)
    session.push(speech[1600:3200])
    assert session.flush().num_frames > 0
    with pytest.raises(TalkfaceError, match="flushed"):
        session.push(speech[:100])
    with pytest.raises(TalkfaceError, match="sample rate"):
        Animator().stream(sample_rate=12.5)  # type: ignore[arg-type]
    with pytest.raises(TalkfaceError, match="neural"):
        Animator(engine="phonetic").stream()


def test_settings_of_the_wrong_type_are_refused_and_the_stream_goes_on(speech):
    """set_face(dict) was taken, and every push after it an AttributeError; set_emotion(list) was one at once."""
    session = Animator().stream(sample_rate=16000.0)  # a whole number of Hz as a float, as load_audio takes it
    session.push(speech[:1600], np.int64(16000))
    for call, value in [(session.set_face, {"jaw_strength": 1.0}), (session.set_face, None),
                        (session.set_emotion, ["joy"]), (session.set_emotion, 0.5)]:  # fmt: skip
        with pytest.raises(TalkfaceError, match="must be"):
            call(value)
    session.push(speech[1600:3200], 16000.0)
    assert session.flush().num_frames > 0


def test_an_empty_stream_flushes_to_nothing():
    anim = Animator().stream().flush()
    assert anim.num_frames == 0


def test_streams_advanced_together_get_the_frames_each_gets_alone(speech):
    """A server advances its streams in one batch (model, prosody and post for all at once): each
    gets the frames it would get alone (to float rounding), whenever it starts and ends."""
    engine, audio, fps = Engine(load_default()), speech[:56000], [30, 25, 60, 30]
    starts, ticks = [0, 3, 11, 0], [175, 150, 175, 90]  # 20 ms chunks: the first tick, how many
    streams = [Stream(engine, f, Style(seed=i)) for i, f in enumerate(fps)]
    together: list[list[np.ndarray]] = [[] for _ in streams]
    for tick in range(max(s + n for s, n in zip(starts, ticks, strict=True)) + 1):
        going = [i for i, (s, n) in enumerate(zip(starts, ticks, strict=True)) if s <= tick < s + n]
        for i in going:
            streams[i].write(audio[(tick - starts[i]) * 320 : (tick - starts[i] + 1) * 320])
        for i, anim in zip(going, advance(engine, [streams[i] for i in going]), strict=True):
            together[i].append(anim.weights)
        for i in (i for i, (s, n) in enumerate(zip(starts, ticks, strict=True)) if tick == s + n):
            together[i].append(streams[i].flush().weights)
    for i, f in enumerate(fps):
        alone = Stream(engine, f, Style(seed=i))
        frames = [alone.push(audio[k * 320 : (k + 1) * 320]).weights for k in range(ticks[i])]
        frames.append(alone.flush().weights)
        np.testing.assert_allclose(np.concatenate(together[i]), np.concatenate(frames), atol=TOL)


def test_a_server_opening_and_closing_streams_keeps_its_memory_bounded(speech):
    """Streams keep the network's history in rows of shared buffers: a stream that is gone gives its
    row back, and a stream that takes it over starts from silence, as on a fresh engine."""
    engine, audio = Engine(load_default()), speech[:16000]
    for _ in range(300):  # one after another, as a server's clients come and go
        run(Stream(engine, 30, Style(life=LifeConfig.off())), audio, 320)
    gc.collect()
    assert engine.net.rings[0].shape[0] <= 8
    taken_over = run(Stream(engine, 30, Style(life=LifeConfig.off())), audio[::-1].copy(), 320)
    fresh = run(Stream(Engine(load_default()), 30, Style(life=LifeConfig.off())), audio[::-1].copy(), 320)
    np.testing.assert_allclose(taken_over.weights, fresh.weights, atol=TOL)


def test_steps_of_every_size_keep_the_step_nets_cache_bounded():
    """A stream's steps come in any number of frames (its chunks, a server's ticks): the tap rows cached
    per (frames, dilation) stay bounded however many sizes a long-lived process has seen (they were kept
    for every size: up to 3000 × 6 entries, 700 MB, for a stream whose chunks vary up to 30 s)."""
    from talkface.convnet import _tap_rows

    net = Engine(load_default()).net
    state = net.state()
    mel = np.random.default_rng(0).normal(-5, 3, (120, 80)).astype(np.float32)
    for n in range(1, 121):  # 120 step sizes × 6 blocks
        net.run([state], [mel[:n]])
    assert _tap_rows.cache_info().currsize <= 256


def test_step_net_and_windowed_fallback_agree_with_onnxruntime(speech):
    model = load_default()
    engine = Engine(model)
    assert engine.net is not None
    fallback = Engine(model)
    fallback.net = None
    style = Style(life=LifeConfig.off())
    a = run(Stream(engine, 30, style), speech[:32000], 700)
    b = run(Stream(fallback, 30, style), speech[:32000], 700)
    np.testing.assert_allclose(a.weights, b.weights, atol=1e-4)


def test_closures_hold_from_the_second_frame_and_release_over_30_ms():
    from talkface.phonemes import VISEMES

    visemes = np.full((12, len(VISEMES)), -5.0, np.float32)
    visemes[:, VISEMES.index("aa")] = 0
    visemes[3:7, VISEMES.index("PP")] = 5  # /p/ heard for 40 ms
    weights = np.zeros((12, 52), np.float32)
    weights[:, INDEX["jawOpen"]] = 0.4
    Articulations(100.0).apply(weights, visemes)
    press = weights[:, INDEX["mouthClose"]]
    assert press[3] == 0 and (press[4:7] >= 0.4).all()  # the lips meet however open the jaw is
    assert press[6] > press[7] > press[8] > press[9] == 0


def test_a_closure_heard_for_two_frames_is_held_whole_for_20_ms():
    from talkface.phonemes import VISEMES

    visemes = np.full((10, len(VISEMES)), -5.0, np.float32)
    visemes[:, VISEMES.index("aa")] = 0
    visemes[3:5, VISEMES.index("PP")] = 5  # /b/ heard for only 20 ms
    weights = np.zeros((10, 52), np.float32)
    weights[:, INDEX["jawOpen"]] = 0.4
    Articulations(100.0).apply(weights, visemes)
    press = weights[:, INDEX["mouthClose"]]
    assert press[3] == 0 and press[4] == press[5] == 0.4  # whole from the second frame heard, for 20 ms
    assert press[5] > press[6] > press[7] > press[8] == 0


def test_a_20_ms_closure_between_two_30_fps_frames_is_still_seen_closed():
    from talkface.metrics import CLOSED_BELOW, lip_aperture
    from talkface.phonemes import VISEMES

    frames = np.zeros((14, 52 + len(VISEMES)), np.float32)
    frames[:, INDEX["jawOpen"]] = 0.4
    frames[:, 52 + VISEMES.index("aa")] = 5
    frames[6:8, 52 + VISEMES.index("PP")] = 9  # /b/ heard at 60 and 70 ms: held whole at 70 and 80 ms
    session = Stream(Engine(load_default()), 30, Style(life=LifeConfig.off()))
    out = _resample_all(session.engine, [session], [frames])[0]  # 30 fps frames at 0, 33, 67, 100 ms; none at 70, 80
    # 67 ms shows the closure whole (the lips meet: mouthClose cancels jawOpen), not a blend with 60 ms
    assert out[2, INDEX["mouthClose"]] == pytest.approx(out[2, INDEX["jawOpen"]])
    aperture = lip_aperture(Animation(out, 30.0))
    assert aperture[2] < CLOSED_BELOW and aperture[1] > CLOSED_BELOW and aperture[3] > CLOSED_BELOW


def test_a_rounded_vowel_the_viseme_head_hears_is_seen_rounded_and_eased_out():
    from talkface.metrics import ROUNDED_AT
    from talkface.phonemes import VISEMES

    visemes = np.full((20, len(VISEMES)), -5.0, np.float32)
    visemes[:, VISEMES.index("E")] = 0
    visemes[3:9, VISEMES.index("ou")] = 5  # /uw/ heard for 60 ms
    weights = np.zeros((20, 52), np.float32)
    weights[:, INDEX["mouthPucker"]] = 0.1  # the regression's damped rounding
    weights[12, INDEX["mouthPucker"]] = 0.9  # rounder than the floor: kept as it is
    Articulations(100.0).apply(weights, visemes)
    rounding = weights[:, INDEX["mouthPucker"]] + weights[:, INDEX["mouthFunnel"]]
    assert rounding[3] == pytest.approx(0.1)  # one frame heard is not enough
    assert (rounding[4:9] > ROUNDED_AT).all()
    assert (np.diff(rounding[8:12]) < 0).all() and weights[12, INDEX["mouthPucker"]] == pytest.approx(0.9)
    assert rounding[17:] == pytest.approx(0.1)  # eased out within 80 ms


def test_the_speech_encoder_model_streams_a_long_file_as_it_animates_it(speech):
    """Past the encoder's 20 s window the audio is encoded in windows as it arrives: same frames."""
    long = np.tile(speech, 3)  # ~33 s
    animator = Animator(model=FILES, style=Style(life=LifeConfig.off()))
    offline = animator.animate(long, sample_rate=16000)
    session = animator.stream()
    streamed = run(session, long, 7919)
    np.testing.assert_allclose(streamed.weights, offline.weights, atol=TOL)
    assert session.latency > 10  # frames wait for their window: not for live use


def test_files_use_the_encoder_model_and_streams_the_live_one(speech):
    animator = Animator()
    assert animator.model.input == "speech-encoder" and animator.stream_model.input == "log-mel"
    assert animator.stream().latency <= 0.1


def syllables(seconds: float, level: float, rng: np.random.Generator) -> np.ndarray:
    """Noise in 5 Hz bursts at `level` (RMS): speech-like loudness, no model needed to hear it."""
    t = np.arange(int(seconds * 16000)) / 16000
    return (level * (0.6 + 0.4 * np.sin(2 * np.pi * 5 * t)) * rng.standard_normal(t.size)).astype(np.float32)


def mouth_through_post(audio: np.ndarray, fps: float = 30.0) -> np.ndarray:
    """jawOpen after stream post-processing when the model says "jaw half open" on every frame."""
    from talkface.post.driver import Post
    from talkface.post.prosody import Listener, reader

    post, listener = Post(Style(life=LifeConfig.off()), fps), Listener(fps)
    n = int(len(audio) / 16000 * fps)
    speech = np.zeros((n, 52), np.float32)
    speech[:, INDEX["jawOpen"]] = 0.5

    samples = reader(audio)
    blocks = [speech[i : i + 7] for i in range(0, n, 7)]
    return np.concatenate([post.process(b, listener.cues(post.frame, len(b), samples)).weights[:, INDEX["jawOpen"]]
                           for b in blocks])  # fmt: skip


def test_the_face_rests_where_no_voice_is_heard():
    """Whatever the model says in a pause, the mouth rests there (eased in and out within ~0.2 s);
    quiet words right after a shout still move it."""
    rng = np.random.default_rng(0)
    quiet = 1e-4 * rng.standard_normal(16000).astype(np.float32)  # a room at -80 dB
    jaw = mouth_through_post(np.concatenate([syllables(1.0, 0.1, rng), quiet, syllables(1.0, 0.1, rng)]))
    assert jaw[15:28].min() > 0.2  # speaking
    assert jaw[38:52].max() < 0.02  # the pause, from 0.27 s after the voice stops to 0.27 s before it comes
    assert jaw[66:].min() > 0.2  # speaking again
    shout = np.concatenate([syllables(0.3, 0.5, rng), syllables(2.0, 0.5 / 10 ** (20 / 20), rng)])
    assert mouth_through_post(shout)[40:].min() > 0.2  # 20 dB quieter words, 1 s after the shout


def test_music_under_the_voice_does_not_move_the_mouth_in_its_pauses():
    """However loud a background (here a chord and a drum every 250 ms, 6-13 dB under the voice), the
    mouth rests where only it is heard and moves where the voice rises over it."""
    rng = np.random.default_rng(1)
    t = np.arange(3 * 16000) / 16000
    music = 0.02 * np.sin(2 * np.pi * 220 * t) + 0.03 * (np.mod(t, 0.25) < 0.04) * rng.standard_normal(t.size)
    voice = np.concatenate([syllables(1.0, 0.1, rng), np.zeros(16000, np.float32), syllables(1.0, 0.1, rng)])
    jaw = mouth_through_post((voice + music).astype(np.float32))
    assert jaw[15:28].min() > 0.2
    assert jaw[38:52].max() < 0.02
    assert jaw[66:].min() > 0.2


@pytest.mark.parametrize("fps", [0, -1, float("nan"), 1e6, "30"])
def test_a_frame_rate_beyond_what_talkface_writes_is_refused(speech, fps):
    """fps=1e6 filled memory (MemoryError), "30" was a TypeError and 0 quietly meant the default."""
    with pytest.raises(TalkfaceError, match="fps must be"):
        Animator().animate(speech, sample_rate=16000, fps=fps)
    with pytest.raises(TalkfaceError, match="fps must be"):
        Animator().stream(fps=fps)
    with pytest.raises(TalkfaceError, match="fps must be"):
        Animator(fps=fps)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"frame_rate": -100}, "frame_rate must be from"),  # a stream never ended
        ({"frame_rate": "fast"}, "frame_rate must be a number"),
        ({"lookahead": 10**9}, "lookahead must be from"),  # 298 GB of padding
        ({"receptive_field": None}, "gives no receptive_field"),  # (None: left out) was a KeyError
        ({"emotion_dim": 11}, "the model takes 10"),
        ({"names": None}, "other features or channels"),
    ],
)
def test_a_model_whose_metadata_is_malformed_is_one_error(tmp_path, change, fragment):
    import json
    import shutil

    from talkface.model import FaceModel

    source = default_model_path()
    shutil.copy(source, tmp_path / "m.onnx")
    meta = json.loads(source.with_suffix(".json").read_text()) | change
    (tmp_path / "m.json").write_text(json.dumps({k: v for k, v in meta.items() if v is not None}))
    with pytest.raises(TalkfaceError, match=fragment):
        FaceModel(tmp_path / "m.onnx")
    (tmp_path / "m.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(TalkfaceError, match="nested too deeply"):
        FaceModel(tmp_path / "m.onnx")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seconds=st.floats(0.3, 4.0), fps=st.one_of(st.just(1.0), st.floats(1.0, 12.0)), chunk=st.integers(160, 20000))
@example(seconds=11250 / 16000, fps=10.625, chunk=160)
def test_a_low_frame_rate_stream_ends_with_the_frames_of_its_length(speech, seconds, fps, chunk):
    """Under 6.25 fps a stream pushed in chunks gave a frame more than the same audio written whole
    and flushed, or animated as a clip. (A clip's length counts every started 10 ms hop: one frame
    more than round(duration × fps) where the last hop tips it, e.g. 11 250 samples at 10.625 fps.)"""
    audio = speech[: round(seconds * 16000)]
    animator = Animator(model=LIVE, fps=fps)
    pushed = run(animator.stream(), audio, chunk)
    session = animator.stream()
    session.write(audio)
    frames = session.flush().num_frames
    assert pushed.num_frames == frames == animator.animate(audio, sample_rate=16000).num_frames
    assert abs(frames - max(1, len(audio) / 16000 * fps)) <= 1
