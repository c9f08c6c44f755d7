"""Runs inside Blender (``blender -b --factory-startup --python-exit-code 1 --python THIS -- FOLDER``): installs
the add-on from its zip, imports the talkface head (.glb) and keys it from talkface's JSON and CSV exports
of the same animation, with and without a ``--rig`` mapping; any failed check ends Blender with code 1.

FOLDER holds what tests/test_blender.py made with talkface: talkface_blender.zip, speech.wav, head.glb,
face.json, face.csv, map.json (a rig mapping), rig.glb and rig.json (the head and animation on that rig).
"""

import json
import os
import sys

import bpy

FOLDER = sys.argv[sys.argv.index("--") + 1]
CHECKED = ("jawOpen", "mouthClose", "eyeBlinkLeft")


def path(name: str) -> str:
    return os.path.join(FOLDER, name)


def load(name: str) -> dict:
    with open(path(name)) as f:
        return json.load(f)


def import_glb(name: str) -> bpy.types.Object:
    """The mesh of a talkface .glb, imported into an empty scene and selected alone."""
    bpy.ops.wm.read_homefile(use_empty=True)
    # SMOOTH: Debian's Blender 3.4 glTF importer fails in its default NORMALS shading with Debian's numpy 1.24
    # (it uses the removed ``np.bool``); the shading does not matter here.
    bpy.ops.import_scene.gltf(filepath=path(name), import_shading="SMOOTH")
    meshes = [o for o in bpy.context.scene.objects if o.type == "MESH"]
    assert len(meshes) == 1, meshes
    bpy.ops.object.select_all(action="DESELECT")
    meshes[0].select_set(True)
    bpy.context.view_layer.objects.active = meshes[0]
    return meshes[0]


def frames_to_check(data: dict, names: tuple) -> list:
    """A few frames, and where each checked channel peaks (a value far from 0)."""
    rows = data["frames"]
    columns = [data["names"].index(n) for n in names]
    peaks = [max(range(len(rows)), key=lambda i, j=j: rows[i][j]) for j in columns]
    return sorted({0, 7, len(rows) // 2, len(rows) - 1, *peaks})


def check_keys(obj: bpy.types.Object, data: dict, names: tuple, frames: list, scene_frame, tol: float) -> None:
    """Each channel in `names`, at each file frame i, equals the shape key's value at `scene_frame(i)`."""
    scene = bpy.context.scene
    for i in frames:
        scene.frame_set(scene_frame(i))
        for n in names:
            want = data["frames"][i][data["names"].index(n)]
            got = obj.data.shape_keys.key_blocks[n].value
            assert abs(got - want) <= tol, f"{n} at file frame {i}: shape key {got}, file {want}"


def install() -> None:
    bpy.ops.preferences.addon_install(filepath=path("talkface_blender.zip"))
    bpy.ops.preferences.addon_enable(module="talkface_blender")
    assert hasattr(bpy.ops.import_anim, "talkface")


def arkit_json() -> None:
    """JSON onto the head by ARKit name: scene at the file's 30 fps, the speech as a sound strip."""
    obj = import_glb("head.glb")
    data = load("face.json")
    assert bpy.ops.import_anim.talkface(filepath=path("face.json")) == {"FINISHED"}
    scene = bpy.context.scene
    assert (scene.render.fps, scene.render.fps_base) == (30, 1.0)
    assert scene.frame_start == 1 and scene.frame_end >= len(data["frames"])
    action = obj.data.shape_keys.animation_data.action
    assert action.name.startswith("talkface face"), action.name  # replaces the glTF's own clip
    assert len(action.fcurves) == 52
    peaks = frames_to_check(data, CHECKED)
    check_keys(obj, data, CHECKED, peaks, lambda i: 1 + i, 1e-6)
    assert max(data["frames"][i][data["names"].index("jawOpen")] for i in peaks) > 0.2
    strips = list(scene.sequence_editor.sequences_all)
    assert len(strips) == 1 and strips[0].type == "SOUND", strips
    assert bpy.path.abspath(strips[0].sound.filepath) == path("speech.wav") and strips[0].frame_start == 1
    assert abs(strips[0].frame_final_duration - len(data["frames"])) <= 2, strips[0].frame_final_duration


def scene_rate_kept() -> None:
    """With the scene's own 24 fps kept, keys sit at the file's times (file frame 5, 1/6 s, is scene frame 5),
    linear in between."""
    obj = import_glb("head.glb")
    data = load("face.json")
    bpy.context.scene.render.fps = 24
    assert bpy.ops.import_anim.talkface(filepath=path("face.json"), set_scene_fps=False, use_audio=False) == {
        "FINISHED"
    }
    scene = bpy.context.scene
    assert scene.render.fps == 24 and not (scene.sequence_editor and len(scene.sequence_editor.sequences_all))
    frames = [i for i in range(0, len(data["frames"]), 5)]
    check_keys(obj, data, CHECKED, frames, lambda i: 1 + i * 24 // 30, 1e-6)
    # between the file's frames the keys are linear: scene frame 2 is 1/24 s, file frame 1.25
    scene.frame_set(2)
    for n in CHECKED:
        j = data["names"].index(n)
        want = 0.75 * data["frames"][1][j] + 0.25 * data["frames"][2][j]
        assert abs(obj.data.shape_keys.key_blocks[n].value - want) < 1e-5, n


def livelink_csv() -> None:
    """The Live Link CSV of the same animation: its rate from the timecodes, the same values (6 decimals),
    onto shape keys named with a prefix and in another case, as other tools name them."""
    obj = import_glb("head.glb")
    data = load("face.json")
    for n in CHECKED:
        obj.data.shape_keys.key_blocks[n].name = "blendShape1." + n[0].upper() + n[1:]
    assert bpy.ops.import_anim.talkface(filepath=path("face.csv"), use_audio=False) == {"FINISHED"}
    assert bpy.context.scene.render.fps == 30
    for n in CHECKED:
        obj.data.shape_keys.key_blocks["blendShape1." + n[0].upper() + n[1:]].name = n
    check_keys(obj, data, CHECKED, frames_to_check(data, CHECKED), lambda i: 1 + i, 1e-6)


def rig_mapping() -> None:
    """face.json through map.json onto rig.glb's targets equals talkface's own --rig map.json export."""
    obj = import_glb("rig.glb")
    rig = load("rig.json")
    targets = tuple(load("map.json"))
    assert set(targets) <= {k.name for k in obj.data.shape_keys.key_blocks}
    result = bpy.ops.import_anim.talkface(filepath=path("face.json"), rig_mapping=path("map.json"), use_audio=False)
    assert result == {"FINISHED"}
    check_keys(obj, rig, targets, frames_to_check(rig, targets), lambda i: 1 + i, 1e-5)


def errors() -> None:
    """Bad input is refused with one line: a file that is no animation, a mapping term only talkface
    computes, a missing audio file, nothing selected."""
    import_glb("head.glb")
    with open(path("visemes.json"), "w") as f:
        json.dump({"PP": {"viseme_PP": 1.0}}, f)
    face = path("face.json")
    for kwargs, words in (
        ({"filepath": path("map.json")}, "not a talkface animation"),
        ({"filepath": face, "rig_mapping": path("visemes.json")}, "needs talkface"),
        ({"filepath": face, "audio": path("missing.wav")}, "no such audio file"),
    ):
        try:
            bpy.ops.import_anim.talkface(**kwargs)
        except RuntimeError as e:
            assert words in str(e), e
        else:
            raise AssertionError(f"{kwargs} was accepted")
    bpy.ops.object.select_all(action="DESELECT")
    try:
        bpy.ops.import_anim.talkface(filepath=path("face.json"))
    except RuntimeError as e:
        assert "select the object" in str(e), e
    else:
        raise AssertionError("imported with nothing selected")


install()
for check in (arkit_json, scene_rate_kept, livelink_csv, rig_mapping, errors):
    check()
    print("ok", check.__name__)
