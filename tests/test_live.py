"""Live Link Face packets, the microphone loop (on a virtual device and a file) and the live CLI."""

import hashlib
import json
import logging
import socket
import sys
import threading
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from talkface import Animation, Animator, TalkfaceError, load_audio
from talkface import mic as live
from talkface.cli import main
from talkface.livelink import LiveLinkSender, Packet, decode, encode, parse_address
from talkface.model import default_model_path
from talkface.rig import LIVE_LINK_ORDER

LIVE = str(default_model_path())  # what live playback runs


@pytest.fixture
def receiver():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


@pytest.fixture
def short_wav(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, load_audio("tests/data/arctic_a0009.wav")[:16000], 16000)
    return path


def test_packets_round_trip_in_the_apps_layout():
    values = np.linspace(-1, 1, 61, dtype=np.float32)
    data = encode(Packet("DEV-1", "Ada", 123456, 0.25, Fraction(30000, 1001), values))
    assert data[0] == 6 and data[1:5] == (5).to_bytes(4, "big") and data[5:10] == b"DEV-1"
    assert len(data) == 1 + 4 + 5 + 4 + 3 + 16 + 1 + 61 * 4 and data[-61 * 4 - 1] == 61
    assert np.frombuffer(data[-8:], ">f4").tolist() == pytest.approx(values[-2:].tolist())
    packet = decode(data)
    assert (packet.device_id, packet.subject, packet.frame, packet.sub_frame) == ("DEV-1", "Ada", 123456, 0.25)
    assert packet.rate == Fraction(30000, 1001) and np.array_equal(packet.values, values)
    for bad in (b"", data[:-3], data + b"x", data[:1] + b"\xff\xff\xff\xff" + data[5:]):
        with pytest.raises(TalkfaceError, match="not a Live Link Face packet"):
            decode(bad)


def test_addresses():
    assert parse_address("127.0.0.1:11112") == ("127.0.0.1", 11112)
    assert parse_address("localhost") == ("localhost", 11111)
    assert parse_address("[::1]:9000") == ("::1", 9000)
    assert parse_address("[::1]") == ("::1", 11111)
    assert parse_address("[fe80::1%lo]:9000") == ("fe80::1%lo", 9000)
    # an IPv6 address without brackets is refused: its last group was taken for the port, and "fe80::1:2"
    # sent to port 2 of fe80::1
    for bad in ("host:port", ":11111", "127.0.0.1:70000", "fe80::1:2", "::1", "[::1", "[::1]x:5", "[[::1]]:5",
                "127.0.0.1:1_1111", "127.0.0.1:+11111", "127.0.0.1: 11111", "[]:5",
                "127.0.0.1:" + "1" * 5000, "127.0.0.1:" + "0" * 5000):  # fmt: skip
        with pytest.raises(TalkfaceError, match="HOST:PORT") as e:
            parse_address(bad)
        assert len(str(e.value)) < 300  # a 5000-digit port (int() refuses over 4300 digits) is not quoted whole
    assert parse_address("127.0.0.1:" + "0" * 5000 + "11112") == ("127.0.0.1", 11112)


@pytest.mark.parametrize("port", [0, 70000, -1, True, 5.5])
def test_a_host_and_port_pair_out_of_range_is_refused(port):
    """getaddrinfo takes any port of a (host, port) pair: 70000 was sent to port 4464."""
    with pytest.raises(TalkfaceError, match="the --livelink port must be"):
        LiveLinkSender(("127.0.0.1", port))


@pytest.mark.parametrize("fps", [float("nan"), float("inf"), 0, -30, 1e6, "30"])
def test_a_sender_at_a_frame_rate_that_is_none_is_refused(fps):
    """Fraction(nan) raised ValueError, Fraction(inf) OverflowError, after the socket was opened."""
    with pytest.raises(TalkfaceError, match="fps must be a number above 0"):
        LiveLinkSender("127.0.0.1:11111", fps=fps)


def test_sender_numbers_frames_by_timecode_and_sends_all_61_values(receiver):
    anim = Animator().animate("tests/data/arctic_a0009.wav").slice(0, 0.5)
    sender = LiveLinkSender(f"127.0.0.1:{receiver.getsockname()[1]}", "Ada", 30)
    sender.send(anim.slice(0, 0.2))
    sender.send(anim.slice(0.2))
    sender.close()
    packets = [decode(receiver.recv(2048)) for _ in range(anim.num_frames)]
    assert [p.frame for p in packets] == list(range(packets[0].frame, packets[0].frame + anim.num_frames))
    assert 0 <= packets[0].frame < 24 * 3600 * 30
    np.testing.assert_allclose(np.stack([p.values for p in packets]), anim.with_channels(LIVE_LINK_ORDER).weights)


def test_the_timecode_wraps_at_midnight():
    """A take's frames count on from the time of day it began; past midnight they went on counting
    (25:00:00), and past 2**31 frames (100 days at 240 fps) no packet could be made."""
    sender = LiveLinkSender("127.0.0.1:11111", fps=30)
    sender.first_frame = 24 * 3600 * 30 - 2  # two frames before midnight
    frames = [decode(p).frame for p in sender.packets(Animation.zeros(4, 30.0), 0)]
    far = decode(sender.packets(Animation.zeros(1, 30.0), 100 * 24 * 3600 * 30)[0]).frame
    sender.close()
    assert frames == [24 * 3600 * 30 - 2, 24 * 3600 * 30 - 1, 0, 1] and far == 24 * 3600 * 30 - 2


def test_a_broadcast_address_reaches_a_listener_on_the_lan():
    """255.255.255.255 (every Unreal editor on the network) is sent to, not silently refused."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("", 0))  # every interface, as an editor listens
    listener.settimeout(5)
    sender = LiveLinkSender(f"255.255.255.255:{listener.getsockname()[1]}", "Ada", 30)
    sender.send(Animation.zeros(2, 30.0))
    sender.close()
    assert [decode(listener.recv(2048)).subject for _ in range(2)] == ["Ada", "Ada"]
    listener.close()


def test_a_file_played_live_gives_the_offline_animation(short_wav):
    shown = SimpleNamespace(lines=[], write=lambda s: shown.lines.append(s), flush=lambda: None)
    anim = live.run(live.FileSource(short_wav, realtime=False), Animator(), show=shown)
    offline = Animator(model=LIVE).animate(short_wav)  # played live: the live model
    np.testing.assert_allclose(anim.weights, offline.weights, atol=1e-5)
    assert any("dB" in line and "frames" in line for line in shown.lines)
    assert live.meter(np.zeros(320), 0, 0.0).count("#") == 0 and live.meter(np.ones(320), 5, 1.0).count("#") == 30


def test_a_live_session_keeps_no_frames_unless_asked(short_wav):
    """`talkface stream` without -o runs for hours: the loop holds no animation per chunk (it held every
    20 ms chunk's, 3000 a minute, ~75 MB an hour); with `keep` it holds only the chunks that made frames."""
    import gc

    alive = []

    class Source(live.FileSource):
        def __iter__(self):
            for _ in range(6):  # 6 s, in 300 chunks of 20 ms
                yield from super().__iter__()
            gc.collect()
            alive.append(sum(isinstance(o, Animation) for o in gc.get_objects()))

    source = Source(short_wav, realtime=False)
    anim = live.run(source, Animator(), show=None, keep=False)
    assert anim.num_frames == 0 and alive[-1] < 10
    anim = live.run(source, Animator(), show=None)
    assert anim.num_frames == 180 and alive[-1] <= 180 + 10


class _VirtualInput:
    """sounddevice.InputStream stand-in: feeds a file to the callback in 20 ms blocks from a thread."""

    audio = np.zeros(0, np.float32)

    def __init__(self, device, channels, samplerate, dtype, blocksize, callback):
        self.block, self.callback, self.stop = blocksize, callback, threading.Event()

    def _feed(self):
        for i in range(0, len(self.audio) - self.block + 1, self.block):
            if self.stop.is_set():
                return
            self.callback(self.audio[i : i + self.block, None], self.block, None, None)

    def __enter__(self):
        self.thread = threading.Thread(target=self._feed, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_microphone_loop_on_a_virtual_device(monkeypatch, receiver):
    _VirtualInput.audio = load_audio("tests/data/arctic_a0009.wav")
    fake = SimpleNamespace(
        InputStream=_VirtualInput,
        PortAudioError=RuntimeError,
        query_devices=lambda device, kind: {"name": "virtual", "default_samplerate": 16000.0},
    )
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    source = live.MicSource()
    sender = LiveLinkSender(f"127.0.0.1:{receiver.getsockname()[1]}")
    anim = live.run(source, Animator(), livelink=sender, seconds=2.0, show=None)
    sender.close()
    assert anim.num_frames == 60
    offline = Animator(model=LIVE).animate(_VirtualInput.audio[:32000], sample_rate=16000)
    np.testing.assert_allclose(anim.weights, offline.weights, atol=1e-5)
    packets = [decode(receiver.recv(2048)) for _ in range(anim.num_frames)]
    assert packets[-1]["jawOpen"] == pytest.approx(float(anim["jawOpen"][-1]), abs=1e-6)


def test_stream_and_animate_commands_send_live_link(short_wav, receiver, tmp_path, capsys):
    port = receiver.getsockname()[1]
    out = tmp_path / "live.json"
    assert main(["stream", str(short_wav), "--livelink", f"127.0.0.1:{port}", "-o", str(out), "--no-blink"]) == 0
    anim = Animation.join([Animator().animate(short_wav)])
    assert out.is_file() and len([decode(receiver.recv(2048)) for _ in range(anim.num_frames)]) == 30
    made = json.loads(out.read_text())["metadata"]  # what made it: the live model, from this file
    assert made["engine"] == "neural" and made["model"]["name"] == "talkface-default.onnx"
    assert made["audio_sha256"] == hashlib.sha256(short_wav.read_bytes()).hexdigest()
    assert main(["animate", str(short_wav), "-o", str(tmp_path / "a.csv"), "--livelink", f"127.0.0.1:{port}"]) == 0
    assert decode(receiver.recv(2048)).subject == "talkface"
    assert main(["stream"]) == 2 and "--mic or an AUDIO" in capsys.readouterr().err  # usage errors
    assert main(["serve", "--livelink", "nowhere:port"]) == 2


@pytest.mark.parametrize("device", ["\u00b2", "99999999999999999999"])
def test_a_device_number_that_is_no_number_is_a_clear_error(monkeypatch, capsys, device):
    """A superscript two passes str.isdigit but not int(); a number past C's int overflows in PortAudio: both were
    internal errors (70)."""

    def query_devices(device, kind):
        if isinstance(device, int):
            int.to_bytes(device, 4, "little", signed=True)  # as ctypes refuses it: OverflowError
        raise ValueError(f"No input device matching {device!r}")

    fake = SimpleNamespace(PortAudioError=RuntimeError, query_devices=query_devices)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    assert main(["stream", "--mic", "--device", device]) == 1
    assert "no audio input device" in capsys.readouterr().err


def test_a_file_corrupt_past_its_header_is_one_clear_error_on_a_line_of_its_own(short_wav, tmp_path, capsys):
    """A FLAC whose header reads but whose frames are garbage a third of the way in: libsndfile's error
    came out as an internal error (exit 70), on the meter's line; it is the file's, one line, exit 1."""
    flac = tmp_path / "torn.flac"
    sf.write(flac, sf.read(short_wav, dtype="float32")[0], 16000)
    data = bytearray(flac.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 2000] = (bytes(range(256)) * 8)[:2000]
    flac.write_bytes(bytes(data))
    assert main(["stream", str(flac), "-o", str(tmp_path / "face.csv")]) == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("talkface: error: ") and "torn.flac: not a readable audio file" in last, last
    assert not (tmp_path / "face.csv").exists()


def test_an_input_device_that_stops_sending_ends_the_take_with_its_frames(monkeypatch):
    """A microphone unplugged mid-take stops calling back: the loop waited on it for ever, `--seconds`
    or not. After `SILENT_DEVICE_SECONDS` of nothing it ends as a file does, with the frames it had."""
    _VirtualInput.audio = load_audio("tests/data/arctic_a0009.wav")[:16000]  # 1 s, then nothing
    fake = SimpleNamespace(
        InputStream=_VirtualInput,
        PortAudioError=RuntimeError,
        query_devices=lambda device, kind: {"name": "virtual", "default_samplerate": 16000.0},
    )
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    monkeypatch.setattr(live, "SILENT_DEVICE_SECONDS", 0.5, raising=False)
    warned = []
    logger = logging.getLogger("talkface.mic")
    monkeypatch.setattr(logger, "warning", lambda message, *args: warned.append(message % args))
    done = []
    worker = threading.Thread(
        target=lambda: done.append(live.run(live.MicSource(), Animator(), seconds=60, show=None)), daemon=True
    )
    worker.start()
    worker.join(30)
    assert done, "the take never ended"
    assert done[0].num_frames == 30
    assert warned == ["the audio input virtual sent nothing for 0.5 s; stopping"]
