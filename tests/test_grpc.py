"""`talkface serve --grpc-port`: NVIDIA Audio2Face-3D's gRPC API, driven by a client written on the
PyPI stubs the way NVIDIA's sample client and pipecat's service use them."""

import asyncio
import contextlib
import json
import math
import re
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field

import numpy as np
import pytest
import soundfile as sf
import soxr

from talkface import load_audio
from talkface.rig import ARKIT_NAMES

grpc = pytest.importorskip("grpc")
messages = pytest.importorskip("nvidia_audio2face_3d.messages_pb2")
stubs = pytest.importorskip("nvidia_audio2face_3d.audio2face_pb2_grpc")
audio_pb2 = pytest.importorskip("nvidia_ace.audio_pb2")
status_pb2 = pytest.importorskip("nvidia_ace.status_pb2")
health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")
health_pb2_grpc = pytest.importorskip("grpc_health.v1.health_pb2_grpc")

METHOD = "/nvidia_ace.services.a2f_controller.v1.A2FControllerService/ProcessAudioStream"
AGGREGATE_URL = "type.googleapis.com/nvidia_ace.emotion_aggregate.v1.EmotionAggregate"  # what NVIDIA's client unpacks
IDLE = 2.0  # the test server's idle timeout (s)
SCENARIO_LIMIT = 120.0  # s: no test's calls take a tenth of it
TIMED = [(0.0, {"joy": 1.0}), (1.5, {"anger": 1.0})]


@pytest.fixture(scope="module")
def port():
    """`talkface serve` with its gRPC API alone, on a free port, one model worker (a process of its own: gRPC's
    asyncio support is not for a client and a server in two event loops of one process)."""
    command = [sys.executable, "-m", "talkface.cli", "serve", "--no-http", "--grpc-port", "0", "--workers", "1",
               "--max-streams", "21", "--idle-timeout", str(IDLE)]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert "Audio2Face-3D gRPC on 127.0.0.1:" in line, line + server.stderr.read()
        yield int(line.rsplit(":", 1)[1])
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0 and "Traceback" not in err, err  # stops cleanly


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    """Real speech as 16-bit mono WAV files: 16 kHz (3.1 s), and 44.1 kHz cut to exactly 3 s (so that
    NVIDIA's client sends an empty last chunk)."""
    folder = tmp_path_factory.mktemp("wav")
    speech = load_audio("tests/data/arctic_a0009.wav")
    paths = {16000: folder / "speech16k.wav", 44100: folder / "speech44k.wav"}
    sf.write(paths[16000], speech, 16000, subtype="PCM_16")
    sf.write(paths[44100], soxr.resample(speech, 16000, 44100)[: 3 * 44100], 44100, subtype="PCM_16")
    return paths


def read_wav(path) -> tuple[np.ndarray, int]:
    pcm, rate = sf.read(path, dtype="int16")
    return pcm.astype("<i2"), rate


def header(rate: int = 16000, channels: int = 1, bits: int = 16, **params):
    """An audio_stream_header; `params` are its other fields (face_params, emotion_params, ...)."""
    audio = audio_pb2.AudioHeader(audio_format=audio_pb2.AudioHeader.AUDIO_FORMAT_PCM, channel_count=channels,
                                  samples_per_second=rate, bits_per_sample=bits)  # fmt: skip
    return messages.AudioWithEmotionStream(
        audio_stream_header=messages.AudioWithEmotionStreamHeader(audio_header=audio, **params)
    )


def audio(pcm: bytes, emotions=()):
    timed = [messages.EmotionWithTimeCode(time_code=t, emotion=e) for t, e in emotions]
    return messages.AudioWithEmotionStream(
        audio_with_emotion=messages.AudioWithEmotion(audio_buffer=pcm, emotions=timed)
    )


END = messages.AudioWithEmotionStream(end_of_audio=messages.AudioWithEmotionStream.EndOfAudio())


def nvidia_requests(pcm: np.ndarray, rate: int, emotions=(), **params) -> list:
    """As NVIDIA's sample client sends: the header, 1 s chunks (the last one empty when the audio is whole
    seconds), the timed emotions on the first; then end_of_audio (it never half-closes)."""
    chunks = [pcm[i * rate : (i + 1) * rate].tobytes() for i in range(len(pcm) // rate + 1)]
    return [header(rate, **params), audio(chunks[0], emotions), *map(audio, chunks[1:]), END]


@dataclass
class Reply:
    names: list = field(default_factory=list)
    audio_header: object = None
    times: list = field(default_factory=list)
    frames: list = field(default_factory=list)
    echo: bytes = b""
    echo_times: list = field(default_factory=list)  # (time code, bytes before it)
    type_urls: set = field(default_factory=set)
    inputs: list = field(default_factory=list)
    smoothed: list = field(default_factory=list)
    a2e: int = 0
    events: list = field(default_factory=list)
    statuses: list = field(default_factory=list)
    data_messages: int = 0
    code: object = None
    details: str = ""


async def a2f(
    port: int, requests: list, half_close: bool = False, raw: bool = False, until_frames: int = 0, metadata=None
) -> Reply:
    """Send `requests` (while reading the answers), half-close after them if asked, and collect the answers.
    `until_frames`: send the first two requests, wait for that many frames, then the rest."""
    out = Reply()
    got_frames = asyncio.Event()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        if raw:  # bytes as they are
            reply = messages.A2F3DAnimationDataStream.FromString
            call = channel.stream_stream(METHOD, request_serializer=bytes, response_deserializer=reply)()
        else:
            call = stubs.A2FControllerServiceStub(channel).ProcessAudioStream(metadata=metadata)

        async def write() -> None:
            for i, r in enumerate(requests):
                if until_frames and i == 2:
                    await got_frames.wait()
                await call.write(r)
            if half_close:
                await call.done_writing()

        writer = asyncio.create_task(write())
        with contextlib.suppress(grpc.aio.AioRpcError):
            while (r := await call.read()) != grpc.aio.EOF:
                kind = r.WhichOneof("stream_part")
                if kind == "animation_data_stream_header":
                    out.names = list(r.animation_data_stream_header.skel_animation_header.blend_shapes)
                    out.audio_header = r.animation_data_stream_header.audio_header
                elif kind == "animation_data":
                    data = r.animation_data
                    out.data_messages += 1
                    for w in data.skel_animation.blend_shape_weights:
                        out.times.append(w.time_code)
                        out.frames.append(list(w.values))
                    if until_frames and len(out.frames) >= until_frames:
                        got_frames.set()
                    out.echo_times.append((data.audio.time_code, len(out.echo)))
                    out.echo += data.audio.audio_buffer
                    if "emotion_aggregate" in data.metadata:
                        packed = data.metadata["emotion_aggregate"]
                        out.type_urls.add(packed.type_url)
                        aggregate = messages.EmotionAggregate.FromString(packed.value)
                        out.inputs += [(e.time_code, dict(e.emotion)) for e in aggregate.input_emotions]
                        out.smoothed += [(e.time_code, dict(e.emotion)) for e in aggregate.a2f_smoothed_output]
                        out.a2e += len(aggregate.a2e_output)
                elif kind == "event":
                    out.events.append(r.event.event_type)
                elif kind == "status":
                    out.statuses.append((r.status.code, r.status.message))
        with contextlib.suppress(Exception):  # writes after the server ended the call fail
            await asyncio.wait_for(writer, 5)
        out.code, out.details = await call.code(), await call.details()
    return out


def run(coro):
    """Run a test's calls, for at most `SCENARIO_LIMIT`: a call the server never ends fails its test
    (TimeoutError) instead of hanging the suite."""
    return asyncio.run(asyncio.wait_for(coro, SCENARIO_LIMIT))


@pytest.mark.parametrize(
    ("rate", "emotions", "half_close"),
    [(16000, True, False), (16000, False, True), (44100, False, False), (44100, True, True)],
)
def test_an_audio2face_client_gets_frames_its_audio_and_the_emotion(port, wavs, rate, emotions, half_close):
    """NVIDIA's client (end_of_audio, never a half-close) and pipecat's (a half-close, a bare header)."""
    pcm, rate = read_wav(wavs[rate])
    if half_close:  # pipecat: the audio header alone, no end_of_audio
        requests = [header(rate), *(audio(pcm[i : i + 3200].tobytes()) for i in range(0, len(pcm), 3200))]
        if emotions:
            requests.insert(1, audio(b"", TIMED))
    else:
        params = {
            "emotion_params": messages.EmotionParameters(live_transition_time=0.1, beginning_emotion={"neutral": 1.0})
        }
        requests = nvidia_requests(pcm, rate, TIMED if emotions else (), **params)
    reply = run(a2f(port, requests, half_close=half_close))

    assert reply.code == grpc.StatusCode.OK, reply.details
    assert len(reply.names) == 52 and [n[0].lower() + n[1:] for n in reply.names] == list(ARKIT_NAMES)
    assert reply.names[0] == "EyeBlinkLeft"  # as A2F spells them
    h = reply.audio_header
    assert (h.samples_per_second, h.channel_count, h.bits_per_sample) == (rate, 1, 16)
    seconds = len(pcm) / rate
    assert len(reply.frames) == math.ceil(seconds * 30)
    assert reply.times == pytest.approx([k / 30 for k in range(len(reply.frames))])
    weights = np.array(reply.frames)
    assert weights.shape[1] == 52 and weights.min() >= 0 and weights.max() <= 1
    assert weights[:, ARKIT_NAMES.index("jawOpen")].max() > 0.1  # it speaks
    assert reply.echo == pcm.tobytes()  # the input, whole, in order
    assert all(t == pytest.approx(before / 2 / rate) for t, before in reply.echo_times)
    assert reply.type_urls == {AGGREGATE_URL} and reply.a2e == 0
    assert [t for t, _ in reply.smoothed] == pytest.approx(reply.times)
    if emotions:
        assert reply.inputs == [(0.0, {"joy": 1.0}), (1.5, {"anger": 1.0})]
        at = {round(t * 30): e for t, e in reply.smoothed}
        assert at[30]["joy"] > 0.9 and at[30]["anger"] < 0.1
        assert at[len(reply.frames) - 1]["anger"] > 0.9 and at[len(reply.frames) - 1]["joy"] < 0.1
    else:
        assert reply.inputs == [] and all(max(e.values()) == 0 for _, e in reply.smoothed)
    assert reply.events == [messages.END_OF_A2F_AUDIO_PROCESSING]
    assert [code for code, _ in reply.statuses] == [status_pb2.Status.SUCCESS]


def test_frames_come_as_they_become_final(port, wavs):
    """The first second's frames arrive before the client has sent the rest of its audio."""
    pcm, rate = read_wav(wavs[16000])
    reply = run(a2f(port, nvidia_requests(pcm, rate), until_frames=20))
    assert reply.code == grpc.StatusCode.OK and reply.data_messages >= 2
    assert len(reply.frames) == math.ceil(len(pcm) / rate * 30)


def test_header_parameters_map_onto_the_style(port, wavs):
    """A2F's face parameters, multipliers, offsets and emotion settings change the frames; unknown ones
    are ignored; values out of range are refused."""
    pcm, rate = read_wav(wavs[16000])
    plain = np.array(run(a2f(port, nvidia_requests(pcm, rate))).frames)
    face = messages.FaceParameters(float_params={"lowerFaceStrength": 0.3, "faceMaskLevel": 0.6})
    shapes = messages.BlendShapeParameters(
        bs_weight_multipliers={"MouthClose": 0.0, "TongueTipUp": 2.0},
        bs_weight_offsets={"BrowInnerUp": 0.25},
        enable_clamping_bs_weight=True,
    )
    post = messages.EmotionPostProcessingParameters(emotion_strength=0.5, max_emotions=2, live_blend_coef=0.7)
    requests = nvidia_requests(pcm, rate, TIMED, face_params=face, blendshape_params=shapes,
                               emotion_post_processing_params=post)  # fmt: skip
    reply = run(a2f(port, requests))
    assert reply.code == grpc.StatusCode.OK, reply.details
    styled = np.array(reply.frames)
    jaw = ARKIT_NAMES.index("jawOpen")
    assert styled[:, jaw].max() < 0.6 * plain[:, jaw].max()  # lowerFaceStrength
    assert styled[:, ARKIT_NAMES.index("mouthClose")].max() == 0  # a multiplier by A2F's name
    assert styled[:, ARKIT_NAMES.index("browInnerUp")].min() >= 0.25  # an offset
    assert max(e["joy"] for _, e in reply.smoothed) == pytest.approx(0.5, abs=0.01)  # emotion_strength

    out_of_range = messages.FaceParameters(float_params={"lowerFaceStrength": 7.0})
    reply = run(a2f(port, nvidia_requests(pcm, rate, face_params=out_of_range)))
    assert reply.code == grpc.StatusCode.INVALID_ARGUMENT and "lowerFaceStrength" in reply.details


def test_bad_input_is_refused_and_the_server_goes_on(port, wavs):
    pcm, rate = read_wav(wavs[16000])
    one_second = pcm[:rate].tobytes()
    rng = np.random.default_rng(0)
    cases = {
        "8-bit": ([header(bits=8), audio(one_second), END], False, False),
        "stereo": ([header(channels=2), audio(one_second), END], False, False),
        "no header": ([audio(one_second), END], False, False),
        "end before a header": ([END], False, False),
        "nothing at all": ([], True, False),
        "a second header": ([header(), audio(one_second), header(), END], False, False),
        "an odd byte count": ([header(), audio(one_second[:-1]), END], False, False),
        "a bad emotion": ([header(), audio(one_second, [(0.0, {"glee": 1.0})]), END], False, False),
        "a 100 KB emotion name": ([header(), audio(one_second, [(0.0, {"x" * 100_000: 1.0})]), END], False, False),
        # each time code rebuilds the track: 40 000 in one message held the server's loop for 17 s
        "too many emotion time codes": (
            [header(), audio(one_second, [(i / 1000, {"joy": 0.5}) for i in range(40_000)]), END],
            False,
            False,
        ),
        "unparsable bytes": ([b"\xff\xff\xff\xff"], False, True),
        "garbage after the header": ([header().SerializeToString(), rng.bytes(300)], True, True),
    }

    async def scenario() -> None:
        replies = await asyncio.gather(*(a2f(port, r, half_close=h, raw=raw) for r, h, raw in cases.values()))
        for name, reply in zip(cases, replies, strict=True):
            assert reply.code == grpc.StatusCode.INVALID_ARGUMENT, (name, reply.code, reply.details)
            assert reply.details and len(reply.details) <= 300 and reply.frames == [], name
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reply = await a2f(port, nvidia_requests(pcm, rate))
        assert reply.code == grpc.StatusCode.OK and len(reply.frames) == math.ceil(len(pcm) / rate * 30)

    run(scenario())


def test_one_long_chunk_is_animated_whole(port, wavs):
    """PCM chunks of any length: 16 s in one message (512 KB) is more frames in one step than a client
    may leave unread, but it has read nothing late: all its frames come."""
    pcm, rate = read_wav(wavs[16000])
    long = np.tile(pcm, 6)[: 16 * rate]
    reply = run(a2f(port, [header(), audio(long.tobytes()), END]))
    assert reply.code == grpc.StatusCode.OK, reply.details
    assert len(reply.frames) == 16 * 30 and reply.echo == long.tobytes()


def test_a_client_that_reads_a_long_chunks_frames_late_is_not_dropped(port, wavs):
    """16 s in one message, its end in a step of its own, and the frames read half a second after: a client
    that leaves a long chunk's burst unread for a moment is still reading. (On a loaded CI machine the end's
    step once came before the server's own sender had handed the chunk's frames on, and the count alone
    judged the client too slow: a race this test does not force; `Server._deliver` now also asks whether
    the client was caught up within send_buffer_seconds.)"""
    pcm, rate = read_wav(wavs[16000])
    long = np.tile(pcm, 6)[: 16 * rate]

    async def late_reader() -> tuple[object, int]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = stubs.A2FControllerServiceStub(channel).ProcessAudioStream()
            await call.write(header())
            await call.write(audio(long.tobytes()))
            await asyncio.sleep(0.5)  # (its frames are made, and wait)
            await call.write(END)  # a step of its own
            await call.done_writing()
            await asyncio.sleep(0.5)  # (busy elsewhere)
            frames = 0
            while (r := await call.read()) != grpc.aio.EOF:
                if r.WhichOneof("stream_part") == "animation_data":
                    frames += len(r.animation_data.skel_animation.blend_shape_weights)
            return await call.code(), frames

    code, frames = run(late_reader())
    assert code == grpc.StatusCode.OK and frames == 16 * 30


def test_a_chunk_of_minutes_comes_back_in_messages_a_client_takes(port, wavs):
    """One chunk may cover minutes of frames (400 s at 1 kHz in 800 KB): its frames and echo come in messages
    a gRPC client takes (4 MiB at most by default), not in one of 5 MB that the client refused."""
    pcm, _ = read_wav(wavs[16000])
    long = np.tile(pcm, 9)[: 400 * 1000]  # (as 1 kHz audio)
    reply = run(a2f(port, [header(1000), audio(long.tobytes()), END]))
    assert reply.code == grpc.StatusCode.OK, reply.details
    assert len(reply.frames) == 400 * 30 and reply.echo == long.tobytes()
    assert reply.times == pytest.approx([k / 30 for k in range(400 * 30)])
    assert [t for t, _ in reply.smoothed] == pytest.approx(reply.times)
    assert all(t == pytest.approx(before / 2 / 1000) for t, before in reply.echo_times)


def test_an_emotion_names_each_emotion_once(port, wavs):
    """Emotion names are case-insensitive, so "JOY" and "Joy" name one emotion twice: refused, as the input
    emotions are sent back as they came (3584 spellings of three names: 70 KB an emotion, and 146 MB of them
    held the server at 2.5 GB and came back in one message no client takes)."""
    pcm, rate = read_wav(wavs[16000])
    twice = {"joy": 0.5, "JOY": 0.5}
    beginning = {"emotion_params": messages.EmotionParameters(beginning_emotion={"Neutral": 1.0, "neutral": 0.0})}
    cases = [
        [header(), audio(pcm[:rate].tobytes(), [(0.0, {"anger": 1.0}), (0.5, twice)]), END],
        [header(**beginning), audio(pcm[:rate].tobytes()), END],
    ]

    async def scenario() -> list:
        return await asyncio.gather(*(a2f(port, requests) for requests in cases))

    for reply, name in zip(run(scenario()), ("'joy'", "'neutral'"), strict=True):
        assert reply.code == grpc.StatusCode.INVALID_ARGUMENT and f"{name} is named twice" in reply.details
    spelt = {"Joy": 0.5, "ANGER": 0.25, "neutral": 0.25}  # each once, in any case: taken
    reply = run(a2f(port, [header(), audio(pcm[:rate].tobytes(), [(0.0, spelt)]), END]))
    assert reply.code == grpc.StatusCode.OK and reply.inputs == [(0.0, spelt)]


def test_each_emotion_strength_is_checked_by_its_own_name(port, wavs):
    """talkface applies emotion_strength × preferred_emotion_strength, but each is A2F's, in [0, 1]: one out of
    range was taken where the product was in range (0.5 × 2, 0 × -5), and the error named neither."""
    pcm, rate = read_wav(wavs[16000])

    def requests(**values) -> list:
        post = messages.EmotionPostProcessingParameters(enable_preferred_emotion=True, **values)
        return nvidia_requests(pcm[:rate], rate, TIMED, emotion_post_processing_params=post)

    cases = {
        "preferred_emotion_strength": [
            {"emotion_strength": 0.5, "preferred_emotion_strength": 2.0},
            {"emotion_strength": 0.0, "preferred_emotion_strength": -5.0},
            {"preferred_emotion_strength": math.nan},
        ],
        "emotion_strength": [{"emotion_strength": 2.0, "preferred_emotion_strength": 0.25}],
    }

    async def scenario() -> list:
        return await asyncio.gather(*(a2f(port, requests(**v)) for vs in cases.values() for v in vs))

    replies = iter(run(scenario()))
    for name, values in cases.items():
        for v in values:
            reply = next(replies)
            assert reply.code == grpc.StatusCode.INVALID_ARGUMENT, (v, reply.code)
            assert reply.details.startswith(f"{name} must be from 0 to 1"), (v, reply.details)
    reply = run(a2f(port, requests(emotion_strength=0.5, preferred_emotion_strength=0.5)))
    assert reply.code == grpc.StatusCode.OK
    assert max(e["joy"] for _, e in reply.smoothed) == pytest.approx(0.25, abs=0.01)


def test_emotions_are_bounded_in_all_not_only_by_time_code(port, wavs):
    """Emotions sent again at the same time codes never add a key, but a stream takes at most
    MAX_EMOTIONS_SENT of them in all: a client cannot make the server hold or rebuild without end."""
    from talkface.serve.a2f import MAX_EMOTIONS_SENT

    pcm, rate = read_wav(wavs[16000])
    same = [(k / 10, {"joy": 0.5}) for k in range(4000)]
    flood = [audio(b"", same) for _ in range(MAX_EMOTIONS_SENT // 4000 + 1)]
    reply = run(a2f(port, [header(), *flood, audio(pcm.tobytes()), END]))
    assert reply.code == grpc.StatusCode.INVALID_ARGUMENT and f"more than {MAX_EMOTIONS_SENT} emotions" in reply.details
    reply = run(a2f(port, [header(), *flood[:-1], audio(pcm.tobytes()), END]))  # under the limit: all taken
    assert reply.code == grpc.StatusCode.OK and len(reply.frames) == math.ceil(len(pcm) / rate * 30)


def test_a_long_stream_holds_only_the_emotions_ahead_of_it(port, wavs):
    """Emotion time codes behind the frames made are let go: a stream with a new emotion every 10 ms
    passes MAX_EMOTION_KEYS of them in 41 s (one a second: 68 minutes, when it was closed INVALID_ARGUMENT
    though a stream may last 4 hours; each one rebuilt and sent its worker every key so far)."""
    from talkface.serve.a2f import MAX_EMOTION_KEYS

    pcm, rate = read_wav(wavs[16000])
    seconds = MAX_EMOTION_KEYS // 100 + 4
    pcm = np.tile(pcm, seconds // 3 + 1)[: seconds * rate]
    names = ["joy", "anger"]
    requests = [header()]
    for s in range(seconds):
        timed = [(s + k / 100, {names[s % 2]: 1.0}) for k in range(100)]
        requests.append(audio(pcm[s * rate : (s + 1) * rate].tobytes(), timed))
    reply = run(a2f(port, [*requests, END]))
    assert reply.code == grpc.StatusCode.OK, reply.details
    assert len(reply.frames) == seconds * 30 and len(reply.inputs) == seconds * 100
    last = reply.smoothed[-1][1]  # (the last second's emotion)
    assert last[names[(seconds - 1) % 2]] > 0.9 > 0.1 > last[names[seconds % 2]]


def test_twenty_concurrent_streams(port, wavs):
    pcm, rate = read_wav(wavs[16000])
    pcm = pcm[: 2 * rate]

    async def scenario() -> list:
        return await asyncio.gather(*(a2f(port, nvidia_requests(pcm, rate)) for _ in range(20)))

    replies = run(scenario())
    assert [r.code for r in replies] == [grpc.StatusCode.OK] * 20
    assert all(len(r.frames) == 60 and r.echo == pcm.tobytes() for r in replies)
    first = np.array(replies[0].frames)
    assert all(np.allclose(np.array(r.frames), first, atol=1e-5) for r in replies)  # the same seed, the same face


def test_stream_limits_hold_for_grpc(port):
    """max_streams: one more stream than allowed is refused; streams that send nothing are closed as idle."""

    async def scenario() -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = stubs.A2FControllerServiceStub(channel)
            held = [stub.ProcessAudioStream() for _ in range(21)]
            for call in held:
                await call.write(header())
                first = await call.read()  # the stream is up
                assert first.WhichOneof("stream_part") == "animation_data_stream_header"
            extra = stub.ProcessAudioStream()
            await extra.write(header())
            assert await extra.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            codes = await asyncio.wait_for(asyncio.gather(*(call.code() for call in held)), 3 * IDLE)
            assert codes == [grpc.StatusCode.UNAVAILABLE] * 21  # idle
            assert "idle" in await held[0].details()

    run(scenario())


def test_calls_of_every_kind_at_once_are_bounded(port):
    """Health Watch streams (and calls before their header) counted toward no limit: thousands could be held
    open. All calls at once are bounded by --max-streams and 64 more; past that, RESOURCE_EXHAUSTED, and the
    server goes on once they end."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async def scenario() -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            watches = [stub.Watch(health_pb2.HealthCheckRequest(service="")) for _ in range(21 + 64)]
            for watch in watches:
                assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            for watch in watches:
                watch.cancel()
            for _ in range(50):  # (the server hears of the cancelled calls within moments)
                with contextlib.suppress(grpc.aio.AioRpcError):
                    reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
                    break
                await asyncio.sleep(0.1)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

    run(scenario())


def test_parameter_names_a_client_sends_write_no_lines_of_their_own_in_the_log(wavs):
    """Unknown header parameters are named in one warning line: a name's line breaks and control characters
    are escaped, so a client cannot forge log lines of the server."""
    command = [sys.executable, "-m", "talkface.cli", "serve", "--no-http", "--grpc-port", "0", "--workers", "1"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        grpc_port = int(server.stdout.readline().rsplit(":", 1)[1])
        pcm, rate = read_wav(wavs[16000])
        forged = "x\nwarning: model worker 1: the model worker exited\r\u2028"
        face = messages.FaceParameters(float_params={forged: 1.0}, integer_params={"plain": 1})
        reply = run(a2f(grpc_port, nvidia_requests(pcm[:rate], rate, face_params=face)))
        assert reply.code == grpc.StatusCode.OK
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert err.splitlines() == [
        "warning: gRPC: ignoring Audio2Face parameters talkface does not have: "
        "x\\nwarning: model worker 1: the model worker exited\\r\\u2028, plain"
    ], err


def test_serve_refuses_a_busy_grpc_port_in_one_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        command = [
            sys.executable,
            "-m",
            "talkface.cli",
            "serve",
            "--no-http",
            "--grpc-port",
            str(taken),
            "--workers",
            "1",
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        f"talkface: error: cannot listen on 127.0.0.1:{taken} for gRPC (in use?)"
    ]
    result = subprocess.run([*command[:3], "serve", "--no-http"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--no-http leaves nothing to serve" in result.stderr


def test_grpc_streams_are_server_streams_beside_the_websocket(wavs):
    """With HTTP on too, a gRPC stream counts in /healthz and /metrics like a WebSocket one, takes the
    same bearer token, and a client that cancels mid-stream gives its slot back."""
    command = [sys.executable, "-m", "talkface.cli", "serve", "--port", "0", "--grpc-port", "0", "--workers", "1",
               "--token", "s3cret"]  # fmt: skip
    token = (("authorization", "Bearer s3cret"),)
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().split()[3]  # talkface serving on http://HOST:PORT (WebSocket /v1/stream)
        grpc_port = int(server.stdout.readline().rsplit(":", 1)[1])
        pcm, rate = read_wav(wavs[16000])

        def health() -> dict:
            return json.load(urllib.request.urlopen(f"{url}/healthz", timeout=10))

        async def scenario() -> None:
            refused = await a2f(grpc_port, nvidia_requests(pcm, rate), metadata=(("authorization", "Bearer nope"),))
            assert refused.code == grpc.StatusCode.UNAUTHENTICATED and refused.frames == []
            async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                call = stubs.A2FControllerServiceStub(channel).ProcessAudioStream(metadata=token)
                await call.write(header())
                await call.read()  # the stream is up
                await call.write(audio(pcm[:rate].tobytes()))
                while not (await call.read()).animation_data.skel_animation.blend_shape_weights:
                    pass
                assert health()["streams"] == 1
                call.cancel()
            for _ in range(100):
                if health()["streams"] == 0:
                    break
                await asyncio.sleep(0.05)
            assert health() == {"status": "ok", "streams": 0, "max_streams": 200}
            reply = await a2f(grpc_port, nvidia_requests(pcm, rate), metadata=token)
            assert reply.code == grpc.StatusCode.OK

        run(scenario())
        asked = urllib.request.Request(f"{url}/metrics", headers={"Authorization": "Bearer s3cret"})
        metrics = urllib.request.urlopen(asked, timeout=10).read().decode()
        assert "talkface_streams_total 2" in metrics
        frames = int(float(re.search(r"^talkface_frames_total (\S+)", metrics, re.M).group(1)))
        assert frames >= math.ceil(len(pcm) / rate * 30) + 1
    finally:
        server.terminate()
        server.communicate(timeout=30)
