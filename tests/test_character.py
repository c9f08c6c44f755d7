"""`animate --character`: the user's own .glb / .vrm gets the animation on the morph targets it has, by
ARKit name (any case, any prefix), Oculus viseme or VRM expression (1.0 and 0.x), the rest of the file
kept; models built here with each naming convention, checked with the Khronos validator."""

import json
import os
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ARCTIC_TRANSCRIPT
from test_gltf_usd import accessor, read_glb, validate

from talkface import TalkfaceError, character, export
from talkface.animation import Animation
from talkface.character import arkit_name, viseme_name
from talkface.retarget import load_rig
from talkface.rig import ARKIT_NAMES

COMMON = ("--text", ARCTIC_TRANSCRIPT, "--seed", "1")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "talkface.cli", *args], capture_output=True, text=True, timeout=300)


def build_glb(path, meshes: list[list[str]], extensions: dict | None = None) -> None:
    """A GLB with one node per mesh, each a triangle with the named (empty but distinct) morph targets,
    a material and an image-free texture-less scene: enough for the validator and to see it kept."""
    blob = bytearray()
    views, accessors, gltf_meshes = [], [], []

    def add(values: np.ndarray, kind: str, bounds: bool = False) -> int:
        blob.extend(b"\0" * (-len(blob) % 4))
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": values.nbytes})
        blob.extend(values.astype("<f4").tobytes())
        acc = {"bufferView": len(views) - 1, "componentType": 5126, "count": len(values), "type": kind}
        if bounds:
            acc |= {"min": values.min(0).tolist(), "max": values.max(0).tolist()}
        accessors.append(acc)
        return len(accessors) - 1

    for k, names in enumerate(meshes):
        position = add(np.array([[0, 0, k], [1, 0, k], [0, 1, k]], np.float32), "VEC3", bounds=True)
        targets = []
        for j in range(len(names)):
            offset = np.zeros((3, 3), np.float32)
            offset[j % 3, 1] = 0.01 * (j + 1)
            targets.append({"POSITION": add(offset, "VEC3", bounds=True)})
        gltf_meshes.append(
            {
                "name": f"mesh{k}",
                "primitives": [{"attributes": {"POSITION": position}, "targets": targets, "material": 0}],
                "weights": [0.0] * len(names),
                "extras": {"targetNames": names},
            }
        )
    doc = {
        "asset": {"version": "2.0", "generator": "talkface tests", "copyright": "kept as it is"},
        "scene": 0,
        "scenes": [{"nodes": list(range(len(meshes)))}],
        "nodes": [{"name": f"node{k}", "mesh": k} for k in range(len(meshes))],
        "meshes": gltf_meshes,
        "materials": [{"name": "skin", "pbrMetallicRoughness": {"baseColorFactor": [0.8, 0.6, 0.5, 1]}}],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": len(blob)}],
    }
    if extensions:
        doc["extensions"] = extensions
        doc["extensionsUsed"] = list(extensions)
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    blob.extend(b"\0" * (-len(blob) % 4))
    total = 28 + len(text) + len(blob)
    path.write_bytes(
        struct.pack("<4sII", b"glTF", 2, total)
        + struct.pack("<I4s", len(text), b"JSON")
        + text
        + struct.pack("<I4s", len(blob), b"BIN\0")
        + bytes(blob)
    )


def with_json(path, text: bytes) -> None:
    """Give the GLB at `path` the JSON chunk `text` (any text, JSON or not), its binary chunk kept."""
    _, blob = character.read_glb(path)
    text += b" " * (-len(text) % 4)
    header = struct.pack("<4sII", b"glTF", 2, 28 + len(text) + len(blob)) + struct.pack("<I4s", len(text), b"JSON")
    path.write_bytes(header + text + struct.pack("<I4s", len(blob), b"BIN\0") + blob)


def curves(path, mesh: int) -> tuple[np.ndarray, np.ndarray]:
    """(key times, weights [keys, targets]) of the talkface animation's channel on `mesh`'s node."""
    doc, blob = read_glb(path)
    clip = next(a for a in doc["animations"] if a["name"] == "talkface")
    channel = next(c for c in clip["channels"] if c["target"]["node"] == mesh)
    sampler = clip["samplers"][channel["sampler"]]
    times = accessor(doc, blob, sampler["input"])[:, 0]
    return times, accessor(doc, blob, sampler["output"]).reshape(len(times), -1)


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory,
):
    """The same animation as ARKit JSON, to compare the characters' curves with."""
    out = tmp_path_factory.mktemp("ref") / "arkit.json"
    from conftest import DATA

    result = run("animate", str(DATA / "arctic_a0009.wav"), *COMMON, "-o", str(out))
    assert result.returncode == 0, result.stderr
    return export.read(out)


def animate_character(tmp_path, arctic_wav, model, out_name="out.glb") -> subprocess.CompletedProcess:
    out = tmp_path / out_name
    result = run("animate", str(arctic_wav), *COMMON, "--character", str(model), "-o", str(out))
    assert result.returncode == 0, result.stderr
    issues, before = validate(out), validate(model)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == before["numWarnings"], issues["messages"][:5]
    return result


def test_target_names_are_recognised_in_any_spelling() -> None:
    assert arkit_name("blendShape1.JawOpen") == "jawOpen"
    assert arkit_name("Face|MOUTHSMILELEFT") == "mouthSmileLeft"
    assert arkit_name("mouth_smile_right") == "mouthSmileRight"
    assert arkit_name("eyeBlink_L") == "eyeBlinkLeft"
    assert arkit_name("Fcl_MTH_A") is None and arkit_name("jawOpenWide") is None
    assert viseme_name("viseme_PP") == "viseme_PP" and viseme_name("vrc.v_pp") == "viseme_PP"
    assert viseme_name("vrc.v_ih") == "viseme_I" and viseme_name("VISEME_sil") == "viseme_sil"
    assert viseme_name("jawOpen") is None


def test_arkit_character_with_prefixed_names_on_head_and_teeth(tmp_path, arctic_wav, reference) -> None:
    model = tmp_path / "avatar.glb"
    head = ["blendShape1.JawOpen", "blendShape1.MOUTHCLOSE", "Body.mouth_smile_left", "eyeBlink_L", "Extra_Custom"]
    build_glb(model, [head, ["Teeth.jawOpen"], ["hair"]])
    result = animate_character(tmp_path, arctic_wav, model)
    note = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert len(note) == 1 and "48 of 52" in note[0] and "mouthSmileRight" in note[0], result.stderr
    times, head_w = curves(tmp_path / "out.glb", 0)
    assert times[-1] == pytest.approx(reference.duration, abs=1e-4) and len(times) == reference.num_frames + 1
    for i, name in enumerate(["jawOpen", "mouthClose", "mouthSmileLeft", "eyeBlinkLeft"]):
        assert np.allclose(head_w[:-1, i], reference[name], atol=1e-5), name
    assert not head_w[:, 4].any()  # a target of no convention stays at its default
    _, teeth = curves(tmp_path / "out.glb", 1)
    assert np.allclose(teeth[:-1, 0], reference["jawOpen"], atol=1e-5)
    doc, _ = read_glb(tmp_path / "out.glb")
    assert not [c for c in doc["animations"][0]["channels"] if c["target"]["node"] == 2]  # hair: nothing to drive
    assert doc["animations"][0]["extras"]["engine"] == "text-aligned"


def test_the_rest_of_the_model_is_kept(tmp_path, arctic_wav) -> None:
    model = tmp_path / "avatar.glb"
    build_glb(model, [["jawOpen", "mouthFunnel"]])
    animate_character(tmp_path, arctic_wav, model)
    before, before_bin = read_glb(model)
    after, after_bin = read_glb(tmp_path / "out.glb")
    assert after_bin[: len(before_bin)] == before_bin
    for key in ("asset", "scene", "scenes", "nodes", "meshes", "materials"):
        assert after[key] == before[key], key
    assert after["accessors"][: len(before["accessors"])] == before["accessors"]
    assert after["bufferViews"][: len(before["bufferViews"])] == before["bufferViews"]
    assert [a["name"] for a in after["animations"]] == ["talkface"]


def test_oculus_viseme_character(tmp_path, arctic_wav, reference) -> None:
    model = tmp_path / "rpm.glb"
    names = ["viseme_sil", "vrc.v_pp", "viseme_aa", "viseme_O", "EyeBlink"]  # not ARKit: "EyeBlink" has no side
    build_glb(model, [names])
    result = animate_character(tmp_path, arctic_wav, model)
    assert "Oculus visemes (11 of 15)" in result.stderr
    _, w = curves(tmp_path / "out.glb", 0)
    visemes = load_rig("oculus").apply(reference)
    for i, name in enumerate(["viseme_sil", "viseme_PP", "viseme_aa", "viseme_O"]):
        assert np.allclose(w[:-1, i], visemes[name], atol=1e-4), name
    assert w[:, 1].max() > 0.7 and not w[:, 4].any()


def test_vrm1_expressions_drive_their_binds(tmp_path, arctic_wav, reference) -> None:
    model = tmp_path / "avatar.vrm"
    vrmc = {
        "specVersion": "1.0",
        "expressions": {
            "preset": {
                "aa": {"morphTargetBinds": [{"node": 0, "index": 0, "weight": 1.0}]},
                "blink": {"morphTargetBinds": [{"node": 0, "index": 1, "weight": 1.0}]},
                "happy": {"morphTargetBinds": [{"node": 0, "index": 2, "weight": 0.5}]},
                "surprised": {"morphTargetBinds": [{"node": 9, "index": 0, "weight": 1.0}]},  # no such node: skipped
            }
        },
    }
    build_glb(model, [["Fcl_MTH_A", "Fcl_EYE_Close", "Fcl_ALL_Joy"]], {"VRMC_vrm": vrmc})
    result = animate_character(tmp_path, arctic_wav, model, "out.vrm")
    assert "VRM expressions (14 of 17)" in result.stderr and "surprised" in result.stderr
    _, w = curves(tmp_path / "out.vrm", 0)
    vrm = load_rig("vrm").apply(reference)
    assert np.allclose(w[:-1, 0], vrm["aa"], atol=1e-4) and w[:, 0].max() > 0.3
    assert np.allclose(w[:-1, 1], vrm["blink"], atol=1e-4) and np.allclose(w[:-1, 2], 0.5 * vrm["happy"], atol=1e-4)
    doc, _ = read_glb(tmp_path / "out.vrm")
    assert doc["extensions"]["VRMC_vrm"] == vrmc


def test_vrm0_blend_shape_groups_drive_their_binds(tmp_path, arctic_wav, reference) -> None:
    model = tmp_path / "old.vrm"
    groups = [
        {"name": "A", "presetName": "a", "binds": [{"mesh": 0, "index": 0, "weight": 100}]},
        {"name": "O", "presetName": "o", "binds": [{"mesh": 0, "index": 1, "weight": 50}]},
        {"name": "Blink_L", "presetName": "blink_l", "binds": [{"mesh": 0, "index": 2, "weight": 100}]},
    ]
    build_glb(model, [["MTH_A", "MTH_O", "EYE_Close_L"]], {"VRM": {"blendShapeMaster": {"blendShapeGroups": groups}}})
    result = animate_character(tmp_path, arctic_wav, model, "out.vrm")
    assert "VRM expressions (13 of 16)" in result.stderr  # 0.x has no surprised
    _, w = curves(tmp_path / "out.vrm", 0)
    vrm = load_rig("vrm").apply(reference)
    assert np.allclose(w[:-1, 0], vrm["aa"], atol=1e-4) and np.allclose(w[:-1, 1], 0.5 * vrm["oh"], atol=1e-4)
    assert np.allclose(w[:-1, 2], vrm["blinkLeft"], atol=1e-4)


@pytest.mark.parametrize(
    ("make", "out", "extra", "code", "fragment"),
    [
        ("nothing", "out.glb", (), 1, "no morph targets talkface can drive"),
        ("text", "out.glb", (), 1, "not a binary glTF"),
        ("malformed", "out.glb", (), 1, "malformed glTF document"),
        ("nan", "out.glb", (), 1, "not valid JSON (or has a number beyond a float)"),
        ("huge", "out.glb", (), 1, "a morph-target bind weight of 1e+308, not from 0 to 100"),
        ("damaged", "out.glb", (), 1, "damaged glTF binary file"),
        ("overflow", "out.glb", (), 1, "malformed glTF document (OverflowError"),
        ("many", "out.glb", (), 1, "animated meshes have 20000 morph targets; talkface drives at most 16384"),
        ("arkit", "out.json", (), 2, "name OUT *.glb or *.vrm"),
        ("arkit", "out.glb", ("--rig", "vrm"), 2, "give no --format or --rig"),
    ],
)
def test_bad_characters_are_one_line(tmp_path, arctic_wav, make, out, extra, code, fragment) -> None:
    model = tmp_path / "model.glb"
    if make == "text":
        model.write_text("not a model")
    elif make == "malformed":
        binds = {"aa": {"morphTargetBinds": [{"node": "the head", "index": 0}]}}
        build_glb(model, [["Fcl_MTH_A"]], {"VRMC_vrm": {"expressions": {"preset": binds}}})
    elif make == "nan":  # (NaN or 1e308 reached every frame of the animation)
        binds = {"aa": {"morphTargetBinds": [{"node": 0, "index": 0, "weight": float("nan")}]}}
        build_glb(model, [["MTH_A"]], {"VRMC_vrm": {"expressions": {"preset": binds}}})
    elif make == "huge":
        groups = [{"name": "A", "presetName": "a", "binds": [{"mesh": 0, "index": 0, "weight": 1e308}]}]
        build_glb(model, [["MTH_A"]], {"VRM": {"blendShapeMaster": {"blendShapeGroups": groups}}})
    elif make == "damaged":  # a BIN chunk that claims more than the file holds: the copy lost the model's data
        build_glb(model, [["jawOpen"]])
        data = bytearray(model.read_bytes())
        struct.pack_into("<I", data, 20 + struct.unpack_from("<I", data, 12)[0], 1 << 30)
        model.write_bytes(bytes(data))
    elif make == "overflow":  # a JSON integer past a float, a bind index of Infinity: no traceback
        groups = [{"name": "A", "presetName": "a", "binds": [{"mesh": 0, "index": 0, "weight": 10**400}]}]
        build_glb(model, [["MTH_A"]], {"VRM": {"blendShapeMaster": {"blendShapeGroups": groups}}})
    elif make == "many":  # every frame holds a weight for each target of an animated mesh
        build_glb(model, [["jawOpen", *(f"extra{i}" for i in range(19999))]])
    else:
        build_glb(model, [["Fcl_MTH_A", "Hair_Up"] if make == "nothing" else ["jawOpen"]])
    result = run("animate", str(arctic_wav), "--character", str(model), *extra, "-o", str(tmp_path / out))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code and len(lines) == 1 and fragment in lines[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.glb"]


@pytest.mark.parametrize("where", ["weight", "default"])
def test_numbers_past_a_float_are_a_malformed_document(tmp_path, where) -> None:
    """10**400 (a JSON integer) overflowed float(): a traceback, not the one line a malformed document gives."""
    model = tmp_path / "model.glb"
    bind = {"mesh": 0, "index": "INDEX", "weight": "WEIGHT"}
    groups = [{"name": "A", "presetName": "a", "binds": [bind]}]
    build_glb(model, [["MTH_A", "jawOpen"]], {"VRM": {"blendShapeMaster": {"blendShapeGroups": groups}}})
    index, weight, default = {"weight": ("0", "1" + "0" * 400, "0"), "default": ("0", "100", "1" + "0" * 400)}[where]
    text = json.dumps(character.read_glb(model)[0]).replace('"INDEX"', index).replace('"WEIGHT"', weight)
    with_json(model, text.replace('"weights": [0.0, 0.0]', f'"weights": [0, {default}]').encode())
    anim = Animation(np.full((3, len(ARKIT_NAMES)), 0.5, np.float32), 30.0, ARKIT_NAMES)
    with pytest.raises(TalkfaceError, match=r"malformed glTF document \(OverflowError"):
        character.write(character.plan(model), anim, tmp_path / "out.glb")
    assert not (tmp_path / "out.glb").exists()


def test_a_malformed_document_s_message_is_cut_short(tmp_path) -> None:
    """The error quoted the value it tripped over whole: a 1 MB bind weight made a 1 MB error line."""
    model = tmp_path / "model.glb"
    groups = [{"name": "A", "presetName": "a", "binds": [{"mesh": 0, "index": 0, "weight": "x" * 1_000_000}]}]
    build_glb(model, [["MTH_A"]], {"VRM": {"blendShapeMaster": {"blendShapeGroups": groups}}})
    with pytest.raises(TalkfaceError, match=r"malformed glTF document \(ValueError: could not convert") as e:
        character.plan(model)
    assert len(str(e.value)) < 300 + len(str(model))


def test_a_model_from_an_endless_pipe_is_read_to_the_length_its_header_gives(tmp_path) -> None:
    """`--character <(...)`: the file was read to its end, and a pipe that never ends filled memory; the GLB
    header gives the length, and no more is read."""
    model, fifo = tmp_path / "model.glb", tmp_path / "pipe.glb"
    build_glb(model, [["jawOpen"]])
    os.mkfifo(fifo)
    keep = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so that the writer is there before it is read
    write_end = os.open(fifo, os.O_WRONLY)
    script = 'cat "$0" && exec head -c 100000000 /dev/zero'  # (endless, but a failing test should end)
    writer = subprocess.Popen(["sh", "-c", script, str(model)], stdout=write_end)
    os.close(write_end)
    try:
        doc, _ = character.read_glb(fifo)
        assert writer.poll() is None  # still writing: the rest is left unread
    finally:
        writer.kill()
        writer.wait()
        os.close(keep)
    assert doc["meshes"][0]["extras"]["targetNames"] == ["jawOpen"]


def test_a_model_given_as_a_pipe_is_animated(tmp_path, arctic_wav) -> None:
    """`--character <(command)`: a pipe can be read once, and the model was read once to plan and again to
    write (the second read found it empty: "not a binary glTF", after all the work)."""
    model, fifo = tmp_path / "model.glb", tmp_path / "pipe.glb"
    build_glb(model, [["jawOpen", "mouthFunnel"]])
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", 'cat "$0" > "$1"', str(model), str(fifo)])
    try:
        result = run("animate", str(arctic_wav), *COMMON, "--character", str(fifo), "-o", str(tmp_path / "out.glb"))
    finally:
        writer.kill()
        writer.wait()
    assert result.returncode == 0, result.stderr
    assert validate(tmp_path / "out.glb")["numErrors"] == 0
    assert [a["name"] for a in read_glb(tmp_path / "out.glb")[0]["animations"]] == ["talkface"]


def test_a_model_of_many_meshes_and_nodes_is_written_in_linear_time(tmp_path) -> None:
    """Each mesh's channels were found by going through every node: meshes × nodes steps (4000 meshes and
    200 000 nodes, a 4 MB model, took a minute)."""
    model = tmp_path / "model.glb"
    build_glb(model, [["jawOpen"]] * 2000)
    doc, _ = character.read_glb(model)
    with_json(model, json.dumps(doc | {"nodes": doc["nodes"] + [{}] * 200_000}).encode())
    anim = Animation(np.full((3, len(ARKIT_NAMES)), 0.5, np.float32), 30.0, ARKIT_NAMES)
    start = time.perf_counter()
    character.write(character.plan(model), anim, tmp_path / "out.glb")
    assert time.perf_counter() - start < 5.0  # about 0.2 s on a 2-core machine (quadratic: 15 s)
    doc, _ = character.read_glb(tmp_path / "out.glb")
    channels = doc["animations"][-1]["channels"]
    assert [c["target"]["node"] for c in channels] == list(range(2000))


def test_a_default_weight_past_a_float32_is_no_frame_of_the_animation(tmp_path, arctic_wav) -> None:
    """A mesh's default weight of 1e300 on a target talkface does not drive was infinity in every frame of
    the animation; such a default counts as 0. NaN and 1e999, which the copy could only write back as
    JSON no reader takes, make the model one error line."""
    model = tmp_path / "model.glb"
    build_glb(model, [["jawOpen", "Hair_Up", "Hat_On"]])
    text = json.dumps(character.read_glb(model)[0])
    with_json(model, text.replace('"weights": [0.0, 0.0, 0.0]', '"weights": [0, 1e300, -1e300]').encode())
    result = run("animate", str(arctic_wav), "--character", str(model), "-o", str(tmp_path / "out.glb"))
    assert result.returncode == 0, result.stderr
    _, weights = curves(tmp_path / "out.glb", 0)
    assert np.isfinite(weights).all() and not weights[:, 1:].any() and weights[:, 0].max() > 0.1
    for bad in ("NaN", "1e999", "-Infinity"):
        build_glb(model, [["jawOpen", "Hair_Up", "Hat_On"]])
        with_json(model, text.replace('"weights": [0.0, 0.0, 0.0]', f'"weights": [0, {bad}, 0]').encode())
        with pytest.raises(TalkfaceError, match="not valid JSON"):
            character.plan(model)


def test_the_talkface_head_as_a_character(tmp_path, arctic_wav, reference) -> None:
    """A real mesh (6,269 vertices, 52 sparse ARKit targets) without an animation of its own."""
    from talkface.export.gltf import glb_bytes

    model = tmp_path / "head.glb"
    model.write_bytes(glb_bytes(None))
    result = animate_character(tmp_path, arctic_wav, model)
    assert "note:" not in result.stderr  # all 52 there
    _, w = curves(tmp_path / "out.glb", 0)
    assert w.shape == (reference.num_frames + 1, 52)
    assert np.allclose(w[:-1], reference.with_channels(ARKIT_NAMES).weights, atol=1e-5)


@pytest.mark.parametrize("frames", [0, 1])
def test_a_clip_of_no_frames_is_an_error_and_one_of_a_frame_a_valid_animation(tmp_path, frames) -> None:
    """glTF has no empty clip (an accessor holds at least one value): no frames was reported as a malformed
    model ("zero-size array"); a frame is held to the clip's end, its two keys rising, bounds exact."""
    model, out = tmp_path / "model.glb", tmp_path / "out.glb"
    build_glb(model, [["jawOpen", "eyeBlinkLeft"]])
    anim = Animation(np.full((frames, 52), 0.25, np.float32), 29.97, ARKIT_NAMES)
    if not frames:
        with pytest.raises(TalkfaceError, match="no frames") as error:
            character.write(character.plan(model), anim, out)
        assert "malformed" not in str(error.value) and not out.exists()
        return
    character.write(character.plan(model), anim, out)
    doc, blob = read_glb(out)
    sampler = doc["animations"][-1]["samplers"][0]
    times = accessor(doc, blob, sampler["input"])[:, 0]
    assert np.allclose(times, [0, 1 / 29.97]) and (np.diff(times) > 0).all()
    bounds = doc["accessors"][sampler["input"]]
    assert (bounds["min"], bounds["max"]) == ([float(times[0])], [float(times[-1])])
    assert doc["accessors"][sampler["output"]]["count"] == len(times) * 2


THREE_JS = """async ([url, times]) => {
  const THREE = await import('/three.bundle.js');
  const gltf = await new THREE.GLTFLoader().loadAsync(url);
  const mixer = new THREE.AnimationMixer(gltf.scene);
  mixer.clipAction(gltf.animations.find((a) => a.name === 'talkface')).play();
  const meshes = [];
  gltf.scene.traverse((o) => { if (o.isMesh && o.morphTargetDictionary) meshes.push(o); });
  return times.map((t) => {
    mixer.setTime(t);
    return Object.fromEntries(meshes.map((m) => [m.name, Object.fromEntries(
      Object.entries(m.morphTargetDictionary).map(([name, i]) => [name, m.morphTargetInfluences[i]]))]));
  });
}"""


def test_three_js_plays_the_character_on_the_right_targets(tmp_path, arctic_wav, reference) -> None:
    """The output loads in three.js (the viewer's bundle, headless Chromium) and its mixer sets each
    named target to talkface's weight at that time."""
    import functools
    import http.server
    import shutil
    import threading
    from importlib.resources import files
    from pathlib import Path

    from test_viewer import CHROMIUM, CHROMIUM_FLAGS

    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (installed by `make install`)")
    sync_api = pytest.importorskip("playwright.sync_api")
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(files("talkface") / "viewer" / "static" / "three.bundle.js", site)
    (site / "index.html").write_text("<!doctype html><title>t</title>")
    build_glb(tmp_path / "avatar.glb", [["blendShape1.JawOpen", "Body.mouth_smile_left"], ["Teeth.jawOpen"]])
    animate_character(tmp_path, arctic_wav, tmp_path / "avatar.glb")
    shutil.copy(tmp_path / "out.glb", site / "out.glb")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    times = [i / reference.fps for i in (10, 25, 40, 60)]
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{httpd.server_address[1]}/index.html")
                shown = page.evaluate(THREE_JS, ["/out.glb", times])
            finally:
                browser.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
    for t, frame in zip(times, shown, strict=True):
        want = reference.at(t)
        jaw, smile = want[reference.index("jawOpen")], want[reference.index("mouthSmileLeft")]
        assert frame["node0"]["blendShape1.JawOpen"] == pytest.approx(jaw, abs=1e-4), (t, frame)
        assert frame["node0"]["Body.mouth_smile_left"] == pytest.approx(smile, abs=1e-4), (t, frame)
        assert frame["node1"]["Teeth.jawOpen"] == pytest.approx(jaw, abs=1e-4), (t, frame)
    assert max(f["node0"]["blendShape1.JawOpen"] for f in shown) > 0.1
