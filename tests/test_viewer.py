"""`talkface view`: the local server, and the page in headless Chromium playing the head in sync with the audio."""

import io
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import ARCTIC_TRANSCRIPT, DATA
from test_cli import assert_one_line_error, run

from talkface.align import read_htk_labels
from talkface.phonemes import BILABIALS, OPEN_VOWELS
from talkface.viewer import ViewerServer, load_clip

CHROMIUM = "/usr/bin/chromium"
# Flags for Debian's Chromium on a machine without a display, a GPU or outside network.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
]  # fmt: skip


#: What dragging the time slider to t does.
SCRUB_TO = "t => { const s = document.getElementById('scrub'); s.value = t; s.dispatchEvent(new Event('input')); }"


@pytest.fixture(scope="module")
def server():
    srv = ViewerServer(load_clip(DATA / "arctic_a0009.wav", ARCTIC_TRANSCRIPT), port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def get(server: ViewerServer, path: str, data: bytes | None = None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(server.url.rstrip("/") + path, data=data)
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


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
    status, _, body = get(server, "/api/animate?name=mine.wav&text=" + urllib.request.quote(ARCTIC_TRANSCRIPT), wav)
    clip = json.loads(body)
    assert status == 200 and clip["title"] == "mine.wav" and len(clip["frames"]) == 93
    status, _, body = get(server, "/api/animate", b"this is not audio")
    assert status == 400 and "audio" in json.loads(body)["error"]


def test_view_loads_a_say_output_folder(tmp_path):
    import soundfile as sf

    from talkface import Animator, export

    speech, anim = Animator().say("Bob bought a pepper and a map")
    sf.write(tmp_path / "speech.wav", speech.audio, speech.sample_rate)
    export.write(anim, tmp_path / "animation.csv")
    clip = load_clip(tmp_path)
    assert clip.audio[:4] == b"RIFF" and clip.anim.num_frames == anim.num_frames


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


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (installed by `make install`)")
def test_page_plays_the_head_in_sync_and_the_mouth_follows_the_speech(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    hand = read_htk_labels(DATA / "arctic_a0009_phone.lab")
    open_vowel = next(p for p in hand if p.phone in OPEN_VOWELS)  # /aa/ of "sharply"
    bilabial = next(p for p in hand if p.phone in BILABIALS)  # /p/ of "sharply"
    with sync_api.sync_playwright() as pw:
        # Playwright starts each browser with a fresh temporary profile (its own --user-data-dir)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 640})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url)
            page.wait_for_selector("body[data-ready='1']", timeout=60_000)
            # play: the clock runs and the face moves with it
            page.click("#play")
            page.wait_for_function("parseFloat(document.getElementById('time').textContent) > 0.3", timeout=30_000)
            page.click("#play")  # pause
            shots = {}
            for name, t in (("rest", 0.0), ("open", open_vowel.mid), ("closed", bilabial.mid)):
                page.evaluate(SCRUB_TO, t)
                page.wait_for_function(
                    f"Math.abs(parseFloat(document.getElementById('time').textContent) - {t}) < 0.01"
                )
                page.wait_for_timeout(300)  # a few animation frames at the new time
                shots[name] = page.locator("#view").screenshot()
            assert not errors, errors
        finally:
            browser.close()
    rest, opened, closed = (lips_height(shots[k]) for k in ("rest", "open", "closed"))
    assert opened > 1.4 * rest, (rest, opened)  # the jaw drops on /aa/
    assert closed <= rest + 2, (rest, closed)  # the lips meet on /p/, as in the closed mouth at rest
