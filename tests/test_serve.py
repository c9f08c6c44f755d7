"""`talkface serve`: streams over the WebSocket match offline `animate`; HTTP animate, health,
metrics, OpenAPI, auth; Live Link packets; and faults that must not take the server down."""

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import soundfile as sf
from serving import running

from talkface import Animator, load_audio
from talkface.cli import main
from talkface.errors import TalkfaceError
from talkface.livelink import decode
from talkface.model import default_model_path
from talkface.rig import LIVE_LINK_ORDER
from talkface.serve import ServerConfig
from talkface.serve.settings import stream_settings
from talkface.serve.workers import Worker

HEADER = struct.Struct("<4sIHHd")


@pytest.fixture(scope="module")
def wav30(tmp_path_factory):
    """30 s of real speech with pauses (ARCTIC a0009 repeated), 16 kHz WAV."""
    clip = load_audio("tests/data/arctic_a0009.wav")
    unit = np.concatenate([clip, np.zeros(8000, np.float32)])
    audio = np.tile(unit, 9)[: 30 * 16000]
    path = tmp_path_factory.mktemp("wav") / "speech30.wav"
    sf.write(path, audio, 16000, subtype="FLOAT")
    return path


async def stream_file(url: str, audio: np.ndarray, query: str = "format=f32&output=binary", controls=()) -> dict:
    """Send `audio` in 20 ms chunks (as fast as the server takes them), then end; collect the frames."""
    frames, messages = {}, []
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/v1/stream?{query}") as ws:
        ready = json.loads((await ws.receive()).data)
        chunk = 320
        for n, i in enumerate(range(0, len(audio), chunk)):
            for at, message in controls:
                if at == n:
                    await ws.send_str(message if isinstance(message, str) else json.dumps(message))
            data = audio[i : i + chunk]
            await ws.send_bytes(data.astype("<f4" if "f32" in query else "<i2").tobytes())
        await ws.send_str(json.dumps({"type": "end"}))
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                _, first, count, channels, _ = HEADER.unpack_from(msg.data)
                block = np.frombuffer(msg.data, "<f4", offset=HEADER.size).reshape(count, channels)
                for j in range(count):
                    frames[first + j] = block[j]
            else:
                m = json.loads(msg.data)
                messages.append(m)
                if m["type"] == "frames":
                    for j, row in enumerate(m["frames"]):
                        frames[m["start"] + j] = np.array(row, np.float32)
                        assert m["times"][j] == pytest.approx((m["start"] + j) / ready["fps"], abs=1e-6)
        close = ws.close_code
    weights = np.stack([frames[k] for k in range(len(frames))]) if frames else np.zeros((0, 0))
    return {"ready": ready, "weights": weights, "messages": messages, "close": close}


def test_a_30s_wav_streamed_in_20ms_chunks_matches_offline(wav30):
    """Streams run the live model: the frames are what that model gives the whole file."""
    audio = sf.read(wav30, dtype="float32")[0]
    offline = Animator(model=str(default_model_path())).animate(wav30)
    with running() as (url, _):
        got = asyncio.run(stream_file(url, audio))
        assert got["ready"]["names"] == list(offline.names) and got["ready"]["latency"] <= 0.1
        assert got["messages"][-1] == {"type": "end", "frames": offline.num_frames} and got["close"] == 1000
        assert got["weights"].shape == offline.weights.shape
        np.testing.assert_allclose(got["weights"], offline.weights, atol=1e-5)
        with urllib.request.urlopen(f"{url}/healthz") as r:
            assert json.load(r) == {"status": "ok", "streams": 0, "max_streams": 200}


def test_json_frames_16bit_audio_and_mid_stream_controls(wav30):
    audio = sf.read(wav30, dtype="float32")[0][: 4 * 16000]
    pcm = (audio * 32767).astype(np.int16)
    with running() as (url, _):
        controls = [(100, {"type": "emotion", "emotion": "joy=1"}), (100, {"type": "face", "face": "jawStrength=0"})]
        got = asyncio.run(stream_file(url, pcm, "format=s16&output=json&fps=60", controls))
    session = Animator(fps=60).stream()
    head = session.push(pcm[: 100 * 320])
    assert got["ready"]["fps"] == 60
    np.testing.assert_allclose(got["weights"][: head.num_frames], head.weights, atol=1e-5)
    names = got["ready"]["names"]
    tail = got["weights"][-100:]
    assert tail[:, names.index("jawOpen")].max() <= 0.05  # only a breath in a pause moves it now
    assert tail[:, names.index("mouthSmileLeft")].min() > 0.5


def post(url: str, body: bytes, query: str = "", headers=None) -> tuple[int, bytes, str]:
    req = urllib.request.Request(f"{url}/v1/animate?{query}", data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


def test_http_animate_in_every_text_format_and_bad_requests(wav30, tmp_path):
    wav = Path("tests/data/arctic_a0009.wav").read_bytes()
    offline = Animator().animate("tests/data/arctic_a0009.wav")
    big = tmp_path / "big.wav"
    sf.write(big, np.zeros(16000 * 4, np.float32) + 0.1, 16000)
    with running(ServerConfig(max_upload_mb=0.5, max_audio_seconds=3.5)) as (url, _):
        status, body, kind = post(url, wav, "format=json")
        assert status == 200 and kind.startswith("application/json")
        data = json.loads(body)
        np.testing.assert_allclose(np.array(data["frames"]), offline.weights, atol=1e-4)
        status, body, kind = post(url, wav, "format=csv&fps=60&emotion=joy%3D0.5&face=jawStrength%3D1.2")
        assert status == 200 and body.startswith(b"Timecode,BlendShapeCount") and body.count(b"\n") == 187
        for query, code in [("format=mp3", 400), ("fps=-1", 400), ("emotion=glee", 400), ("bogus=1", 400)]:
            status, body, kind = post(url, wav, query)
            assert status == code and "error" in json.loads(body), query
        assert post(url, b"")[0] == 400
        assert post(url, b"RIFF not really a wave file")[0] == 422
        assert post(url, np.full(1000, np.nan, "<f4").tobytes())[0] == 422
        assert post(url, big.read_bytes())[0] == 422  # 4 s > the 3.5 s limit
        assert post(url, wav * 40)[0] == 413  # over 0.5 MB
        with urllib.request.urlopen(f"{url}/healthz") as r:
            assert json.load(r)["status"] == "ok"


def test_metrics_openapi_and_bearer_token(monkeypatch):
    with running(ServerConfig(token="s3cret")) as (url, _):
        assert urllib.request.urlopen(f"{url}/healthz").status == 200  # open to probes
        spec = json.load(urllib.request.urlopen(f"{url}/openapi.json"))
        assert spec["openapi"].startswith("3.1") and "/v1/animate" in spec["paths"] and spec["security"]
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{url}/metrics")
        assert e.value.code == 401
        assert post(url, b"x", headers={"Authorization": "Bearer wrong"})[0] == 401
        req = urllib.request.Request(f"{url}/metrics", headers={"Authorization": "Bearer s3cret"})
        text = urllib.request.urlopen(req).read().decode()
        assert "# TYPE talkface_frame_latency_seconds histogram" in text and "talkface_streams_active 0" in text
        assert 'talkface_rejected_total{reason="unauthorised"} 2' in text

        async def ws(query: str) -> int:
            async with aiohttp.ClientSession() as session:
                try:
                    async with session.ws_connect(f"{url}/v1/stream?{query}") as w:
                        await w.receive()
                        return 101
                except aiohttp.WSServerHandshakeError as e:
                    return e.status

        assert asyncio.run(ws("")) == 401 and asyncio.run(ws("token=s3cret")) == 101


def test_live_link_packets_from_a_stream_decode(wav30):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    port = receiver.getsockname()[1]
    audio = sf.read(wav30, dtype="float32")[0][: 2 * 16000]
    with running(ServerConfig(livelink=f"127.0.0.1:{port}")) as (url, _):
        got = asyncio.run(stream_file(url, audio, "format=f32&output=binary&subject=Ada"))
    packets = [decode(receiver.recv(2048)) for _ in range(got["weights"].shape[0])]
    receiver.close()
    assert {p.subject for p in packets} == {"Ada"} and packets[0].rate == 30
    assert [p.frame - packets[0].frame for p in packets] == list(range(len(packets)))
    order = [got["ready"]["names"].index(n) for n in LIVE_LINK_ORDER]  # Live Link's order: JawRight before JawLeft
    np.testing.assert_allclose(np.stack([p.values for p in packets]), got["weights"][:, order], atol=1e-6)
    assert packets[5]["jawOpen"] == pytest.approx(got["weights"][5, order[LIVE_LINK_ORDER.index("jawOpen")]])


# --- faults: each gets a clean error or close, the other streams go on, nothing leaks ---


def raw_websocket(port: int, rcvbuf: int = 4096) -> socket.socket:
    """A WebSocket client on a plain socket with a tiny receive buffer (to play a client that never reads)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /v1/stream?format=f32 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    return sock


def ws_frame(payload: bytes, opcode: int = 2) -> bytes:
    mask = os.urandom(4)
    size = len(payload)
    length = bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2, "big")
    head = bytes([0x80 | opcode]) + length
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


async def expect_close(url: str, send, query: str = "format=f32") -> tuple[int | None, list]:
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/v1/stream?{query}") as ws:
        await ws.receive()  # ready
        messages = []
        await send(ws)
        async for msg in ws:
            messages.append(json.loads(msg.data) if msg.type == aiohttp.WSMsgType.TEXT else msg.data)
        return ws.close_code, messages


def test_faults_get_clean_errors_and_the_server_keeps_serving(wav30):
    audio = sf.read(wav30, dtype="float32")[0]
    config = ServerConfig(max_streams=4, idle_timeout=1.0, send_buffer_seconds=1.0, max_message_bytes=64 * 1024)
    with running(config) as (url, server):
        port = int(url.rsplit(":", 1)[1])

        async def scenario() -> None:
            good = asyncio.create_task(stream_file(url, audio[: 8 * 16000]))  # goes on through all of it

            async def malformed(ws):
                await ws.send_str("{not json")
                await ws.send_str('{"type": "dance"}')
                await ws.send_str('{"type": "face", "face": {"jawStrength": 9}}')
                await ws.send_str('{"type": "start", "sample_rate": 8000}')
                await ws.send_bytes(audio[:3200].astype("<f4").tobytes())
                await ws.send_str('{"type": "start"}')  # too late
                await ws.send_str('{"type": "end"}')

            code, messages = await expect_close(url, malformed)
            errors = [m["message"] for m in messages if isinstance(m, dict) and m["type"] == "error"]
            assert code == 1000 and len(errors) == 4 and "out of range" in errors[2] and "before" in errors[3]

            async def nan(ws):
                await ws.send_bytes(np.full(320, np.nan, "<f4").tobytes())

            assert (await expect_close(url, nan))[0] == 1007

            async def torn(ws):
                await ws.send_bytes(b"\x00" * 321)

            assert (await expect_close(url, torn))[0] == 1007

            async def huge(ws):
                await ws.send_bytes(b"\x00" * (128 * 1024))

            assert (await expect_close(url, huge))[0] == 1009

            async def silent(ws):
                pass  # says nothing: closed as idle

            assert (await expect_close(url, silent))[0] == 1001

            # a bad sample rate is refused before the upgrade
            async with aiohttp.ClientSession() as session:
                with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                    await session.ws_connect(f"{url}/v1/stream?sample_rate=12")
                assert e.value.status == 400
                # too many connections: 503, while the others go on
                held = [await session.ws_connect(f"{url}/v1/stream") for _ in range(4 - len(server.conns))]
                with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                    await session.ws_connect(f"{url}/v1/stream")
                assert e.value.status == 503
                for w in held:  # clients that vanish mid-stream
                    await w.send_bytes(np.zeros(3200, "<i2").tobytes())
                    w._response.connection.transport.abort()  # no close handshake
            # a client that never reads its frames is closed once a second of them waits
            sock = raw_websocket(port)
            loop = asyncio.get_running_loop()
            chunk = ws_frame(audio[16000:32000].astype("<f4").tobytes()[:60000])
            try:
                for _ in range(200):
                    await loop.run_in_executor(None, sock.sendall, chunk)
            except OSError:
                pass  # the server closed it
            deadline = time.monotonic() + 20
            while "slow_client" not in server.metrics.text() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            sock.close()
            result = await good
            assert result["close"] == 1000 and result["weights"].shape[0] == 8 * 30

        asyncio.run(scenario())
        deadline = time.monotonic() + 5
        while server.conns and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not server.conns  # nothing leaks
        metrics = server.metrics.text()
        for kind in ("bad_message", "bad_audio", "idle", "slow_client"):
            assert f'talkface_stream_errors_total{{kind="{kind}"}}' in metrics, kind
        assert json.load(urllib.request.urlopen(f"{url}/healthz"))["streams"] == 0


def test_http_api_fuzzed_from_its_openapi_spec():
    schemathesis = pytest.importorskip("schemathesis")
    failures = []
    operations = [("/v1/animate", "POST"), ("/healthz", "GET"), ("/metrics", "GET"), ("/openapi.json", "GET")]
    with running(ServerConfig(max_audio_seconds=5)) as (url, _):
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        for path, method in operations:
            fuzz(schema[path][method], url, failures)
        assert not failures
        assert json.load(urllib.request.urlopen(f"{url}/healthz"))["status"] == "ok"


def fuzz(operation, url: str, failures: list) -> None:
    """Up to 30 generated requests for one operation; any 5xx is a failure."""
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy())
    def check(case):
        response = case.call(base_url=url, timeout=20)
        if response.status_code >= 500:
            failures.append((operation.path, response.status_code, response.text[:200]))

    check()


def test_a_dead_model_worker_closes_its_streams_and_is_replaced(wav30):
    audio = sf.read(wav30, dtype="float32")[0]
    with running(ServerConfig(workers=1)) as (url, server):

        async def scenario() -> None:
            async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/v1/stream?format=f32") as ws:
                await ws.receive()  # ready
                await ws.send_bytes(audio[:16000].astype("<f4").tobytes())
                assert json.loads((await ws.receive()).data)["type"] == "frames"
                server.workers[0].process.kill()
                await ws.send_bytes(audio[16000:19200].astype("<f4").tobytes())  # seen at the next tick
                async for _ in ws:
                    pass
                assert ws.close_code == 1011
            result = await stream_file(url, audio[: 2 * 16000])  # the replacement serves new streams
            assert result["close"] == 1000 and result["weights"].shape[0] == 60

        asyncio.run(scenario())
        assert "talkface_worker_restarts_total 1" in server.metrics.text()
        assert json.load(urllib.request.urlopen(f"{url}/healthz"))["status"] == "ok"


def test_a_model_worker_that_dies_between_calls_is_replaced_before_a_client_finds_it(wav30):
    """Workers killed while idle (the OOM killer) went unnoticed: /healthz said ok, the next stream was
    closed with 1011 having done nothing wrong and the next POSTs got 503s. Now they are replaced at once."""
    audio = sf.read(wav30, dtype="float32")[0][: 2 * 16000]
    wav = Path("tests/data/arctic_a0009.wav").read_bytes()
    with running(ServerConfig(workers=1, animate_jobs=1)) as (url, server):
        assert post(url, wav)[0] == 200  # starts the file worker
        for worker in server.workers + server.file_workers:
            worker.process.kill()
        assert wait_until(lambda: health(url)[0] == 503, 5)  # noticed, being replaced
        assert wait_until(lambda: health(url)[0] == 200, 60)
        result = asyncio.run(stream_file(url, audio))
        assert result["close"] == 1000 and result["weights"].shape[0] == 60
        assert post(url, wav)[0] == 200
        assert "talkface_worker_restarts_total 2" in server.metrics.text()


def test_a_worker_whose_server_is_killed_mid_tick_exits_without_a_traceback(capfd):
    """A server killed (SIGKILL, the OOM killer) with a worker's answer unread: the worker's pipe reads as
    reset, not closed, and every worker printed a Python traceback into the service's log."""
    worker = Worker(None)
    worker.ready()
    work = [("start", stream_settings({}, 30.0)), ("audio", np.zeros(16000 * 20, "<i2"))]
    worker.conn.send([(1, work)])  # a tick of 20 s of audio: the server is gone before its answer
    time.sleep(0.2)
    worker.conn.close()
    worker.process.join(30)
    assert worker.process.exitcode == 0
    assert "Traceback" not in capfd.readouterr().err


def test_more_workers_than_four_per_core_is_a_usage_error(monkeypatch, capsys):
    """--workers had no upper bound: 1000 started a thousand model processes at once (~100 MB each) and
    a pool of 2004 threads, an out-of-memory machine rather than one clear line."""
    import talkface.serve

    started = []
    monkeypatch.setattr(talkface.serve, "serve", started.append)  # (without the check: no real server)
    assert main(["serve", "--workers", "1000"]) == 2 and not started
    assert "--workers 1000: at most" in capsys.readouterr().err
    assert main(["serve", "--workers", str(len(os.sched_getaffinity(0)))]) == 0 and len(started) == 1


def health(url: str) -> tuple[int, dict]:
    """/healthz: (HTTP status, body)."""
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_until(check, seconds: float = 10.0) -> bool:
    """Poll `check` until it is true or `seconds` pass; its last answer."""
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(check())


def test_streams_closed_for_bad_audio_give_their_slots_back(wav30):
    """NaN audio then "end": each stream is closed with 1007 and its slot freed (they leaked: then 503 for all)."""
    audio = sf.read(wav30, dtype="float32")[0][:16000]
    with running(ServerConfig(max_streams=2)) as (url, _):

        async def nan_then_end(ws):
            await ws.send_bytes(np.full(320, np.nan, "<f4").tobytes())
            await ws.send_str('{"type": "end"}')

        async def scenario() -> None:
            for _ in range(3):  # more than max_streams
                assert (await expect_close(url, nan_then_end))[0] == 1007
            got = await stream_file(url, audio)
            assert got["close"] == 1000 and got["weights"].shape[0] == 30

        asyncio.run(scenario())
        assert wait_until(lambda: health(url) == (200, {"status": "ok", "streams": 0, "max_streams": 2}))


def test_deeply_nested_json_gets_an_error_and_the_stream_goes_on(wav30):
    audio = sf.read(wav30, dtype="float32")[0][:16000]
    nested = "[" * 100_000 + "]" * 100_000  # json.loads: RecursionError
    deep_object = '{"type": "face", "face": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}"
    with running() as (url, _):
        controls = [(5, nested), (6, deep_object), (7, '{"type": "start", "seed": 1e999}')]
        got = asyncio.run(stream_file(url, audio, controls=controls))
    errors = [m["message"] for m in got["messages"] if m["type"] == "error"]
    assert len(errors) == 3 and got["close"] == 1000 and got["weights"].shape[0] == 30
    assert got["messages"][-1] == {"type": "end", "frames": 30}


def model_worker_pids(server_pid: int) -> list[int]:
    """The spawned model worker processes of a server process (not the resource tracker)."""
    children = []
    for task in Path(f"/proc/{server_pid}/task").iterdir():
        children += [int(p) for p in (task / "children").read_text().split()]
    return [p for p in children if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]


def test_a_stuck_model_worker_is_killed_and_replaced(wav30):
    """A worker that makes no progress (stopped) is killed after worker_timeout: its streams get 1011, POSTs
    waiting on it a 503 JSON error, /healthz says degraded until the replacement is up, then all serve again."""
    audio = sf.read(wav30, dtype="float32")[0]
    wav = Path("tests/data/arctic_a0009.wav").read_bytes()
    config = ServerConfig(workers=1, animate_jobs=1, worker_timeout=2.0)
    with running(config) as (url, server):
        seen: list[tuple[int, str]] = []

        async def watch() -> None:
            while True:
                status, body = await asyncio.to_thread(health, url)
                seen.append((status, body["status"]))
                await asyncio.sleep(0.02)

        async def scenario() -> None:
            watcher = asyncio.create_task(watch())
            async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/v1/stream?format=f32") as ws:
                await ws.receive()  # ready
                await ws.send_bytes(audio[:16000].astype("<f4").tobytes())
                assert json.loads((await ws.receive()).data)["type"] == "frames"
                os.kill(server.workers[0].process.pid, signal.SIGSTOP)
                started = time.monotonic()
                await ws.send_bytes(audio[16000:19200].astype("<f4").tobytes())
                async for _ in ws:
                    pass
                assert ws.close_code == 1011 and time.monotonic() - started < 10
            deadline = time.monotonic() + 60
            while not ((503, "degraded") in seen and seen[-1] == (200, "ok")) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # degraded until the replacement is up, then ok
            watcher.cancel()
            assert (503, "degraded") in seen and seen[-1] == (200, "ok")
            got = await stream_file(url, audio[: 2 * 16000])  # the replacement serves new streams
            assert got["close"] == 1000 and got["weights"].shape[0] == 60

        asyncio.run(scenario())
        assert post(url, wav)[0] == 200  # starts the file worker
        os.kill(server.file_workers[0].process.pid, signal.SIGSTOP)
        started = time.monotonic()
        status, body, kind = post(url, wav)
        assert status == 503 and kind.startswith("application/json") and "worker" in json.loads(body)["error"]
        assert time.monotonic() - started < 10
        assert post(url, wav)[0] == 200  # its replacement
        assert "talkface_worker_restarts_total 2" in server.metrics.text()
        assert health(url)[1]["status"] == "ok"


def test_serve_prints_its_bound_port_and_sigterm_ends_it_despite_stuck_workers():
    """`serve --port 0` says the real port once it listens; SIGTERM ends it in seconds with every worker stuck."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "talkface.cli", "serve", "--port", "0", "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    workers: list[int] = []
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(60)
        match = re.search(r"serving on http://127\.0\.0\.1:(\d+) ", lines[0] if lines else "")
        assert match and int(match[1]) > 0, lines
        url = f"http://127.0.0.1:{match[1]}"
        assert health(url)[1]["status"] == "ok"  # it listens once it says so
        assert len(model_worker_pids(proc.pid)) == 1  # streams only: the file workers wait for a file
        wav = Path("tests/data/arctic_a0009.wav").read_bytes()
        assert post(url, wav)[0] == 200  # starts the file workers
        workers = model_worker_pids(proc.pid)
        assert len(workers) == 3  # one for streams, two for files
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)

        async def stuck_stream() -> None:
            async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/v1/stream") as ws:
                await ws.receive()
                await ws.send_bytes(np.zeros(16000, "<i2").tobytes())  # a tick the worker never answers
                async for _ in ws:
                    pass

        client = threading.Thread(target=lambda: asyncio.run(stuck_stream()), daemon=True)
        client.start()
        poster = threading.Thread(target=post, args=(url, wav), daemon=True)
        poster.start()
        time.sleep(1.0)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        assert time.monotonic() - started < 8
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_slow_clients_are_dropped_after_the_request_timeout():
    """Half-sent headers or bodies are not held open: a body gets 408 (JSON), stalled headers a close."""
    with running(ServerConfig(request_timeout=1.0)) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        started = time.monotonic()
        body = socket.create_connection(("127.0.0.1", port))
        body.sendall(b"POST /v1/animate HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nRIFF")
        headers = socket.create_connection(("127.0.0.1", port))
        headers.sendall(b"POST /v1/animate HTTP/1.1\r\nHost: x\r\n")
        body.settimeout(10)
        headers.settimeout(10)
        answer = b""
        while chunk := body.recv(4096):
            answer += chunk
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408") and "error" in json.loads(payload)
        assert headers.recv(4096) == b""  # closed
        assert time.monotonic() - started < 5
        body.close()
        headers.close()
        assert health(url)[0] == 200


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent():
    """A client that announces 10 MB against a 0.5 MB limit and sends four bytes gets its 413 at once,
    not after the request timeout: it holds nothing, and the server goes on serving."""
    with running(ServerConfig(max_upload_mb=0.5, request_timeout=30.0)) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /v1/animate HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\nRIFF")
            head, _, payload = sock.recv(4096).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413") and "0.5 MB limit" in json.loads(payload)["error"]
        assert time.monotonic() - started < 5
        assert health(url)[0] == 200


def test_100_continue_comes_only_for_a_request_the_server_takes():
    """A client that sends ``Expect: 100-continue`` was told to go on before the route looked at the
    request (aiohttp's default), so a declared length over the limit or a bad query got its refusal
    only after a 100 that has the client upload its body for nothing; now the refusal comes first, a
    request taken gets its 100, and an unknown expectation gets its 417 as JSON, not plain text."""
    wav = Path("tests/data/arctic_a0009.wav").read_bytes()
    with running(ServerConfig(max_upload_mb=0.5)) as (url, _):
        port = int(url.rsplit(":", 1)[1])

        def exchange(head: bytes, body: bytes = b"") -> bytes:
            """Send a request's head, its first answer back, then the body, and the rest until the server closes."""
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(head + b"Host: x\r\nConnection: close\r\n\r\n")
                answer = sock.recv(4096)
                sock.sendall(body)
                with contextlib.suppress(ConnectionResetError):
                    while chunk := sock.recv(65536):
                        answer += chunk
            return answer

        expect = b"Expect: 100-continue\r\n"
        too_large = exchange(b"POST /v1/animate HTTP/1.1\r\nContent-Length: 10000000\r\n" + expect)
        bad_query = exchange(b"POST /v1/animate?format=nope HTTP/1.1\r\nContent-Length: 4\r\n" + expect)
        taken = exchange(b"POST /v1/animate?format=csv HTTP/1.1\r\nContent-Length: %d\r\n" % len(wav) + expect, wav)
        unknown = exchange(b"GET /healthz HTTP/1.1\r\nExpect: 200-ok\r\n")
    assert too_large.startswith(b"HTTP/1.1 413") and bad_query.startswith(b"HTTP/1.1 400"), (too_large, bad_query)
    assert taken.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200") and b"Timecode" in taken, taken[:300]
    head, _, body = unknown.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 417") and b"application/json" in head and "200-ok" in json.loads(body)["error"]


def test_a_client_that_does_not_read_a_large_answer_loses_its_connection(wav30, tmp_path):
    """The animation of a minute at 240 fps is 8 MB of CSV: a client that sent the audio and then read
    nothing held its connection and the answer for as long as it stayed connected (aiohttp's write
    waits on the socket without end); now the connection is closed once the answer has made no progress
    for the request timeout (the client gets what the kernel had taken, not the whole answer), and the
    server goes on serving."""
    minute = tmp_path / "minute.wav"
    sf.write(minute, np.tile(load_audio(wav30), 2), 16000, subtype="PCM_16")
    wav = minute.read_bytes()
    head = b"POST /v1/animate?format=csv&fps=240 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(wav)
    with running(ServerConfig(request_timeout=1.0)) as (url, state):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # (before connecting: the window stays small)
            sock.settimeout(10)
            sock.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
            sock.sendall(head + wav)
            deadline = time.monotonic() + 60  # (the file workers start, then the animation is made)
            while "talkface_animations_total 1" not in state.metrics.text() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(3.0)  # the answer stalls at once, and the server gives up after 1 s of that
            received = b""
            with contextlib.suppress(ConnectionResetError):
                while chunk := sock.recv(1 << 20):
                    received += chunk
        answer_head, _, body = received.partition(b"\r\n\r\n")
        assert answer_head.startswith(b"HTTP/1.1 200"), received[:300]
        length = int(re.search(rb"Content-Length: (\d+)", answer_head)[1])
        assert length > 6_000_000 and len(body) < length, (length, len(body))
        assert health(url)[0] == 200


def test_a_multipart_form_upload_is_refused_with_what_to_send():
    """A browser form or ``curl -F`` sends the WAV inside multipart/form-data: that read as a corrupt
    audio file (422 "Format not recognised"); now it is a 415 that says to send the file as the body."""
    wav = Path("tests/data/arctic_a0009.wav").read_bytes()
    form = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n'
            + wav + b"\r\n--b--\r\n")  # fmt: skip
    with running() as (url, _):
        status, body, kind = post(url, form, headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert post(url, wav, "format=csv", {"Content-Type": "audio/wav; charset=binary"})[0] == 200
    assert status == 415 and kind.startswith("application/json"), (status, body)
    assert "--data-binary" in json.loads(body)["error"]


def test_animation_requests_refused_as_too_many_are_counted(monkeypatch):
    """The 503 for too many animation requests waiting is a request refused before it started: it was
    missing from ``talkface_rejected_total``, which counted only too many streams and a bad token."""
    import talkface.serve.animate

    async def slow_job(*_: object) -> bytes:  # (holds its place among the waiting requests)
        await asyncio.sleep(2.0)
        return b"done"

    monkeypatch.setattr(talkface.serve.animate, "_file_job", slow_job)
    wav = Path("tests/data/arctic_a0009.wav").read_bytes()
    with running(ServerConfig(animate_jobs=1)) as (url, state):  # 4 may wait
        with ThreadPoolExecutor(6) as pool:
            statuses = sorted(status for status, _, _ in pool.map(lambda _: post(url, wav), range(6)))
        text = state.metrics.text()
    assert statuses == [200] * 4 + [503] * 2
    assert 'talkface_rejected_total{reason="too_many_requests"} 2' in text


def test_every_http_error_is_one_line_json():
    wav = Path("tests/data/arctic_a0009.wav").read_bytes()
    with running(ServerConfig(max_upload_mb=0.05)) as (url, _):
        answers = [post(url, b"RIFF not really a wave file"), post(url, wav * 2), post(url, b"")]
        for path, method in [("/nowhere", "GET"), ("/v1/animate", "GET"), ("/healthz", "DELETE")]:
            try:
                urllib.request.urlopen(urllib.request.Request(url + path, method=method))
            except urllib.error.HTTPError as e:
                answers.append((e.code, e.read(), e.headers.get("Content-Type", "")))
    assert [a[0] for a in answers] == [422, 413, 400, 404, 405, 405]
    for status, body, kind in answers:
        assert kind.startswith("application/json") and body.count(b"\n") <= 1, (status, body)
        error = json.loads(body)["error"]
        assert isinstance(error, str) and error and " at 0x" not in error and "BytesIO" not in error, error


def test_streams_and_files_on_another_rig(wav30):
    audio = load_audio(wav30)[: 4 * 16000]
    wav = Path("tests/data/arctic_a0009.wav").read_bytes()
    with running() as (url, _):
        got = asyncio.run(stream_file(url, audio, "format=f32&output=binary&rig=oculus"))
        names = got["ready"]["names"]
        assert names[:15] == ["viseme_sil", "viseme_PP", "viseme_FF", "viseme_TH", "viseme_DD", "viseme_kk",
                              "viseme_CH", "viseme_SS", "viseme_nn", "viseme_RR", "viseme_aa", "viseme_E",
                              "viseme_I", "viseme_O", "viseme_U"]  # fmt: skip
        assert got["weights"].shape[1] == len(names) and got["close"] == 1000
        np.testing.assert_allclose(got["weights"][:, :15].sum(axis=1), 1.0, atol=1e-4)  # they sum to 1
        status, body, _ = post(url, wav, "format=json&rig=vrm")
        made = json.loads(body)
        assert status == 200 and made["names"][:5] == ["aa", "ih", "ou", "ee", "oh"]
        assert made["metadata"]["rig"] == "vrm" and len(made["metadata"]["audio_sha256"]) == 64
        for query in ("format=csv&rig=oculus", "format=json&rig=my_rig.json", "format=json&rig=../../etc/passwd"):
            status, body, _ = post(url, wav, query)  # Live Link is ARKit only; no file on the server is read
            assert status == 400 and "error" in json.loads(body), query


def test_a_rig_in_the_start_message_is_the_streams(wav30):
    audio = load_audio(wav30)[: 2 * 16000]
    with running() as (url, _):
        got = asyncio.run(stream_file(url, audio, controls=[(0, {"type": "start", "format": "f32",
                                                                  "output": "binary", "rig": "vrm"})]))  # fmt: skip
    assert len(got["ready"]["names"]) == 61  # the query's ready, then the start message's
    ready = got["messages"][0]
    assert ready["type"] == "ready" and ready["names"][:5] == ["aa", "ih", "ou", "ee", "oh"]
    assert got["weights"].shape[1] == len(ready["names"]) == 26 and got["close"] == 1000


def _unread(url: str, message: str, server, seconds: float = 60.0) -> tuple[int, int]:
    """Open a WebSocket by hand (a 4 KB receive buffer), send `message` over and over and read nothing
    until the server drops the stream; the most control items and outbox messages it held meanwhile."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(1.0)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /v1/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())  # fmt: skip
    assert sock.recv(12) == b"HTTP/1.1 101"  # (the rest of the answer is never read)
    payload, mask = message.encode(), os.urandom(4)  # a client's frames are masked
    frame = bytes([0x81, 0xFE]) + len(payload).to_bytes(2, "big") + mask
    frame += bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    most_pending = most_outbox = 0
    deadline = time.monotonic() + seconds
    while not server.conns and time.monotonic() < deadline:  # (the server is still setting it up)
        time.sleep(0.01)
    while server.conns and time.monotonic() < deadline:
        with contextlib.suppress(OSError):  # (a send that waits a second: the server reads no more)
            sock.sendall(frame * 200)
        for c in list(server.conns.values()):
            most_pending, most_outbox = max(most_pending, len(c.pending)), max(most_outbox, len(c.outbox))
    sock.close()
    return most_pending, most_outbox


@pytest.mark.parametrize("message", ['{"type": "unknown' + "x" * 250 + '"}', '{"type": "start"}'])
def test_a_client_that_sends_and_never_reads_is_closed_with_little_held(message):
    """Each message is answered (an error, a ready): a client that never reads them is closed (1008)
    once `UNREAD_NOTES` wait for it, though it keeps sending and is never idle."""
    from talkface.serve.server import UNREAD_NOTES

    with running() as (url, server):
        most_pending, most_outbox = _unread(url, message, server)
        assert not server.conns and server.metrics.text().count('kind="slow_client"') == 1
    assert most_pending <= 2 and most_outbox <= UNREAD_NOTES


def test_control_messages_without_audio_hold_one_of_each_kind():
    """Emotion and face changes with no audio between them: the worker takes them as they come."""
    with running() as (url, server):

        async def spam() -> int:
            most = 0
            async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/v1/stream") as ws:
                await ws.receive()  # ready
                for k in range(3000):
                    await ws.send_str(json.dumps({"type": "emotion", "emotion": f"joy={k % 10 / 10}"}))
                    if k % 100 == 0:
                        await ws.send_str(json.dumps({"type": "face", "face": {"jawStrength": 0.5}}))
                    most = max([most, *(len(c.pending) for c in server.conns.values())])
                await ws.send_bytes(np.zeros(3200, "<i2").tobytes())
                await ws.send_str(json.dumps({"type": "end"}))
                async for _ in ws:
                    pass
                assert ws.close_code == 1000
            return most

        assert asyncio.run(spam()) <= 3


def test_a_stream_rig_may_be_a_mapping_of_its_own():
    rig = stream_settings({"rig": {"MouthOpen": {"jawOpen": 1.0}, "Lips": {"viseme_PP": 1.0}}}, 30.0)["rig"]
    assert rig.targets == ("MouthOpen", "Lips")
    for bad in ({"MouthOpen": {"jawOpen": "wide"}}, {"MouthOpen": {"mouthWide": 1.0}}, {"MouthOpen": 1.0}, 7,
                {"MouthOpen": {"jawOpen": float("nan")}}, {"MouthOpen": {"jawOpen": 1e308}},
                # as a rig file: weights that are not numbers, no targets, an empty name, none of its terms
                {"MouthOpen": {"jawOpen": True}}, {"MouthOpen": {"jawOpen": "1"}}, {}, {" ": {"jawOpen": 1.0}},
                {"MouthOpen": {}}):  # fmt: skip
        with pytest.raises(TalkfaceError):
            stream_settings({"rig": bad}, 30.0)


@pytest.mark.parametrize(("key", "value"), [("fps", True), ("seed", 1.5), ("sample_rate", 16000.7),
                                            ("sample_rate", "9" * 5000), ("fps", "nan")])  # fmt: skip
def test_stream_numbers_are_refused_not_rounded(key, value):
    with pytest.raises(TalkfaceError, match=f"^{key} must be ") as refused:
        stream_settings({key: value}, 30.0)
    assert len(str(refused.value)) < 120
    assert stream_settings({"fps": "24", "seed": 7.0, "sample_rate": 22050}, 30.0)["seed"] == 7


def test_a_stream_takes_animate_style_options(wav30):
    from urllib.parse import quote

    audio = load_audio(wav30)[: 4 * 16000]
    still = json.dumps({"no-blink": True, "no-gaze": True, "no-head": True, "no-breathing": True})
    with running() as (url, _):
        alive = asyncio.run(stream_file(url, audio))
        calm = asyncio.run(stream_file(url, audio, f"format=f32&output=binary&style={quote(still)}"))
    assert len(alive["ready"]["names"]) == 61 and len(calm["ready"]["names"]) == 52  # no head or eye angles
    blink = calm["ready"]["names"].index("eyeBlinkLeft")
    assert calm["close"] == 1000 and np.abs(calm["weights"][:, blink]).max() < 1e-6


def test_style_options_are_parsed_as_on_the_command_line():
    from talkface.serve.workers import style_of

    settings = stream_settings({"style": {"blink-rate": 30, "seed": 5, "emotion": "joy=0.5"}, "seed": 7}, 30.0)
    style = style_of(settings)
    assert style.life.blink_rate == 30 and style.seed == 7 and style.emotion == {"joy": 0.5}  # beside it wins
    for bad in ({"blink-rate": "often"}, {"no-blink": "yes"}, {"volume": 3}, "[1]", 7):
        with pytest.raises(TalkfaceError):
            stream_settings({"style": bad}, 30.0)


def test_settings_left_out_take_the_command_lines_defaults_with_or_without_a_style():
    from talkface.post import Style
    from talkface.serve.workers import style_of

    # an unrelated style option (or none) must not switch the emotion between neutral and "auto"
    for values in ({}, {"style": {}}, {"style": {"no-blink": True}}):
        assert style_of(stream_settings(values, 30.0)).emotion == Style.from_options({}).emotion == "auto"
    for emotion, parsed in (("auto", "auto"), (" AUTO ", "auto"), ("neutral", {}), ("", {})):  # as --emotion takes it
        assert style_of(stream_settings({"emotion": emotion}, 30.0)).emotion == parsed


def test_face_beside_a_style_keeps_its_multiply_and_offset():
    from talkface.serve.workers import style_of

    style = {"multiply": "jawOpen=0.5", "offset": "browInnerUp=0.1", "face": "blinkStrength=0.5"}
    face = style_of(stream_settings({"style": style, "face": {"jawStrength": 1.2}}, 30.0)).face
    assert face.multipliers == {"jawOpen": 0.5} and face.offsets == {"browInnerUp": 0.1}  # other options: kept
    assert face.jaw_strength == 1.2 and face.blink_strength == 1.0  # the style's face parameters: replaced


def test_a_face_message_keeps_the_starts_multiply(wav30):
    audio = sf.read(wav30, dtype="float32")[0][: 3 * 16000]
    start = {"type": "start", "format": "f32", "output": "binary", "style": {"multiply": "jawOpen=0"}}
    with running(ServerConfig(workers=1)) as (url, _):
        got = asyncio.run(stream_file(url, audio, "format=f32&output=binary",
                                      [(0, start), (50, {"type": "face", "face": "jawStrength=1.5"})]))  # fmt: skip
    assert got["close"] == 1000
    assert np.abs(got["weights"][:, got["ready"]["names"].index("jawOpen")]).max() < 1e-6


async def _one_long_chunk(url: str, pcm: np.ndarray, rate: int, want: int) -> tuple[int, float]:
    """Send `pcm` as one message and wait, without ending, for `want` frames: (frames, seconds it took)."""
    got, began = 0, time.monotonic()
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/v1/stream?sample_rate={rate}") as ws:
        await ws.receive()  # ready
        await ws.send_bytes(pcm.astype("<i2").tobytes())
        while got < want:
            msg = await ws.receive(timeout=30)
            m = json.loads(msg.data)
            got += len(m["frames"]) if m["type"] == "frames" else 0
    return got, time.monotonic() - began


def test_one_chunk_of_minutes_comes_back_whole_without_a_next_message():
    """A step analyses at most 30 s of a stream's audio (so a long chunk cannot stall the worker's other
    streams or outlast its timeout); the rest is worked on in the next steps at once, not held back until
    the client sends again (70 s in one message gave the frames of the first 30 s, then nothing)."""
    rate, seconds = 4000, 70
    pcm = (np.sin(np.arange(rate * seconds) * 0.3) * 8000).astype(np.int16)
    with running() as (url, _):
        frames, _ = asyncio.run(_one_long_chunk(url, pcm, rate, want=30 * (seconds - 1)))
    assert frames >= 30 * (seconds - 1)


def test_a_worker_step_takes_at_most_30s_of_a_stream_even_when_it_ends():
    from talkface.engine import Engine
    from talkface.model import load_default
    from talkface.serve.workers import tick

    engine, streams, closing = Engine(load_default()), {}, set()
    pcm = (np.sin(np.arange(8000 * 70) * 0.3) * 8000).astype(np.int16)
    tick(engine, streams, [(1, [("start", stream_settings({"sample_rate": 8000}, 30.0))])], closing)
    results = tick(engine, streams, [(1, [("audio", pcm), ("end",)])], closing)
    steps = [results]
    while not steps[-1][0].ended:
        assert steps[-1][0].unheard > 0 and len(steps) < 10  # the server ticks again for what is left
        steps.append(tick(engine, streams, [(1, [])], closing))
    assert [len(s) for s in steps] == [1, 1, 1] and max(s[0].frames.num_frames for s in steps) <= 30 * 30 + 1
    assert sum(s[0].frames.num_frames for s in steps) == 70 * 30 and not streams and not closing


def test_a_flood_of_one_sample_messages_waits_as_one_item(wav30):
    """A client that sends its audio one sample a message held an item and an arrival time per message, up to
    the 10 s of audio a stream may hold (3.84 M messages at 384 kHz: the server grew by a GB in 20 s, and one
    tick took the worker past its timeout, killing every stream on it). Its audio now waits as one item, its
    arrival times one a millisecond, and the frames are those of 20 ms chunks."""
    pcm = (sf.read(wav30, dtype="float32")[0][: 2 * 16000] * 32767).astype("<i2")
    with running() as (url, server):

        async def flood() -> tuple[dict, int, int]:
            frames, most_pending, most_arrivals = {}, 0, 0
            async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/v1/stream?output=binary") as ws:
                await ws.receive()  # ready
                for i, sample in enumerate(pcm.tobytes()[k : k + 2] for k in range(0, 2 * pcm.size, 2)):
                    await ws.send_bytes(sample)
                    if i % 500 == 0:
                        for c in list(server.conns.values()):
                            most_pending = max(most_pending, len(c.pending))
                            most_arrivals = max(most_arrivals, len(c.arrivals))
                await ws.send_str(json.dumps({"type": "end"}))
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        _, first, count, channels, _ = HEADER.unpack_from(msg.data)
                        block = np.frombuffer(msg.data, "<f4", offset=HEADER.size).reshape(count, channels)
                        frames.update((first + j, row) for j, row in enumerate(block))
                assert ws.close_code == 1000
            return frames, most_pending, most_arrivals

        frames, most_pending, most_arrivals = asyncio.run(flood())
        chunked = asyncio.run(stream_file(url, pcm, "format=s16&output=binary"))["weights"]
    assert most_pending <= 2 and most_arrivals <= 2000  # (one a message: up to 32 000; one a ms: a slow host lags)
    np.testing.assert_allclose(np.stack([frames[k] for k in range(len(frames))]), chunked, atol=1e-6)


def test_a_client_dropped_for_not_reading_its_frames_loses_its_connection():
    """A client that sends audio and never reads is closed (1008) once its frames back up; its connection must
    go too. The close was cancelled at once (aiohttp's writers share one wait for the socket to drain, and the
    stream's send loop waiting there was cancelled), leaving aiohttp's graceful close of the transport, which
    waits for the client to read: the socket and its buffered frames stayed for as long as the client held on."""
    config = ServerConfig(send_buffer_seconds=1.0, max_pending_seconds=1.0)
    with running(config) as (url, server):
        host, port = url.removeprefix("http://").split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # (before connecting: the window it offers)
        sock.settimeout(0.5)
        sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(f"GET /v1/stream?output=json&fps=240 HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n".encode())  # fmt: skip
        payload, mask = np.full(320, 1000, "<i2").tobytes(), os.urandom(4)  # 20 ms, masked as a client's
        frame = bytes([0x82, 0xFE]) + len(payload).to_bytes(2, "big") + mask
        frame += bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        cut, deadline = False, time.monotonic() + 20
        while not cut and time.monotonic() < deadline:
            try:
                sock.sendall(frame * 5)
            except TimeoutError:  # the server reads no more (it holds back, or dropped the stream)
                time.sleep(0.1)
            except OSError:  # reset: the server let the connection go
                cut = True
        sock.close()
        assert cut and server.metrics.text().count('kind="slow_client"') == 1


def test_a_client_gone_while_its_flush_is_awaited_gives_its_slot_back():
    """The send loop found the client gone (ConnectionResetError) and only marked the stream closed: the
    worker runs no flush for a closed stream, so `finish`, waiting for it, waited for ever and the stream
    kept its slot (the fuzz tests caught it now and then). The loop now ends the stream, which wakes it."""
    from talkface.serve.connections import Conn
    from talkface.serve.server import Server

    class Gone(Conn):
        async def send(self, item: object) -> None:
            raise ConnectionResetError

        async def close(self, code: int, message: str) -> None:
            pass

    class Idle:  # a worker that never answers
        wake = None

    async def scenario() -> None:
        server = Server(ServerConfig())
        Idle.wake = asyncio.Event()
        c = Gone(1, Idle(), stream_settings({}, 30.0))  # type: ignore[arg-type]
        sender = asyncio.get_running_loop().create_task(server._send_loop(c))
        c.outbox.append(("frames", 1))
        c.wake_sender.set()
        await asyncio.wait_for(server.finish(c), 5.0)  # (timed out before: TimeoutError)
        await sender
        assert c.closed and c.closing is not None

    asyncio.run(scenario())
