"""`talkface view`: the local server, and the page in headless Chromium playing the head in sync with the
audio, and its emotion and face panel restyling the clip."""

import contextlib
import http.client
import io
import json
import select
import socket
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ARCTIC_TRANSCRIPT, DATA
from test_cli import assert_one_line_error, run

from talkface import Animator, Style
from talkface.align import read_htk_labels
from talkface.errors import TalkfaceError
from talkface.phonemes import BILABIALS, OPEN_VOWELS, phones_tsv
from talkface.viewer import MAX_UPLOAD, ViewerServer, load_clip

CHROMIUM = "/usr/bin/chromium"
# Flags for Debian's Chromium on a machine without a display, a GPU or outside network.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
]  # fmt: skip


#: What dragging the time slider to t does.
SCRUB_TO = "t => { const s = document.getElementById('scrub'); s.value = t; s.dispatchEvent(new Event('input')); }"


@contextlib.contextmanager
def running(srv: ViewerServer):
    """`srv` serving in a thread, shut down after."""
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="module")
def server():
    with running(ViewerServer(load_clip(DATA / "arctic_a0009.wav", ARCTIC_TRANSCRIPT), port=0)) as srv:
        yield srv


def request(
    server: ViewerServer, method: str, path: str, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, str, bytes]:
    """Send a request (Host: 127.0.0.1:port, as the page's own, unless `headers` has another):
    (status, content type, body)."""
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, answer.headers["Content-Type"], answer.read()
    finally:
        conn.close()


def get(server: ViewerServer, path: str, data: bytes | None = None, ctype: str = "application/json"):
    """GET `path`, or POST `data` typed `ctype` to it: (status, content type, body)."""
    if data is None:
        return request(server, "GET", path)
    return request(server, "POST", path, data, {"Content-Type": ctype})


def assert_json_error(answer: tuple[int, str | None, bytes], status: int, fragment: str = "") -> None:
    """`answer` is `status` with the one-line JSON error {"error": "...`fragment`..."}."""
    code, ctype, body = answer
    assert (code, ctype) == (status, "application/json"), answer
    text = body.decode()
    assert "\n" not in text.strip() and list(json.loads(text)) == ["error"], text
    assert fragment in json.loads(text)["error"], text


def test_server_binds_loopback_and_serves_page_head_and_clip(server):
    assert server.server_address[0] == "127.0.0.1"
    status, ctype, body = get(server, "/")
    assert status == 200 and ctype.startswith("text/html") and b"/static/viewer.js" in body
    status, ctype, body = get(server, "/static/three.bundle.js")
    assert status == 200 and ctype == "text/javascript" and len(body) > 500_000  # three.js, bundled, no CDN
    assert get(server, "/head.glb")[2][:4] == b"glTF"
    status, _, body = get(server, "/api/clip")
    clip = json.loads(body)
    assert clip["fps"] == 30 and len(clip["frames"]) == 93 and "jawOpen" in clip["names"]
    assert clip["title"] == "arctic_a0009.wav"
    status, ctype, body = get(server, clip["audio"])
    assert status == 200 and ctype == "audio/wav" and body[:4] == b"RIFF"
    for bad in ("/static/../__init__.py", "/static/missing.js", "/nothing"):
        assert get(server, bad)[0] == 404


def test_dropped_audio_is_animated(server):
    wav = (DATA / "arctic_a0009.wav").read_bytes()
    query = "/api/animate?name=mine.wav&text=" + urllib.parse.quote(ARCTIC_TRANSCRIPT)
    status, _, body = get(server, query, wav, "audio/wav")
    clip = json.loads(body)
    assert status == 200 and clip["title"] == "mine.wav" and len(clip["frames"]) == 93
    assert_json_error(get(server, "/api/animate", b"this is not audio", "application/octet-stream"), 400, "audio")
    hours = io.BytesIO()  # 2.4 KB at 1 Hz: twenty minutes of audio
    sf.write(hours, np.random.default_rng(0).uniform(-0.3, 0.3, 1200), 1, format="WAV", subtype="PCM_16")
    assert_json_error(get(server, "/api/animate", hours.getvalue(), "audio/wav"), 400, "longer than 10 minutes")


def post_style(server: ViewerServer, values: object) -> tuple[int, dict]:
    """POST style option values to /api/style: (status, answer)."""
    body = values if isinstance(values, bytes) else json.dumps(values).encode()
    status, ctype, answer = get(server, "/api/style", body)
    assert ctype == "application/json"
    return status, json.loads(answer)


def channel(clip: dict, name: str) -> np.ndarray:
    """One channel of a clip's JSON, over its frames."""
    return np.array(clip["frames"])[:, clip["names"].index(name)]


def test_style_api_restyles_the_clip_as_animating_it_afresh_would(server):
    status, _, body = get(server, "/api/style")
    options = json.loads(body)
    assert status == 200 and len(options["emotions"]) == 10 and options["face"]["jawStrength"] == [0, 2, 1]
    neutral = json.loads(get(server, "/api/clip")[2])
    joy = {"emotion": "joy=1", "face": "jawStrength=1.3", "no-head": True}
    try:
        status, clip = post_style(server, joy)
        assert status == 200 and clip["title"] == neutral["title"] and clip["restyle"]
        for side in ("Left", "Right"):  # the smile: the lip-corner puller of joy
            assert channel(neutral, "mouthSmile" + side).mean() < 0.1 < 0.5 < channel(clip, "mouthSmile" + side).mean()
        assert channel(neutral, "headYaw").std() > 0.005 and not channel(clip, "headYaw").any()  # head motion off
        fresh = Animator(style=Style.from_options(joy)).animate(DATA / "arctic_a0009.wav", ARCTIC_TRANSCRIPT)
        np.testing.assert_allclose(np.array(clip["frames"]), fresh.weights, atol=1e-6)  # JSON keeps 6 decimals
        assert json.loads(get(server, "/api/style")[2])["values"] == joy
    finally:
        assert post_style(server, {"emotion": "neutral"})[0] == 200  # as the other tests expect it


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"emotion": "glee=1"}, "unknown emotion 'glee'"),
        ({"emotion": "joy=1.5"}, "out of range [0, 1]"),
        ({"emotion-strength": 2}, "out of range [0, 1]"),
        ({"face": "jawStrength=9"}, "jawStrength = 9 is out of range"),
        ({"face": "jaw=1"}, "unknown face parameter"),
        ({"no-blink": "yes"}, "takes true or false"),
        ({"emotion-track": "/etc/passwd"}, "unknown style option"),
        ({"seed": -1}, "--seed"),
        (b"joy=1", "JSON object"),
        ([{"emotion": "joy"}], "JSON object"),
        (b"[" * 30_000 + b"]" * 30_000, "JSON object"),  # nested past Python's recursion limit, under 64 KB
    ],
)
def test_style_api_rejects_bad_values_and_keeps_serving(server, values, fragment):
    before = get(server, "/api/clip")[2]
    status, answer = post_style(server, values)
    assert status == 400 and list(answer) == ["error"], answer
    assert fragment in answer["error"] and "\n" not in answer["error"]
    status, _, after = get(server, "/api/clip")
    assert status == 200 and after == before  # still serving, the clip untouched


def test_requests_naming_another_host_are_refused(server):
    """DNS rebinding: a page of evil.example whose name now points at 127.0.0.1 must not read the clip."""
    port = server.server_address[1]
    foreign = [
        "evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}", f"evil.example@127.0.0.1:{port}",
        f"127.0.0.1:{port + 1}", "127.0.0.1", f"192.168.1.20:{port}", "",
    ]  # fmt: skip
    for host in foreign:
        for path in ("/api/clip/audio", "/api/clip", "/"):
            assert_json_error(request(server, "GET", path, headers={"Host": host}), 403, "not this viewer")
        style = {"Host": host, "Content-Type": "application/json"}
        assert_json_error(request(server, "POST", "/api/style", b'{"emotion": "joy=1"}', style), 403)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LocalHost:{port}", f"[::1]:{port}"):
        status, _, body = request(server, "GET", "/api/clip/audio", headers={"Host": host})
        assert status == 200 and body[:4] == b"RIFF"


def test_hosts_a_viewer_is_bound_to_or_told_to_allow_are_its_own():
    with running(ViewerServer(None, host="0.0.0.0", port=0, allowed_hosts=["Studio.local"])) as srv:
        port = srv.server_address[1]
        for host in (f"192.168.1.20:{port}", f"0.0.0.0:{port}", f"studio.local:{port}", f"localhost:{port}"):
            status, _, body = request(srv, "GET", "/api/clip", headers={"Host": host})
            assert (status, body) == (200, b"null"), host
        for host in (f"evil.example:{port}", f"studio.local:{port + 1}"):
            assert_json_error(request(srv, "GET", "/api/clip", headers={"Host": host}), 403)


def test_cross_site_posts_are_refused_and_change_nothing(server):
    """CSRF: a form or fetch of another site can send text/plain, form or untyped bodies without asking
    (no CORS preflight), and names its origin: none of them restyles the clip or replaces it."""
    port = server.server_address[1]
    before = get(server, "/api/clip")[2]
    wav = (DATA / "arctic_a0009.wav").read_bytes()
    style = json.dumps({"emotion": "joy=1"}).encode()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {} if ctype is None else {"Content-Type": ctype}
        assert_json_error(request(server, "POST", "/api/style", style, headers), 415, "application/json")
        assert_json_error(request(server, "POST", "/api/animate", wav, headers), 415, "application/octet-stream")
    origins = ("http://evil.example", f"http://evil.example:{port}", "null", f"https://127.0.0.1:{port}")
    for origin in (*origins, f"http://localhost:{port}", f"http://127.0.0.1:{port + 1}"):
        headers = {"Content-Type": "application/json", "Origin": origin}
        assert_json_error(request(server, "POST", "/api/style", style, headers), 403, "cross-origin")
        headers = {"Content-Type": "audio/wav", "Origin": origin}
        assert_json_error(request(server, "POST", "/api/animate", wav, headers), 403, "cross-origin")
    assert get(server, "/api/clip")[2] == before
    same = {"Content-Type": "application/json; charset=utf-8", "Origin": f"http://127.0.0.1:{port}"}
    status, _, body = request(server, "POST", "/api/style", json.dumps({"emotion": "neutral"}).encode(), same)
    assert status == 200 and json.loads(body)["title"] == json.loads(before)["title"]


def exchange(srv: ViewerServer, data: bytes) -> tuple[int, str | None, bytes]:
    """Send raw `data` on a new connection and read the answer till the server closes it:
    (status, content type, body); (0, None, b"") when it closed without answering."""
    with socket.create_connection(srv.server_address[:2], timeout=30) as s:
        s.sendall(data)
        return read_answer(s)


def read_answer(s: socket.socket) -> tuple[int, str | None, bytes]:
    raw = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := s.recv(1 << 16):
            raw += chunk
    if not raw:
        return 0, None, b""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers.get("Content-Type"), body


#: The start of a POST of style values, up to its length; {host}: the server's own.
POST_STYLE = b"POST /api/style HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(
    ("data", "status", "fragment"),
    [
        (b"NONSENSE\r\n\r\n", 400, "Bad request syntax"),
        (b"GET / HTTP/2.0\r\nHost: {host}\r\n\r\n", 505, "version"),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414, "URI Too Long"),
        (b"GET / HTTP/1.1\r\nHost: {host}\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431, "Line too long"),
        (b"PUT /api/style HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\n\r\n{}", 501, "PUT"),
        (b"GET /nothing HTTP/1.1\r\nHost: {host}\r\n\r\n", 404, "not found"),
        (POST_STYLE + b"\r\n", 411, "Content-Length"),
        (POST_STYLE + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 411, "Content-Length"),
        (POST_STYLE + b"Content-Length: x\r\n\r\n", 400, "JSON object"),
        (POST_STYLE + b"Content-Length: 9\r\n\r\n{}", 400, "ended after 2 of 9 bytes"),
    ],
)
def test_every_error_is_one_line_of_json(server, data, status, fragment):
    with socket.create_connection(server.server_address[:2], timeout=30) as s:
        s.sendall(data.replace(b"{host}", b"127.0.0.1:%d" % server.server_address[1]))
        s.shutdown(socket.SHUT_WR)  # the client sent all it will
        assert_json_error(read_answer(s), status, fragment)
    assert get(server, "/")[0] == 200


def test_an_upload_over_the_limit_gets_413_as_json(server):
    """A client sending a too large file gets its answer (not a reset connection) and the clip is kept."""
    before = get(server, "/api/clip")[2]
    head = b"POST /api/animate HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: audio/wav\r\n" % server.server_address[1]
    with socket.create_connection(server.server_address[:2], timeout=30) as s:
        s.sendall(head + b"Content-Length: %d\r\n\r\n" % (MAX_UPLOAD + 1) + bytes(1 << 20))  # the first MB
        s.shutdown(socket.SHUT_WR)
        assert_json_error(read_answer(s), 413, "at most 64 MB")
    assert get(server, "/api/clip")[2] == before


def trickle(srv: ViewerServer, head: bytes, limit: float = 5.0) -> tuple[float, tuple[int, str | None, bytes]]:
    """Send `head`, then a byte every 0.2 s (a slow-loris client) until the server answers or closes,
    or `limit` s pass: (seconds it took, the answer as `read_answer` gives it)."""
    with socket.create_connection(srv.server_address[:2], timeout=limit) as s:
        s.sendall(head)
        start = time.monotonic()
        while time.monotonic() - start < limit and not select.select([s], [], [], 0.2)[0]:
            s.sendall(b"a")
        try:
            answer = read_answer(s)
        except TimeoutError:
            answer = (0, None, b"")
        return time.monotonic() - start, answer


def test_half_sent_requests_are_dropped_in_bounded_time():
    with running(ViewerServer(None, port=0, request_timeout=1.0)) as srv:
        host = b"127.0.0.1:%d" % srv.server_address[1]
        took, answer = trickle(srv, b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nX-Slow: ")
        assert took < 3
        assert_json_error(answer, 408, "headers took too long")
        post = b"POST /api/style HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: application/json\r\n"
        took, answer = trickle(srv, post + b"Content-Length: 900\r\n\r\n{")
        assert took < 3
        assert_json_error(answer, 408, "took too long to arrive")
        took, answer = trickle(srv, b"GET /")  # a request line that never ends: closed unanswered
        assert took < 3 and answer == (0, None, b"")
        assert get(srv, "/")[0] == 200  # and it still serves


def test_the_page_still_answers_while_a_long_clip_is_animated():
    """Each request has its own thread: a dropped minute of speech being animated holds up no page load."""
    with running(ViewerServer(None, port=0)) as srv:
        speech = io.BytesIO()
        sf.write(speech, np.random.default_rng(0).normal(0, 0.05, 60 * 16000), 16000, format="WAV")
        answers = []
        wav = speech.getvalue()
        posted = threading.Thread(target=lambda: answers.append(get(srv, "/api/animate", wav, "audio/wav")))
        posted.start()
        try:
            deadline = time.monotonic() + 10
            while not srv.lock.locked() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert srv.lock.locked()
            start = time.monotonic()
            assert get(srv, "/")[0] == 200 and get(srv, "/api/clip")[0] == 200 and get(srv, "/head.glb")[0] == 200
            assert time.monotonic() - start < 1 and srv.lock.locked()  # answered while the animation ran
        finally:
            posted.join()
        assert answers[0][0] == 200 and len(json.loads(get(srv, "/api/clip")[2])["frames"]) == 60 * 30


def test_view_loads_a_say_output_folder(tmp_path):
    from talkface import export

    speech, anim = Animator().say("Bob bought a pepper and a map")
    sf.write(tmp_path / "speech.wav", speech.audio, speech.sample_rate)
    export.write(anim, tmp_path / "animation.csv")
    clip = load_clip(tmp_path)
    assert clip.audio[:4] == b"RIFF" and clip.anim.num_frames == anim.num_frames
    assert clip.speech is None  # no phones beside it: shown as made, cannot be restyled
    server = ViewerServer(clip, port=0)
    try:
        with pytest.raises(TalkfaceError, match="cannot be restyled"):
            server.restyle({"emotion": "joy"})
        (tmp_path / "phonemes.tsv").write_text(phones_tsv(speech.phones))  # as `talkface say` writes it
        server.clip = load_clip(tmp_path)
        restyled = server.restyle({"emotion": "joy"})
        assert restyled is not None and restyled.anim.num_frames == anim.num_frames
        assert restyled.anim["mouthSmileLeft"].mean() > 0.5 > 0.1 > anim["mouthSmileLeft"].mean()
    finally:
        server.server_close()


def test_view_loads_what_talkface_say_writes(tmp_path):
    """`talkface say` puts the CSV's provenance beside it (`animation.csv.json`): the viewer plays the
    CSV, restylable through the phones, instead of taking the sidecar for a talkface JSON animation."""
    done = run("say", "Bob bought a pepper and a map", "-o", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "animation.csv.json").is_file()
    clip = load_clip(tmp_path)
    assert clip.title.endswith("animation.csv") and clip.speech is not None
    assert clip.anim.num_frames == len((tmp_path / "animation.csv").read_text().splitlines()) - 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["view", "{tmp}/missing.wav", "--no-browser"], "no such file"),
        (["view", "{tmp}", "--no-browser"], "needs a .wav"),
    ],
)
def test_view_bad_source(tmp_path, args, fragment):
    assert_one_line_error(run(*[a.format(tmp=tmp_path) for a in args]), fragment)


def lips_height(png: bytes) -> int:
    """Height in pixels of the lips (and anything red between them) in a screenshot of the head."""
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    red = (img[..., 0] - img[..., 1] > 50) & (img[..., 0] > 110)  # lips and tongue, not skin
    rows = np.nonzero(red.sum(axis=1) > 8)[0]
    assert len(rows) > 10, "no lips found in the screenshot"
    return int(rows.max() - rows.min() + 1)


@pytest.fixture(scope="module")
def page(server):
    """The viewer page in headless Chromium, loaded; its uncaught errors are checked at the end."""
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (installed by `make install`)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        # Playwright starts each browser with a fresh temporary profile (its own --user-data-dir)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 640})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url)
            page.wait_for_selector("body[data-ready='1']", timeout=60_000)
            yield page
            assert not errors, errors
        finally:
            browser.close()


def scrub(page, t: float) -> None:
    """Drag the time slider to `t` and let a few animation frames show it."""
    page.evaluate(SCRUB_TO, t)
    page.wait_for_function(f"Math.abs(parseFloat(document.getElementById('time').textContent) - {t}) < 0.01")
    page.wait_for_timeout(300)


def test_page_plays_the_head_in_sync_and_the_mouth_follows_the_speech(page):
    hand = read_htk_labels(DATA / "arctic_a0009_phone.lab")
    open_vowel = next(p for p in hand if p.phone in OPEN_VOWELS)  # /aa/ of "sharply"
    bilabial = next(p for p in hand if p.phone in BILABIALS)  # /p/ of "sharply"
    # play: the clock runs and the face moves with it
    page.click("#play")
    page.wait_for_function("parseFloat(document.getElementById('time').textContent) > 0.3", timeout=30_000)
    page.click("#play")  # pause
    shots = {}
    for name, t in (("rest", 0.0), ("open", open_vowel.mid), ("closed", bilabial.mid)):
        scrub(page, t)
        shots[name] = page.locator("#view").screenshot()
    rest, opened, closed = (lips_height(shots[k]) for k in ("rest", "open", "closed"))
    assert opened > 1.4 * rest, (rest, opened)  # the jaw drops on /aa/
    assert closed <= rest + 2, (rest, closed)  # the lips meet on /p/, as in the closed mouth at rest


def lips_width(png: bytes) -> int:
    """Width in pixels of the lips in a screenshot of the head (corner to corner)."""
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    red = (img[..., 0] - img[..., 1] > 50) & (img[..., 0] > 110)
    cols = np.nonzero(red.sum(axis=0) > 2)[0]
    assert len(cols) > 10, "no lips found in the screenshot"
    return int(cols.max() - cols.min() + 1)


def test_panel_sets_joy_and_the_head_smiles_in_place(server, page):
    assert page.locator("#emotion-sliders input").count() == 11  # ten emotions and their strength
    assert page.locator("#face-sliders input").count() == 5
    t = 1.16  # "faced": a spread vowel, lips apart
    scrub(page, t)
    neutral = lips_width(page.locator("#view").screenshot())
    try:
        with page.expect_response("**/api/style") as answer:
            page.fill("#emotion-joy", "1")
        assert answer.value.ok
        page.wait_for_timeout(300)
        assert f"{t:.2f} /" in page.text_content("#time")  # the playback position is kept
        joyful = lips_width(page.locator("#view").screenshot())
        served = json.loads(get(server, "/api/clip")[2])
        assert channel(served, "mouthSmileLeft")[round(t * served["fps"])] > 0.5
        assert joyful > 1.1 * neutral, (neutral, joyful)  # the lip corners pulled out: a smile
    finally:
        with page.expect_response("**/api/style"):
            page.click("#style-reset")
    assert channel(json.loads(get(server, "/api/clip")[2]), "mouthSmileLeft").mean() < 0.1


def test_a_file_given_to_the_page_is_animated(server, page):
    """The page's own upload (the file input, as a drop) is typed and same-origin: the server takes it."""
    page.fill("#transcript", ARCTIC_TRANSCRIPT)
    with page.expect_response(lambda r: urllib.parse.urlsplit(r.url).path == "/api/animate") as answer:
        page.set_input_files("#file", str(DATA / "arctic_a0009.wav"))
    assert answer.value.status == 200, answer.value.text()
    page.wait_for_function("document.getElementById('title').textContent === 'arctic_a0009.wav'")
    assert json.loads(get(server, "/api/clip")[2])["title"] == "arctic_a0009.wav"
