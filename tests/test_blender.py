"""The Blender add-on (integrations/blender/): its file reader agrees with talkface's, and, where Blender is
installed (`make test-blender` installs Debian's), it keys the talkface head in real, headless Blender."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA
from test_cli import run

from talkface.animation import Animation
from talkface.export import livelink_csv
from talkface.retarget import load_rig
from talkface.rig import ARKIT_NAMES

ROOT = Path(__file__).resolve().parent.parent
ADDON = ROOT / "integrations" / "blender" / "talkface_blender"
#: A user's rig mapping with the terms the add-on computes itself (ARKit shapes, the blink split).
MAPPING = {
    "mouthOpen": {"jawOpen": 1.0, "mouthClose": -1.0},
    "smile": {"mouthSmileLeft": 0.5, "mouthSmileRight": 0.5},
    "blink": {"blink": 1.0},
    "winkLeft": {"blinkLeft": 1.0},
}


def _formats():
    spec = importlib.util.spec_from_file_location("talkface_blender_formats", ADDON / "formats.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def test_reader_matches_talkface(tmp_path):
    """The add-on's own reader (no talkface inside Blender) reads talkface's CSV as talkface does, knows
    the same 52 names, and maps weights through a rig file as `--rig` does."""
    formats = _formats()
    assert formats.ARKIT_NAMES == ARKIT_NAMES
    rng = np.random.default_rng(0)
    anim = Animation(rng.uniform(0, 1, (75, 52)).astype(np.float32), 30.0, ARKIT_NAMES)
    (tmp_path / "a.csv").write_text(livelink_csv.csv_text(anim))
    ours, theirs = formats.read_csv(str(tmp_path / "a.csv")), livelink_csv.read(tmp_path / "a.csv")
    assert ours.fps == theirs.fps == 30.0 and ours.times[1] == pytest.approx(1 / 30)
    for name in ("jawOpen", "mouthClose", "eyeBlinkLeft"):
        np.testing.assert_allclose(ours.column(name), theirs.with_channels((name,)).weights[:, 0], atol=1e-6)
    (tmp_path / "map.json").write_text(json.dumps(MAPPING))
    track = formats.Track(30.0, ARKIT_NAMES, tuple(anim.times), tuple(map(tuple, anim.weights.tolist())))
    mapped = formats.retarget(track, formats.read_mapping(str(tmp_path / "map.json")))
    expected = load_rig(str(tmp_path / "map.json")).apply(anim)
    assert mapped.names == expected.names
    np.testing.assert_allclose(np.array(mapped.rows), expected.weights, atol=1e-6)


@pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender (make test-blender installs it)")
def test_addon_in_blender(tmp_path):
    """tests/blender/addon_in_blender.py in headless Blender on the head (.glb) and the JSON / CSV of one
    animation: shape-key values at several frames equal the file's, a sound strip, a rig mapping."""
    made = subprocess.run(["make", "-s", "-C", str(ROOT), "blender-addon"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    shutil.copy(ROOT / "build" / "talkface_blender.zip", tmp_path)
    shutil.copy(DATA / "arctic_a0009.wav", tmp_path / "speech.wav")
    (tmp_path / "map.json").write_text(json.dumps(MAPPING))
    wav = str(tmp_path / "speech.wav")
    for out, extra in (
        ("face.json", ()),
        ("face.csv", ()),
        ("head.glb", ()),
        ("rig.json", ("--rig",)),
        ("rig.glb", ("--rig",)),
    ):
        rig = (*extra, str(tmp_path / "map.json")) if extra else ()
        result = run("animate", wav, *rig, "-o", str(tmp_path / out))
        assert result.returncode == 0, result.stderr
    env = {**os.environ, "BLENDER_USER_SCRIPTS": str(tmp_path / "user_scripts")}
    script = ROOT / "tests" / "blender" / "addon_in_blender.py"
    command = [
        "blender",
        "-b",
        "--factory-startup",
        "--python-exit-code",
        "1",
        "--python",
        str(script),
        "--",
        str(tmp_path),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert all(
        f"ok {name}" in done.stdout
        for name in ("arkit_json", "scene_rate_kept", "livelink_csv", "rig_mapping", "errors")
    )


_CSV_HEAD = "Timecode,BlendShapeCount,JawOpen\n"


@pytest.mark.parametrize(
    ("name", "text", "csv_fps", "fragment"),
    [
        ("big.json", '{"fps": 30, "names": ["jawOpen"], "frames": [[1%s]]}' % ("0" * 400), None, "numbers"),
        ("tiny.json", '{"fps": 5e-324, "names": ["jawOpen"], "frames": [[1], [0]]}', None, '"fps"'),
        ("nan.csv", _CSV_HEAD + "00:00:00:00.000,1,nan\n00:00:01:00.000,1,0\n", None, "row 2"),
        ("inf.csv", _CSV_HEAD + "00:00:00:00.000,1,0\n00:00:01:00.000,1,1e400\n", None, "row 3"),
        ("long.csv", _CSV_HEAD + "9" * 5000 + ":00:00:00.000,1,0\n", 30.0, "bad timecode"),
        ("ff.csv", _CSV_HEAD + "00:00:00:" + "1" * 5000 + ",1,0\n", 30.0, "bad timecode"),
        ("fast.csv", _CSV_HEAD + "".join(f"00:00:00:00.{i:09d},1,0\n" for i in range(9)) + "00:00:01:00,1,0\n", None,
         "set the frame rate"),
        ("rate.csv", _CSV_HEAD + "00:00:00:00.000,1,0\n", float("nan"), "frame rate"),
        ("slow.csv", _CSV_HEAD + "00:00:00:00.000,1,0\n", 1e-320, "frame rate"),
    ],
)  # fmt: skip
def test_reader_refuses_odd_files_with_one_line(tmp_path, name, text, csv_fps, fragment):
    """What the importer cannot key gets its one-line FormatError, which the operator reports: not an
    OverflowError or ValueError (a traceback in Blender), nor NaN, infinite or absurd-rate keys (read before)."""
    formats = _formats()
    (tmp_path / name).write_text(text)
    with pytest.raises(formats.FormatError, match=fragment) as caught:
        formats.read(str(tmp_path / name), csv_fps)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 200


def test_mapping_refuses_a_weight_too_large_for_a_float(tmp_path):
    formats = _formats()
    (tmp_path / "map.json").write_text('{"mouthOpen": {"jawOpen": 1%s}}' % ("0" * 400))
    with pytest.raises(formats.FormatError, match="finite number"):
        formats.read_mapping(str(tmp_path / "map.json"))
