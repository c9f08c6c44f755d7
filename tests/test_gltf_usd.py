"""glTF (GLB) and USD exports of the head and its ARKit animation, read back and validated."""

import json
import resource
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ARCTIC_TRANSCRIPT
from test_cli import assert_one_line_error, run

from talkface import Animator
from talkface.head import Head
from talkface.rig import ARKIT_NAMES, INDEX

VALIDATOR = Path(sys.prefix) / "node" / "node_modules" / "gltf-validator"  # where `make install` puts it
_DTYPES = {5126: np.float32, 5123: np.uint16, 5125: np.uint32}
_WIDTH = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}


def read_glb(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    magic, version, total = struct.unpack_from("<4sII", data)
    assert magic == b"glTF" and version == 2 and total == len(data)
    json_len, kind = struct.unpack_from("<I4s", data, 12)
    assert kind == b"JSON"
    doc = json.loads(data[20 : 20 + json_len])
    bin_len, kind = struct.unpack_from("<I4s", data, 20 + json_len)
    assert kind == b"BIN\0"
    return doc, data[28 + json_len : 28 + json_len + bin_len]


def accessor(doc: dict, blob: bytes, i: int) -> np.ndarray:
    """An accessor's values, with sparse substitution, as [count, width]."""
    acc = doc["accessors"][i]
    width = _WIDTH[acc["type"]]

    def view(index: int, dtype, count: int) -> np.ndarray:
        v = doc["bufferViews"][index]
        return np.frombuffer(blob, dtype, count, v.get("byteOffset", 0))

    if "bufferView" in acc:
        out = view(acc["bufferView"], _DTYPES[acc["componentType"]], acc["count"] * width).reshape(-1, width).copy()
    else:
        out = np.zeros((acc["count"], width), np.float32)
    if "sparse" in acc:
        sp = acc["sparse"]
        rows = view(sp["indices"]["bufferView"], _DTYPES[sp["indices"]["componentType"]], sp["count"])
        out[rows] = view(sp["values"]["bufferView"], np.float32, sp["count"] * width).reshape(-1, width)
    return out


@pytest.fixture(scope="module")
def arctic_anim():
    from conftest import DATA

    return Animator().animate(DATA / "arctic_a0009.wav", text=ARCTIC_TRANSCRIPT).with_channels(ARKIT_NAMES)


def validate(path: Path) -> dict:
    if shutil.which("node") is None or not VALIDATOR.is_dir():
        pytest.skip("the Khronos glTF validator (npm gltf-validator, installed by `make install`) is not here")
    script = (
        "const v = require(process.argv[1]); const fs = require('fs');"
        "v.validateBytes(new Uint8Array(fs.readFileSync(process.argv[2])))"
        ".then(r => console.log(JSON.stringify(r.issues)));"
    )
    out = subprocess.run(["node", "-e", script, str(VALIDATOR), str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_glb_holds_the_head_with_52_named_targets_and_the_animation(tmp_path, arctic_wav):
    out = tmp_path / "talk.glb"
    result = run("animate", str(arctic_wav), "--text", ARCTIC_TRANSCRIPT, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size < 3_000_000
    doc, blob = read_glb(out)
    mesh = doc["meshes"][0]
    assert mesh["extras"]["targetNames"] == list(ARKIT_NAMES)
    prim = mesh["primitives"][0]
    assert len(prim["targets"]) == 52 and {"POSITION", "NORMAL", "COLOR_0"} <= prim["attributes"].keys()
    head = Head.load()
    assert np.allclose(accessor(doc, blob, prim["attributes"]["POSITION"]), head.vertices)
    jaw = accessor(doc, blob, prim["targets"][INDEX["jawOpen"]]["POSITION"])
    assert np.allclose(jaw, head.targets[INDEX["jawOpen"]])
    (anim,) = doc["animations"]
    (channel,) = anim["channels"]
    assert channel["target"] == {"node": 0, "path": "weights"}
    sampler = anim["samplers"][channel["sampler"]]
    times = accessor(doc, blob, sampler["input"])[:, 0]
    weights = accessor(doc, blob, sampler["output"]).reshape(len(times), 52)
    assert len(times) == 93 and np.allclose(np.diff(times), 1 / 30)
    # the curve in the file is the animation: the jaw opens on "sharply"'s /aa/ and the lips close on its /p/
    expected = Animator().animate(arctic_wav, text=ARCTIC_TRANSCRIPT)
    assert np.allclose(weights, expected.with_channels(ARKIT_NAMES).weights, atol=1e-6)
    issues = validate(out)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"][:5]


def test_gltf_anim_is_small_and_valid(tmp_path, arctic_anim):
    from talkface import export

    out = tmp_path / "anim.glb"
    export.write(arctic_anim, out, "gltf-anim")
    assert out.stat().st_size < 50_000
    doc, blob = read_glb(out)
    assert doc["meshes"][0]["extras"]["targetNames"] == list(ARKIT_NAMES)
    sampler = doc["animations"][0]["samplers"][0]
    weights = accessor(doc, blob, sampler["output"]).reshape(-1, 52)
    assert np.allclose(weights, arctic_anim.with_channels(ARKIT_NAMES).weights, atol=1e-6)
    issues = validate(out)
    assert issues["numErrors"] == 0, issues["messages"][:5]


@pytest.mark.parametrize("suffix", [".usda", ".usd"])
def test_usd_metadata_of_any_json_values_reads_back(tmp_path, arctic_anim, suffix):
    """Metadata is JSON values: an array made a .usda that USD could not open and a .usdc that could not be
    written; null and a huge integer were dropped. Those are kept as their JSON text."""
    pytest.importorskip("pxr", reason="USD export needs the usd extra")
    from pxr import Usd

    from talkface import export

    out = tmp_path / f"talk{suffix}"
    metadata = {"tags": ["a", "b"], "mixed": [1, "a", None], "none": None, "big": 10**30, "n": 2**40,
                "nested": {"x": [{"a": 1}], "ok": True}, "text": 'q"\n'}  # fmt: skip
    export.write(arctic_anim, out, metadata=metadata)
    stage = Usd.Stage.Open(str(out))
    data = dict(stage.GetRootLayer().customLayerData)
    assert json.loads(data["tags"]) == ["a", "b"] and json.loads(data["mixed"]) == [1, "a", None]
    assert data["none"] == "null" and json.loads(data["big"]) == 10**30 and data["n"] == 2**40
    assert json.loads(data["nested"]["x"]) == [{"a": 1}] and data["nested"]["ok"] is True and data["text"] == 'q"\n'


@pytest.mark.parametrize("suffix", [".usda", ".usd"])
def test_usd_blend_shape_animation_deforms_like_the_head(tmp_path, arctic_anim, suffix):
    pxr = pytest.importorskip("pxr", reason="USD export needs the usd extra")
    from pxr import Usd, UsdSkel

    from talkface import export

    out = tmp_path / f"talk{suffix}"
    export.write(arctic_anim, out)
    stage = Usd.Stage.Open(str(out))
    assert stage.GetTimeCodesPerSecond() == 30 and stage.GetEndTimeCode() == 92
    assert pxr.UsdGeom.GetStageUpAxis(stage) == "Y"
    skel_anim = UsdSkel.Animation(stage.GetPrimAtPath("/Head/Skel/Anim"))
    assert list(skel_anim.GetBlendShapesAttr().Get()) == list(ARKIT_NAMES)
    frame = 22  # the open /aa/ of "sharply"
    w = np.array(skel_anim.GetBlendShapeWeightsAttr().Get(frame))
    assert np.allclose(w, arctic_anim.weights[frame], atol=1e-6)
    # deform the mesh through UsdSkel's own blend-shape query and compare with Head.apply
    mesh = stage.GetPrimAtPath("/Head/Mesh")
    binding = UsdSkel.BindingAPI(mesh)
    assert binding.GetSkeleton().GetPath() == "/Head/Skel"
    shapes = [UsdSkel.BlendShape(stage.GetPrimAtPath(p)) for p in binding.GetBlendShapeTargetsRel().GetTargets()]
    points = np.array(pxr.UsdGeom.Mesh(mesh).GetPointsAttr().Get())
    for shape, weight in zip(shapes, w, strict=True):
        idx = np.array(shape.GetPointIndicesAttr().Get())
        points[idx] += weight * np.array(shape.GetOffsetsAttr().Get())
    assert np.allclose(points, Head.load().apply(arctic_anim.weights[frame]), atol=1e-5)


def _file_size_limit(size: int):
    """A child's start: files of at most `size` bytes, a write past it failing (EFBIG) as on a full disk."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # (else the signal ends the process)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


@pytest.mark.parametrize("suffix", [".usda", ".usdc"])
def test_usd_on_a_full_disk_is_one_clear_error_and_leaves_nothing(tmp_path, arctic_wav, suffix):
    """USD's own error for a write that fails (not an OSError) is the one-line error of any full disk, exit 1."""
    out = tmp_path / "out" / f"head{suffix}"
    command = [sys.executable, "-m", "talkface.cli", "animate", str(arctic_wav), "-o", str(out)]
    limit = _file_size_limit(64 << 10)
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, preexec_fn=limit)
    assert_one_line_error(result, f"{out}: cannot write (File too large)")
    assert result.returncode == 1
    assert list(out.parent.iterdir()) == []
