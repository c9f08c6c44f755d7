"""Protocol fuzzing of `talkface serve`: WebSocket message sequences (malformed, nested, oversized,
truncated, binary-when-text, out of order, raw garbage) and HTTP requests (random bodies, truncated
WAVs, odd queries, methods and paths). Whatever comes in: no 5xx, no 1011, every HTTP error one line of
JSON, every WebSocket answer a protocol message, malformed text never ends a stream; afterwards no
stream is left counted, no worker was lost, and the server still serves a normal stream.

Hypothesis runs derandomized (a fixed seed) with a bounded number of examples: the same cases every run.
"""

import asyncio
import contextlib
import gzip
import http.client
import io
import json
import socket
import struct
import time
import urllib.parse
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from serving import running

from talkface.audio import load_audio
from talkface.serve import ServerConfig

MAX_MESSAGE = 16 * 1024
CONFIG = ServerConfig(workers=1, animate_jobs=1, max_message_bytes=MAX_MESSAGE, idle_timeout=1.0,
                      max_upload_mb=0.5, max_audio_seconds=4.0)  # fmt: skip
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))  # fmt: skip
WAV = Path("tests/data/arctic_a0009.wav").read_bytes()
SPEECH = load_audio("tests/data/arctic_a0009.wav")
KINDS = {"ready", "frames", "error", "end"}
CLOSES = {1000, 1001, 1007, 1008, 1009}  # never 1011: no internal error, no lost worker


@pytest.fixture(scope="module")
def server():
    with running(CONFIG) as (url, state):
        yield url, state


# --- WebSocket ---

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
settings_values = st.one_of(
    json_values,
    st.sampled_from([0, 1, 8000, 384000, 10**30, -1, 1e308, "16000", "f32", "s16", "binary", "json", "joy=0.5",
                     "jawStrength=0.8", "nope=1", {"jawStrength": 0.8}, {"jawStrength": 10**400}]),
)  # fmt: skip
controls = st.fixed_dictionaries(
    {"type": st.sampled_from(["start", "emotion", "face", "end", "dance", "", "START"])},
    optional={key: settings_values for key in ("sample_rate", "format", "output", "fps", "emotion", "face", "seed",
                                               "subject", "bogus")},
)  # fmt: skip


def nested(depth: int, kind: str) -> str:
    """JSON nested `depth` deep: a list, an object, or a face control message whose face is such an object."""
    if kind == "list":
        return "[" * depth + "1" + "]" * depth
    deep = '{"a":' * depth + "1" + "}" * depth
    return deep if kind == "object" else '{"type": "face", "face": ' + deep + "}"


def pcm(samples: int, kind: str) -> bytes:
    """`samples` of 16 kHz audio as 16-bit PCM (the stream's default format): speech, silence, full scale."""
    if kind == "speech":
        return (SPEECH[8000 : 8000 + samples] * 32767).astype("<i2").tobytes()
    return np.full(samples, 0 if kind == "silence" else 32767, "<i2").tobytes()


def text(payload: str) -> tuple[str, str, bool]:
    """A text message: (kind, payload, may_close), may_close marking a message that ends a stream by design
    (here: one over the size limit, 1009)."""
    return "text", payload, len(payload.encode()) > MAX_MESSAGE


malformed_text = st.one_of(
    controls.map(lambda m: text(json.dumps(m))),
    json_values.map(lambda v: text(json.dumps(v))),
    st.text(max_size=200).map(text),
    # past Python's recursion limit (about 1000) and within the message size limit
    st.builds(lambda n, k: text(nested(n, k)), st.integers(900, 2500), st.sampled_from(["list", "object", "face"])),
    st.integers(1, 5000).map(lambda n: text("[" * n)),  # truncated
    st.binary(max_size=64).map(lambda b: text(b.decode("latin-1"))),  # audio sent as text
)
text_messages = st.one_of(malformed_text, st.just(text("x" * (MAX_MESSAGE + 1))))
NAN = ("binary", np.full(64, np.nan, "<f4").tobytes(), True)
binary_messages = st.one_of(
    st.binary(max_size=2048).map(lambda b: ("binary", b, True)),  # random bytes, odd lengths: 1007
    st.builds(lambda n, k: ("binary", pcm(n, k), False), st.integers(0, 4000),
              st.sampled_from(["speech", "silence", "loud"])),
    st.just(("binary", b'{"type": "end"}', True)),  # text sent as binary: an odd number of bytes
    st.just(NAN),  # read as s16 it is audio, as f32 NaN
    st.just(("binary", b"\x00" * (MAX_MESSAGE + 2), True)),  # oversized: 1009
    st.just(("ping", b"", False)),
)  # fmt: skip
good_queries = st.dictionaries(
    st.sampled_from(["sample_rate", "format", "output", "fps", "emotion", "face", "seed", "subject"]),
    st.sampled_from(["ok"]), max_size=3,
).map(lambda q: {k: {"sample_rate": "8000", "format": "f32", "output": "binary", "fps": "60", "emotion": "joy=0.5",
                     "face": "jawStrength=0.8", "seed": "7", "subject": "x"}[k] for k in q})  # fmt: skip
endings = st.sampled_from(["end", "end twice", "close", "abort", "truncated frame", "garbage", "nothing"])
queries = st.dictionaries(
    st.sampled_from(["sample_rate", "format", "output", "fps", "emotion", "face", "seed", "subject", "bogus"]),
    st.sampled_from(["16000", "8000", "12", "f32", "s16", "binary", "json", "60", "0", "nan", "1e999", "joy=0.5",
                     "jawStrength=0.8", "", "x"]),
    max_size=3,
)  # fmt: skip


async def exchange(url: str, query: dict, messages: list, ending: str) -> None:
    """One WebSocket session; asserts what the server answers."""
    async with aiohttp.ClientSession() as session:
        try:
            ws = await session.ws_connect(f"{url}/v1/stream?{urllib.parse.urlencode(query)}")
        except aiohttp.WSServerHandshakeError as e:
            assert e.status == 400, e  # bad settings are refused before the upgrade
            event("refused")
            return
        ready = await ws.receive(timeout=10)
        assert ready.type == aiohttp.WSMsgType.TEXT and json.loads(ready.data)["type"] == "ready"
        # after a message that ends the stream (1007, 1009) aiohttp drops the connection once more data comes:
        # a client that goes on sending may see that (1006) before the close frame
        # 16-bit PCM read as float may be NaN (1007), so with f32 asked for anywhere any audio may end it
        f32 = "f32" in query.values() or any("f32" in p for k, p, _ in messages if k == "text")
        may_close = any(m[2] or (f32 and m[0] == "binary") for m in messages)
        allowed = CLOSES | ({1006} if may_close else set())
        with contextlib.suppress(ConnectionError, RuntimeError):  # the server may have closed it by now
            for kind, payload, _ in messages:
                if ws.closed:
                    break
                if kind == "text":
                    await ws.send_str(payload)
                elif kind == "binary":
                    await ws.send_bytes(payload)
                else:
                    await ws.ping()
            if ending.startswith("end"):
                await ws.send_str('{"type": "end"}')
                if ending == "end twice":
                    await ws.send_str('{"type": "end"}')
        transport = ws._response.connection.transport if ws._response.connection else None
        if ending in ("abort", "truncated frame", "garbage") and transport is not None:
            transport.write({"abort": b"", "truncated frame": b"\x82\xfe\x10\x00ab",
                             "garbage": bytes(range(256)) * 4}[ending])  # fmt: skip
            if ending != "garbage":
                transport.abort()
                return
        if ending == "close":
            await ws.close()
            assert ws.close_code in allowed, ws.close_code
            event("client closed")
            return
        answers = []
        async with asyncio.timeout(15):  # "nothing": the server closes an idle stream
            async for msg in ws:
                answers.append(msg)
        event(f"{ending}: closed {ws.close_code}")
        if ending == "garbage":
            return  # the frames after the garbage are not frames any more
        for msg in answers:
            if msg.type == aiohttp.WSMsgType.TEXT:
                assert json.loads(msg.data)["type"] in KINDS, msg.data[:200]
            else:
                assert msg.type == aiohttp.WSMsgType.BINARY and msg.data[:4] == b"TFF1"
        assert ws.close_code in allowed, (ws.close_code, ending, [(k, len(p)) for k, p, _ in messages])
        if ending.startswith("end") and not may_close:
            # text (malformed or not) and 16-bit audio never end a stream: its end flushes and closes normally
            last = json.loads(answers[-1].data) if answers and answers[-1].type == aiohttp.WSMsgType.TEXT else None
            assert ws.close_code == 1000 and last and last["type"] == "end", (ws.close_code, query, messages)


@settings(FUZZ, max_examples=120)
@given(
    query=st.one_of(st.just({}), st.just({"format": "f32"}), good_queries, queries),
    messages=st.lists(st.one_of(text_messages, binary_messages), max_size=6),
    ending=endings,
)
# the classes that broke before, every run: bad audio then end (its slot leaked), nesting past the
# recursion limit, an idle client, audio before start, start twice, end twice, audio after end
@example(query={"format": "f32"}, messages=[NAN], ending="end")
@example(query={}, messages=[text(nested(2000, "list")), text(nested(2000, "face"))], ending="end")
@example(query={}, messages=[], ending="nothing")
@example(query={}, messages=[("binary", pcm(3200, "speech"), False), text('{"type": "start"}')], ending="end")
@example(query={}, messages=[text('{"type": "start"}'), text('{"type": "start", "fps": 60}')], ending="end twice")
@example(query={}, messages=[text('{"type": "end"}'), ("binary", pcm(320, "speech"), False)], ending="end")
def test_websocket_sessions_fuzzed(server, query, messages, ending):
    url, state = server
    asyncio.run(exchange(url, query, messages, ending))
    assert_no_streams_left(state)


@FUZZ
@given(messages=st.lists(malformed_text, min_size=1, max_size=8))
def test_malformed_text_gets_errors_and_the_stream_goes_on(server, messages):
    url, state = server
    asyncio.run(exchange(url, {}, messages, "end"))
    assert_no_streams_left(state)


def assert_no_streams_left(state, seconds: float = 5.0) -> None:
    """Every stream closed gives its slot back (the server's count drops to zero soon after the close)."""
    deadline = time.monotonic() + seconds
    while state.conns and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not state.conns, "a closed stream is still counted"


# --- HTTP ---


def truncated_wav(cut: int) -> bytes:
    return WAV[:cut]


def wav_claiming(seconds: float) -> bytes:
    """A WAV whose header claims `seconds` of 16 kHz 16-bit audio but that holds 0.1 s."""
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(1600, np.float32), 16000, format="WAV", subtype="PCM_16")
    data = bytearray(buffer.getvalue())
    size = min(int(seconds * 32000), 2**32 - 1 - 36)
    data[4:8], data[40:44] = struct.pack("<I", size + 36), struct.pack("<I", size)
    return bytes(data)


bodies = st.one_of(
    st.binary(max_size=4096),
    st.integers(0, len(WAV)).map(truncated_wav),
    st.floats(0, 1e6).map(wav_claiming),
    st.just(WAV),
    st.just(b"\x00" * 600_000),  # over the upload limit: 413
)
animate_queries = st.dictionaries(
    st.sampled_from(["format", "fps", "emotion", "face", "seed", "text", "bogus"]),
    st.one_of(st.sampled_from(["csv", "json", "glb", "usd", "rhubarb-dat", "mp3", "60", "-1", "nan", "joy=0.5",
                               "jawStrength=2", "he turned sharply"]), st.text(max_size=30)),
    max_size=3,
)  # fmt: skip


def request(url: str, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, str]:
    host, port = urllib.parse.urlsplit(url).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        return response.status, response.read(), response.getheader("Content-Type", "")
    finally:
        conn.close()


def check_answer(status: int, body: bytes, kind: str, head: bool = False) -> None:
    assert status < 500, (status, body[:300])
    if status >= 400 and not head:
        assert kind.startswith("application/json") and body.count(b"\n") == 0, (status, kind, body[:300])
        assert isinstance(json.loads(body)["error"], str)


@FUZZ
@given(body=bodies, query=animate_queries)
def test_http_animate_fuzzed(server, body, query):
    url, _ = server
    status, answer, kind = request(url, "POST", f"/v1/animate?{urllib.parse.urlencode(query)}", body)
    check_answer(status, answer, kind)
    assert status in (200, 400, 413, 422), (status, answer[:300])


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    path=st.one_of(
        st.sampled_from(["/v1/animate", "/v1/stream", "/healthz", "/metrics", "/openapi.json", "/", "/v1/"]),
        st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=40).map(lambda p: "/" + p),
    ),
)
def test_http_methods_and_paths_fuzzed(server, method, path):
    url, _ = server
    status, answer, kind = request(url, method, urllib.parse.quote(path, safe="/?=&%"))
    check_answer(status, answer, kind, head=method == "HEAD")


@FUZZ
@given(head=st.sampled_from([b"", b"GET / HTTP/1.1\r\n", b"POST /v1/animate HTTP/1.1\r\nContent-Length: 9\r\n"]),
       junk=st.binary(max_size=300))  # fmt: skip
def test_raw_bytes_on_the_http_port(server, head, junk):
    """Bytes that are not HTTP (or stop being it): a 400 or a close, at once, never a 5xx or a hang.

    (A request line or header aiohttp's parser refuses never reaches the app: see the test below.)"""
    url, _ = server
    with socket.create_connection(urllib.parse.urlsplit(url).netloc.split(":"), timeout=10) as sock:
        sock.sendall(head + junk + b"\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    if answer:
        status = int(answer.split(b" ", 2)[1])
        assert status < 500, answer[:300]


def raw_exchange(url: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `data` as is on a new connection; read the answer until the server closes it (or 10 s pass)."""
    with socket.create_connection(urllib.parse.urlsplit(url).netloc.split(":"), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split(" ", 2)[1]), headers, body


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/9\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
        b"POST /v1/animate HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /v1/animate HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n",
        b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /v1/animate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    ],
    ids=["request line", "version", "header line", "control char", "content-length", "two content-lengths",
         "oversized header", "oversized request line", "chunk size"],
)  # fmt: skip
def test_requests_the_parser_refuses_get_json_errors(server, raw):
    """A request aiohttp's HTTP parser refuses (it never reaches the app's routes or middleware) is
    answered like every other error: a 4xx with one line of JSON, {"error": "..."}; the server goes on."""
    url, _ = server
    status, headers, body = raw_exchange(url, raw)
    assert 400 <= status < 500, (status, body[:300])
    assert headers.get("content-type", "").startswith("application/json"), (headers, body[:300])
    assert body.count(b"\n") == 0 and isinstance(json.loads(body)["error"], str), body[:300]
    assert request(url, "GET", "/healthz")[0] == 200


@pytest.mark.parametrize(
    "rest", [b"\r\nzz\r\nabc\r\n0\r\n\r\n", b"xx\r\n0\r\n\r\n"], ids=["bad chunk size", "chunk past its size"]
)
def test_a_body_that_turns_malformed_is_refused_at_once(server, rest):
    """A chunked body whose first chunk (the start of a real WAV) was fine and whose next is malformed gets
    the one-line JSON 400 as soon as the bad bytes come, not a 408 after the 30 s request timeout (the
    socket gives up after 10 s), and the connection closes; the server goes on."""
    url, _ = server
    head = b"POST /v1/animate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    with socket.create_connection(urllib.parse.urlsplit(url).netloc.split(":"), timeout=10) as sock:
        sock.sendall(head + b"%x\r\n" % 1000 + WAV[:1000])
        time.sleep(0.3)  # the handler is reading the body by now
        sock.sendall(rest)
        answer = b""
        while chunk := sock.recv(65536):  # until the server closes the connection
            answer += chunk
    headers, _, body = answer.partition(b"\r\n\r\n")
    assert headers.split(b" ", 2)[1] == b"400", answer[:300]
    assert body.count(b"\n") == 0 and json.loads(body)["error"].startswith("malformed HTTP request"), body
    assert request(url, "GET", "/healthz")[0] == 200


@pytest.mark.parametrize(
    ("encoding", "body"),
    [("gzip", WAV[:2000]), ("gzip", gzip.compress(WAV)[:200] + b"\xff" * 200), ("deflate", b"not deflate" * 100)],
    ids=["not gzip", "gzip turns corrupt", "not deflate"],
)  # fmt: skip
def test_a_body_its_content_encoding_does_not_decode_is_a_400(server, encoding, body):
    """A body that is not what its Content-Encoding says was a 500 "internal error" (aiohttp's
    RequestPayloadError reached the middleware as a bug), with two tracebacks in the log."""
    url, _ = server
    head = f"POST /v1/animate HTTP/1.1\r\nHost: x\r\nContent-Encoding: {encoding}\r\nContent-Length: {len(body)}\r\n"
    status, _, answer = raw_exchange(url, head.encode() + b"\r\n" + body)  # (until the server closes the connection)
    assert status == 400, answer[:300]
    assert answer.count(b"\n") == 0 and json.loads(answer)["error"].startswith("malformed request body"), answer
    assert request(url, "GET", "/healthz")[0] == 200


# --- afterwards ---


def test_after_the_fuzzing_nothing_is_left_and_the_server_still_serves(server):
    """Runs last in this module (pytest keeps file order): the fuzz tests above have used the server."""
    url, state = server
    assert_no_streams_left(state, 10.0)
    health = json.loads(request(url, "GET", "/healthz")[1])
    assert health == {"status": "ok", "streams": 0, "max_streams": CONFIG.max_streams}
    assert "talkface_worker_restarts_total 0" in state.metrics.text()

    async def normal() -> tuple[int | None, int]:
        frames = 0
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/v1/stream") as ws:
            await ws.receive()
            audio = pcm(16000, "speech")
            for i in range(0, len(audio), 3200):
                await ws.send_bytes(audio[i : i + 3200])
            await ws.send_str('{"type": "end"}')
            async for msg in ws:
                data = json.loads(msg.data)
                frames += len(data.get("frames", [])) if data["type"] == "frames" else 0
            return ws.close_code, frames

    assert asyncio.run(normal()) == (1000, 30)
    assert request(url, "POST", "/v1/animate?format=csv", WAV)[0] == 200
