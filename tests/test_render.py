"""`talkface render`: an MP4 of the head speaking, whose lips visibly close on /p b m/."""

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ARCTIC_TRANSCRIPT, DATA
from test_cli import assert_one_line_error, run

from talkface.align import read_htk_labels
from talkface.animation import Animation
from talkface.errors import TalkfaceError
from talkface.head import HEAD_ANGLES, Head
from talkface.phonemes import BILABIALS, OPEN_VOWELS
from talkface.rig import ARKIT_NAMES, INDEX

pytest.importorskip("moderngl", reason="rendering needs the render extra")
from talkface.render import Renderer, ffmpeg_exe, render_video


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


def video_frames(path, size: int) -> np.ndarray:
    """The frames [n, size, size, 3] of an MP4, decoded by ffmpeg."""
    raw = subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, size, size, 3)


def lips_x(image: np.ndarray) -> float:
    """Mean column of the lip-coloured pixels (red well above green)."""
    c = image.astype(int)
    return float(np.nonzero(c[..., 0] - c[..., 1] > 60)[1].mean())


def lips_width(image: np.ndarray) -> int:
    """Columns from the leftmost to the rightmost lip-coloured pixel."""
    c = image.astype(int)
    columns = np.nonzero(c[..., 0] - c[..., 1] > 60)[1]
    return int(columns.max() - columns.min())


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
    frames = video_frames(out, 512)
    assert abs(len(frames) - 3.1 * 30) <= 1
    box = mouth_box(renderer)
    hand = read_htk_labels(DATA / "arctic_a0009_phone.lab")  # judged at the hand-labelled phone midpoints
    closed = [dark_pixels(frames[round(p.mid * 30)], box) for p in hand if p.phone in BILABIALS]
    opened = [dark_pixels(frames[round(p.mid * 30)], box) for p in hand if p.phone in OPEN_VOWELS]
    assert len(closed) == 2 and len(opened) >= 5
    assert max(closed) < 30, closed  # /p/ of "sharply", /b/ of "table": lips shut
    assert min(opened) > 100, opened  # open vowels: the mouth's inside shows


def test_head_turns_with_its_angles(renderer):
    """A clip's head angles turn the head about the neck: yaw to its left moves the lips to the image's right
    (the camera faces it), and a still clip does not move at all."""
    names = (*ARKIT_NAMES, *HEAD_ANGLES)
    weights = np.zeros((3, len(names)), np.float32)
    weights[1, names.index("headYaw")] = 0.2
    weights[2, names.index("headPitch")] = 0.2
    still, turned, nodded = renderer.frames(Animation(weights, 30.0, names))
    assert lips_x(turned) > lips_x(still) + 15
    lips_y = [np.nonzero(img[..., 0].astype(int) - img[..., 1] > 60)[0].mean() for img in (still, nodded)]
    assert lips_y[1] < lips_y[0] - 10  # looking up lifts the chin and lips in the image


@pytest.fixture(scope="module")
def styled(tmp_path_factory):
    """`render` at 128 px with the style options `animate` has: {name: frames}."""
    tmp, wav = tmp_path_factory.mktemp("styled"), str(DATA / "arctic_a0009.wav")
    variants = {
        "default": [],
        "no-head": ["--no-head"],
        "seed": ["--seed", "7"],
        "joy": ["--emotion", "joy=1"],
        "no-jaw": ["--face", "jawStrength=0,lipOpenOffset=0", "--no-head"],
    }
    out = {}
    for name, args in variants.items():
        result = run("render", wav, "--text", ARCTIC_TRANSCRIPT, "--size", "128", *args, "-o", str(tmp / f"{name}.mp4"))
        assert result.returncode == 0, result.stderr
        out[name] = video_frames(tmp / f"{name}.mp4", 128).astype(np.float32)
    return out


def test_render_has_head_motion_and_the_style_options(styled, renderer):
    """The head moves in the video unless --no-head; --seed, --emotion and --face change the frames as they say."""
    sway = {k: np.std([lips_x(f) for f in styled[k]]) for k in ("default", "no-head")}
    assert sway["default"] > 4 * sway["no-head"], sway  # without head motion only the lips' own shapes move them
    assert len(styled["seed"]) == len(styled["default"])  # blinks, gaze and head at other times:
    assert np.abs(styled["seed"] - styled["default"]).mean(axis=(1, 2, 3)).max() > 2
    widths = {k: np.mean([lips_width(f) for f in styled[k]]) for k in ("default", "joy")}
    assert widths["joy"] > widths["default"] + 2, widths  # a smile draws the lips wider
    box = tuple(round(c / 4) for c in mouth_box(renderer))  # the lips at 128 px (the renderer's are 512)
    opening = {k: max(dark_pixels(f.astype(np.uint8), box) for f in styled[k]) for k in ("no-head", "no-jaw")}
    assert opening["no-head"] > 10 and opening["no-jaw"] < opening["no-head"] / 3, opening  # the jaw held shut


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["render", "{wav}", "-o", "{tmp}/o.avi"], "mp4"),
        (["render", "{wav}", "--emotion", "glee=1", "-o", "{tmp}/o.mp4"], "glee"),
        (["render", "{tmp}/missing.wav", "-o", "{tmp}/o.mp4"], "no such audio file"),
    ],
)
def test_render_bad_input(tmp_path, arctic_wav, args, fragment):
    assert_one_line_error(run(*[a.format(tmp=tmp_path, wav=arctic_wav) for a in args]), fragment)
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*part*"))


def _render_in(folder, *args: str, path: str | None = None) -> subprocess.CompletedProcess:
    """`talkface render` run in `folder` (relative names as a user types them), with PATH = `path` if given."""
    env = os.environ | ({"PATH": path} if path else {})
    cmd = [sys.executable, "-m", "talkface.cli", "render", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=folder, env=env)


def test_render_takes_names_that_look_like_ffmpeg_protocols(tmp_path, arctic_wav):
    """A file named `file:a.wav` is that file, and `pipe:1.mp4` a file too: not ffmpeg's protocols (before,
    ffmpeg opened `a.wav` instead, or wrote the video to standard output)."""
    shutil.copy(arctic_wav, tmp_path / "file:a.wav")
    result = _render_in(tmp_path, "file:a.wav", "--size", "64", "-o", "pipe:1.mp4")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pipe:1.mp4"
    assert abs(len(video_frames(tmp_path / "pipe:1.mp4", 64)) - 3.1 * 30) <= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file:a.wav", "pipe:1.mp4"]


def _fake_ffmpeg(folder, script: str) -> str:
    """A PATH whose `ffmpeg` is the shell `script`."""
    (folder / "bin").mkdir()
    exe = folder / "bin" / "ffmpeg"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(0o755)
    return f"{folder / 'bin'}{os.pathsep}{os.environ['PATH']}"


def test_render_ends_when_ffmpeg_says_much(tmp_path, arctic_wav):
    """An ffmpeg that writes more than a pipe holds to stderr before it reads the frames (a stream of decoding
    errors) no longer stalls the render for ever: its last line is the error."""
    path = _fake_ffmpeg(tmp_path, "head -c 300000 /dev/zero | tr '\\0' x >&2\necho >&2\necho 'bad audio' >&2\n"
                        "cat > /dev/null\nexit 1\n")  # fmt: skip
    result = _render_in(tmp_path, str(arctic_wav), "--size", "64", "-o", "v.mp4", path=path)
    assert_one_line_error(result, "ffmpeg failed: bad audio")
    assert not (tmp_path / "v.mp4").exists() and not list(tmp_path.glob(".*"))


def test_render_says_when_ffmpeg_cannot_run(tmp_path, arctic_wav):
    """An ffmpeg that cannot be started is named as the trouble, not the output ("v.mp4: cannot write")."""
    path = _fake_ffmpeg(tmp_path, "")
    (tmp_path / "bin" / "ffmpeg").write_bytes(b"\x7fELF not really")
    result = _render_in(tmp_path, str(arctic_wav), "--size", "64", "-o", "v.mp4", path=path)
    assert_one_line_error(result, "cannot run ffmpeg")
    assert not (tmp_path / "v.mp4").exists() and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize(
    ("weights", "size", "fragment"),
    [(np.nan, 64, "not finite"), (np.inf, 64, "not finite"), (0.0, 65, "even"), (0.0, 0, "even")],
)
def test_render_video_refuses_what_it_cannot_draw(tmp_path, weights, size, fragment):
    """`render_video` on NaN weights drew garbage, and on a size of 0 raised moderngl's own error."""
    anim = Animation(np.full((3, 52), weights, np.float32), 30.0, ARKIT_NAMES)
    with pytest.raises(TalkfaceError, match=fragment):
        render_video(anim, None, tmp_path / "v.mp4", size, size)
    assert not list(tmp_path.iterdir())


def test_an_ffmpeg_that_writes_nothing_leaves_no_empty_video(tmp_path, arctic_wav):
    """An ffmpeg that read the frames and exited 0 without writing left an empty v.mp4."""
    path = _fake_ffmpeg(tmp_path, "cat > /dev/null\nexit 0\n")
    result = _render_in(tmp_path, str(arctic_wav), "--size", "64", "-o", "v.mp4", path=path)
    assert_one_line_error(result, "ffmpeg ended without writing the video")
    assert not (tmp_path / "v.mp4").exists() and not list(tmp_path.glob(".*"))

