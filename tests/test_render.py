"""`talkface render`: an MP4 of the head speaking, whose lips visibly close on /p b m/."""

import re
import subprocess

import numpy as np
import pytest
from conftest import ARCTIC_TRANSCRIPT, DATA
from test_cli import assert_one_line_error, run

from talkface.align import read_htk_labels
from talkface.head import Head
from talkface.phonemes import BILABIALS, OPEN_VOWELS
from talkface.rig import INDEX

pytest.importorskip("moderngl", reason="rendering needs the render extra")
from talkface.render import Renderer, ffmpeg_exe


def mouth_box(renderer: Renderer) -> tuple[int, int, int, int]:
    """Pixel box around the lips (the lip-coloured front vertices, projected)."""
    head = renderer.head
    skin = head.part_vertices("skin")
    c = head.colors[skin].astype(int)
    lips = skin[(c[:, 0] - c[:, 1] > 60) & (head.vertices[skin, 2] > 0.05)]
    (x0, y0), (x1, y1) = renderer.project(head.vertices[lips]).min(0), renderer.project(head.vertices[lips]).max(0)
    return int(x0), int(y0), int(x1) + 1, int(y1) + 1


def dark_pixels(image: np.ndarray, box: tuple[int, int, int, int]) -> int:
    """Pixels in the box darker than lips and skin: the opening of the mouth (throat, tongue in shadow)."""
    x0, y0, x1, y1 = box
    return int((image[y0:y1, x0:x1].astype(int).sum(-1) < 3 * 70).sum())


@pytest.fixture(scope="module")
def renderer():
    with Renderer(512, 512) as r:
        yield r


def test_mouth_shapes_show_in_the_image(renderer):
    head, box = Head.load(), mouth_box(renderer)

    def image(**weights: float) -> np.ndarray:
        w = np.zeros(52, np.float32)
        for k, v in weights.items():
            w[INDEX[k]] = v
        v = head.apply(w)
        return renderer.frame(v, head.normals(v))

    rest = image()
    assert rest.shape == (512, 512, 3) and rest.std() > 20  # a head, not a blank frame
    assert dark_pixels(rest, box) < 20
    assert dark_pixels(image(jawOpen=0.6), box) > 120
    assert dark_pixels(image(jawOpen=0.6, mouthClose=0.6), box) < 40  # ARKit's mouthClose shuts the lips


def test_render_writes_an_mp4_whose_lips_close_on_bilabials(tmp_path, arctic_wav, renderer):
    out = tmp_path / "preview.mp4"
    result = run("render", str(arctic_wav), "--text", ARCTIC_TRANSCRIPT, "-o", str(out))
    assert result.returncode == 0, result.stderr
    probe = subprocess.run([ffmpeg_exe(), "-i", str(out)], capture_output=True, text=True).stderr
    assert re.search(r"Video: h264.*512x512.*30 fps", probe) and "Audio: aac" in probe, probe
    raw = subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-i", str(out), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, 512, 512, 3)
    assert abs(len(frames) - 3.1 * 30) <= 1
    box = mouth_box(renderer)
    hand = read_htk_labels(DATA / "arctic_a0009_phone.lab")  # judged at the hand-labelled phone midpoints
    closed = [dark_pixels(frames[round(p.mid * 30)], box) for p in hand if p.phone in BILABIALS]
    opened = [dark_pixels(frames[round(p.mid * 30)], box) for p in hand if p.phone in OPEN_VOWELS]
    assert len(closed) == 2 and len(opened) >= 5
    assert max(closed) < 30, closed  # /p/ of "sharply", /b/ of "table": lips shut
    assert min(opened) > 100, opened  # open vowels: the mouth's inside shows


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["render", "{wav}", "-o", "{tmp}/o.avi"], "mp4"),
        (["render", "{tmp}/missing.wav", "-o", "{tmp}/o.mp4"], "no such audio file"),
    ],
)
def test_render_bad_input(tmp_path, arctic_wav, args, fragment):
    assert_one_line_error(run(*[a.format(tmp=tmp_path, wav=arctic_wav) for a in args]), fragment)
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*part*"))
