"""`talkface view`: the local server, and the page in headless Chromium playing the head in sync with the
audio, and its emotion and face panel restyling the clip."""

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

from talkface import Animator
from talkface.align import read_htk_labels
from talkface.cli_style import style_from_values
from talkface.errors import TalkfaceError
from talkface.phonemes import BILABIALS, OPEN_VOWELS, phones_tsv
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
    """GET `path`, or POST `data` to it: (status, content type, body)."""
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
        fresh = Animator(style=style_from_values(joy)).animate(DATA / "arctic_a0009.wav", ARCTIC_TRANSCRIPT)
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
    ],
)
def test_style_api_rejects_bad_values_and_keeps_serving(server, values, fragment):
    before = get(server, "/api/clip")[2]
    status, answer = post_style(server, values)
    assert status == 400 and list(answer) == ["error"], answer
    assert fragment in answer["error"] and "\n" not in answer["error"]
    status, _, after = get(server, "/api/clip")
    assert status == 200 and after == before  # still serving, the clip untouched


def test_view_loads_a_say_output_folder(tmp_path):
    import soundfile as sf

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
