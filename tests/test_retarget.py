"""`--rig`: talkface's ARKit animation written on the Oculus visemes, VRM expressions or a user's own
mapping, in every format that can carry it; one clear line where a rig cannot be used."""

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ARCTIC_TRANSCRIPT
from test_gltf_usd import accessor, read_glb, validate

from talkface import TalkfaceError, export
from talkface.animation import Animation
from talkface.phonemes import BILABIALS, OPEN_VOWELS, VISEME_OF, read_phones_tsv
from talkface.retarget import OCULUS_VISEMES, VRM0_NAMES, Rig, load_rig
from talkface.rig import ARKIT_NAMES, POSE_NAMES

SENTENCE = "Bob bought a pepper and a map"
VRM_MOUTH = ("aa", "ih", "ou", "ee", "oh")
VRM_PRESETS = (*VRM_MOUTH, "blink", "blinkLeft", "blinkRight", "happy", "angry", "sad", "relaxed", "surprised",
               "lookUp", "lookDown", "lookLeft", "lookRight")  # fmt: skip


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "talkface.cli", *args], capture_output=True, text=True, timeout=300)


def assert_usage_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, (result.returncode, result.stderr)
    assert fragment in lines[0] and "Traceback" not in result.stderr, lines[0]


@pytest.fixture(scope="module")
def said(tmp_path_factory) -> dict[str, tuple[Animation, list]]:
    """`talkface say SENTENCE --rig R` for the two built-in rigs: the animation and the spoken phones."""
    out = {}
    for rig in ("oculus", "vrm"):
        folder = tmp_path_factory.mktemp(rig)
        result = run("say", SENTENCE, "--rig", rig, "-o", str(folder))
        assert result.returncode == 0, result.stderr
        assert not (folder / "animation.csv").exists()
        out[rig] = export.read(folder / "animation.json"), read_phones_tsv(folder / "phonemes.tsv")
    return out


def test_oculus_has_meta_s_fifteen_visemes_summing_to_one(said) -> None:
    anim, _ = said["oculus"]
    meta = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U")
    assert anim.names[:15] == OCULUS_VISEMES == tuple(f"viseme_{v}" for v in meta)
    visemes = anim.weights[:, :15]
    assert visemes.min() >= 0 and np.allclose(visemes.sum(axis=1), 1.0, atol=1e-4)


def test_bilabials_drive_viseme_pp_and_open_vowels_viseme_aa(said) -> None:
    anim, phones = said["oculus"]
    bilabials = [p for p in phones if p.phone in BILABIALS]
    assert len(bilabials) == 7  # Bob: 2, bought: 1, pepper: 2, map: 2
    for p in bilabials:
        frame = anim.at(p.mid)[:15]
        assert anim.names[int(frame.argmax())] == "viseme_PP" and frame[1] > 0.7, (p, frame.round(2))
    open_vowels = [p for p in phones if p.phone in OPEN_VOWELS and VISEME_OF[p.phone] == "aa"]
    assert len(open_vowels) >= 4
    for p in open_vowels:
        assert anim.at(p.mid)[anim.index("viseme_aa")] > 0.3, p


def test_vrm_closes_the_mouth_at_every_bilabial_and_opens_it_on_open_vowels(said) -> None:
    anim, phones = said["vrm"]
    assert anim.names[: len(VRM_PRESETS)] == VRM_PRESETS
    mouth = [anim.index(n) for n in VRM_MOUTH]
    for p in phones:
        frame = anim.at(p.mid)[mouth]
        if p.phone in BILABIALS:
            assert frame.max() < 0.1, (p, frame.round(2))
        elif p.phone in OPEN_VOWELS and VISEME_OF[p.phone] == "aa":
            assert frame[0] > 0.3, (p, frame.round(2))


def test_vrm_blinks_add_up_to_each_eye_and_emotions_show() -> None:
    frames = np.zeros((3, 52), np.float32)
    frames[:, ARKIT_NAMES.index("eyeBlinkLeft")] = [0.8, 1.0, 0.0]
    frames[:, ARKIT_NAMES.index("eyeBlinkRight")] = [0.5, 1.0, 0.6]
    vrm = load_rig("vrm").apply(Animation(frames, 30.0))
    assert np.allclose(vrm["blink"], [0.5, 1.0, 0.0]) and np.allclose(vrm["blinkLeft"], [0.3, 0, 0])
    assert np.allclose(vrm["blinkRight"], [0, 0, 0.6])

    from talkface import Animator
    from talkface.post import Style

    for emotion, preset in (("joy", "happy"), ("anger", "angry"), ("sadness", "sad"), ("amazement", "surprised")):
        _, anim = Animator(style=Style(emotion={emotion: 1.0})).say(SENTENCE)
        vrm = load_rig("vrm").apply(anim)
        shown = {n: float(np.median(vrm[n])) for n in ("happy", "angry", "sad", "surprised")}
        assert shown[preset] > 0.8 and sorted(shown.values())[-2] < 0.1, (emotion, shown)


def test_vrm0_uses_the_0x_preset_names(tmp_path, arctic_wav) -> None:
    out = tmp_path / "face.npz"
    assert run("animate", str(arctic_wav), "--text", ARCTIC_TRANSCRIPT, "--rig", "vrm0", "-o", str(out)).returncode == 0
    anim = export.read(out)
    assert anim.names[:16] == tuple(VRM0_NAMES[n] for n in VRM_PRESETS if n != "surprised")
    assert anim["A"].max() > 0.3 and anim.names[16:] == POSE_NAMES


def test_a_user_mapping_file_is_a_weighted_sum(tmp_path, arctic_wav) -> None:
    mapping = {
        "MouthOpen": {"jawOpen": 1.0},
        "Smile": {"mouthSmileLeft": 0.5, "mouthSmileRight": 0.5},
        "Lips shut": {"viseme_PP": 1.0},
        "Squint less blink": {"eyeSquintLeft": 1.0, "blink": -1.0},
        "Sad face": {"sadness": 1.0, "grief": 1.0},
    }
    rig_file = tmp_path / "my_rig.json"
    rig_file.write_text(json.dumps(mapping))
    arkit, mine = tmp_path / "arkit.json", tmp_path / "mine.json"
    common = ("--text", ARCTIC_TRANSCRIPT, "--engine", "phonetic", "--seed", "3")
    assert run("animate", str(arctic_wav), *common, "-o", str(arkit)).returncode == 0
    result = run("animate", str(arctic_wav), *common, "--rig", str(rig_file), "-o", str(mine))
    assert result.returncode == 0, result.stderr
    a, m = export.read(arkit), export.read(mine)
    assert m.names[:5] == tuple(mapping) and m.num_frames == a.num_frames
    assert np.allclose(m["MouthOpen"], a["jawOpen"], atol=1e-5)
    assert np.allclose(m["Smile"], 0.5 * (a["mouthSmileLeft"] + a["mouthSmileRight"]), atol=1e-5)
    blink = np.minimum(a["eyeBlinkLeft"], a["eyeBlinkRight"])
    assert np.allclose(m["Squint less blink"], np.clip(a["eyeSquintLeft"] - blink, 0, 1), atol=1e-5)
    assert m["Lips shut"].max() > 0.7 and m.weights[:, :5].min() >= 0 and m.weights[:, :5].max() <= 1
    assert json.loads(mine.read_text())["metadata"]["rig"] == "my_rig.json"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not a readable JSON rig file"),
        ("[1, 2]", "a rig file is a JSON object"),
        ('{"Jaw": {"jawOpenn": 1}}', "unknown term 'jawOpenn'"),
        ('{"Jaw": {"jawOpen": "1"}}', "must be a number"),
        ('{"Jaw": {"jawOpen": true}}', "must be a number"),
        ('{"Jaw": {"jawOpen": NaN}}', "must be a number from -1000 to 1000, not nan"),
        ('{"Jaw": {"jawOpen": 1e999}}', "must be a number from -1000 to 1000, not inf"),
        ('{"Jaw": {"jawOpen": 1' + "0" * 400 + "}}", "must be a number from -1000 to 1000"),
        ('{"Jaw\\udcff": {"jawOpen": 1}}', "is not a UTF-8 name"),  # a lone surrogate no USD file can hold
        ('{"Jaw": {}}', "must map at least one term"),
        ('{"Jaw": 1}', "must map at least one term"),
        ("{}", "a rig file is a JSON object"),
        (None, "no such rig file"),
    ],
)
def test_a_bad_mapping_file_is_one_line_and_exit_2(tmp_path, arctic_wav, content, fragment) -> None:
    rig_file = tmp_path / "bad_rig.json"
    if content is not None:
        rig_file.write_text(content)
    out = tmp_path / "face.json"
    result = run("animate", str(arctic_wav), "--rig", str(rig_file), "-o", str(out))
    assert_usage_error(result, fragment)
    assert "bad_rig.json" in result.stderr and not out.exists()


@pytest.mark.parametrize("weight", ["1", None, [1]])
def test_rig_from_terms_refuses_a_weight_that_is_no_number(weight) -> None:
    """The Python API's own mapping is not checked as a file's is: abs() of a text weight was a TypeError."""
    with pytest.raises(TalkfaceError, match="the weight of 'jawOpen' must be a number"):
        Rig.from_terms("mine", {"Jaw": {"jawOpen": weight}})


def test_a_target_name_past_256_characters_is_refused_before_any_work(tmp_path, arctic_wav) -> None:
    """NPZ stores names at the width of the longest: a 500 KB rig file of 15 000 targets, one of them named
    with 200 000 characters, asked for an array of 11 GB (a MemoryError, an internal error, exit 70); 4000
    targets (fewer than `MAX_TARGETS`) would ask for 3 GB."""
    rig = {f"t{i}": {"jawOpen": 1} for i in range(4000)} | {"x" * 200_000: {"jawOpen": 1}}
    (tmp_path / "long_rig.json").write_text(json.dumps(rig, separators=(",", ":")))
    out = tmp_path / "face.npz"
    result = subprocess.run(
        [sys.executable, "-m", "talkface.cli", "animate", str(arctic_wav), "--rig", str(tmp_path / "long_rig.json"),
         "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)),
    )  # fmt: skip
    assert_usage_error(result, "longer than 256 characters")
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("-o", "{tmp}/a.csv"), "Live Link Face CSV is ARKit only"),
        (("-o", "{tmp}/a.tsv"), "Rhubarb's own shapes"),
        (("-o", "{tmp}/a.json", "--livelink", "127.0.0.1:11111"), "ARKit shapes only"),
        (("-o", "{tmp}/a.json", "--rig", "metahuman"), "unknown rig 'metahuman'"),
    ],
)
def test_a_rig_where_none_can_go_is_a_usage_error(tmp_path, arctic_wav, args, fragment) -> None:
    rig = () if "--rig" in args else ("--rig", "oculus")
    result = run("animate", str(arctic_wav), *rig, *(a.format(tmp=tmp_path) for a in args))
    assert_usage_error(result, fragment)
    assert not list(tmp_path.iterdir())


def _phonetic_anim() -> Animation:
    from talkface import Animator

    _, anim = Animator().say(SENTENCE)
    return anim


def test_glb_and_gltf_anim_carry_the_rig_s_targets(tmp_path) -> None:
    anim, rig = _phonetic_anim(), load_rig("oculus")
    for fmt in ("glb", "gltf-anim"):
        path = tmp_path / f"{fmt}.glb"
        export.write(anim, path, fmt, rig=rig)
        issues = validate(path)
        assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"][:5]
        doc, blob = read_glb(path)
        mesh = doc["meshes"][0]
        assert mesh["extras"]["targetNames"] == list(OCULUS_VISEMES)
        assert len(mesh["primitives"][0]["targets"]) == 15
        sampler = doc["animations"][0]["samplers"][0]
        weights = accessor(doc, blob, sampler["output"]).reshape(-1, 15)
        assert np.allclose(weights, rig.apply(anim).weights[:, :15], atol=1e-6)
        assert doc["asset"]["extras"]["rig"] == "oculus"
    # on the head, viseme_PP closes the lips: its target moves the vertices the ARKit press shapes move
    doc, blob = read_glb(tmp_path / "glb.glb")
    targets = doc["meshes"][0]["primitives"][0]["targets"]
    moved = [np.abs(accessor(doc, blob, t["POSITION"])).max() for t in targets]
    assert moved[0] == 0 and min(moved[1:]) > 0  # silence is the rest pose; every other viseme moves the face


def test_usd_blend_shapes_are_the_rig_s_targets(tmp_path) -> None:
    pytest.importorskip("pxr")
    from pxr import Usd, UsdSkel

    path = tmp_path / "vrm.usda"
    export.write(_phonetic_anim(), path, rig=load_rig("vrm"))
    stage = Usd.Stage.Open(str(path))
    skel_anim = UsdSkel.Animation(stage.GetPrimAtPath("/Head/Skel/Anim"))
    assert tuple(skel_anim.GetBlendShapesAttr().Get()) == VRM_PRESETS
    binding = UsdSkel.BindingAPI(stage.GetPrimAtPath("/Head/Mesh"))
    assert tuple(binding.GetBlendShapesAttr().Get()) == VRM_PRESETS
    assert len(binding.GetBlendShapeTargetsRel().GetTargets()) == len(VRM_PRESETS)
    assert stage.GetRootLayer().customLayerData["rig"] == "vrm"


def test_user_target_names_that_are_no_prim_names_still_write_usd(tmp_path) -> None:
    pytest.importorskip("pxr")
    from pxr import Usd, UsdSkel

    rig_file = tmp_path / "rig.json"
    rig_file.write_text(json.dumps({"Mouth.Open": {"jawOpen": 1}, "Mouth Open": {"jawOpen": 0.5}}))
    path = tmp_path / "odd.usda"
    export.write(_phonetic_anim(), path, rig=load_rig(str(rig_file)))
    stage = Usd.Stage.Open(str(path))
    binding = UsdSkel.BindingAPI(stage.GetPrimAtPath("/Head/Mesh"))
    assert tuple(binding.GetBlendShapesAttr().Get()) == ("Mouth.Open", "Mouth Open")
    assert len({Path(str(p)).name for p in binding.GetBlendShapeTargetsRel().GetTargets()}) == 2


def test_a_rig_file_whose_name_is_not_utf8_still_writes_usd(tmp_path) -> None:
    """The rig's name (its file's) goes into the USD layer's data, which takes UTF-8 text only."""
    pytest.importorskip("pxr")
    from pxr import Usd

    rig_file = Path(os.fsdecode(bytes(tmp_path) + b"/rig\xff.json"))
    rig_file.write_text(json.dumps({"Mouth": {"jawOpen": 1}}))
    path = tmp_path / "odd.usda"
    export.write(_phonetic_anim(), path, rig=load_rig(str(rig_file)))
    stage = Usd.Stage.Open(str(path))
    assert stage.GetRootLayer().customLayerData["rig"] == "rig\ufffd.json"


def test_a_rig_of_more_targets_than_talkface_takes_is_refused_before_any_work(tmp_path, arctic_wav) -> None:
    """A 740 KB rig of 30 000 targets took 78 s and 4.5 GB to write a 1.1 GB .glb of an 8 s clip."""
    rig = {f"t{i}": {"jawOpen": 1} for i in range(4097)}
    (tmp_path / "many.json").write_text(json.dumps(rig))
    result = run("animate", str(arctic_wav), "--rig", str(tmp_path / "many.json"), "-o", str(tmp_path / "face.glb"))
    assert_usage_error(result, "of 4097 targets; talkface takes at most 4096")
    assert not (tmp_path / "face.glb").exists()
