"""Emotion, liveliness and face parameters from the command line, as a user runs them."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ARCTIC_TRANSCRIPT

from talkface import export
from talkface.metrics import mouth_scores
from talkface.phonemes import read_phones_tsv
from talkface.post import EmotionSettings, FaceParams, LifeConfig, Style
from talkface.rig import ARKIT_NAMES, POSE_NAMES

LINE = "I can't believe we won! Bob bought a map, maybe."


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "talkface.cli", *args], capture_output=True, text=True, timeout=300)


def say(tmp_path, name, *args):
    out = tmp_path / name
    result = run("say", LINE, "-o", str(out), *args)
    assert result.returncode == 0, result.stderr
    return export.read(out / "animation.csv"), read_phones_tsv(out / "phonemes.tsv")


@pytest.fixture(scope="module")
def joyful(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("say")
    return say(tmp, "joy", "--emotion", "joy=0.9"), say(tmp, "neutral", "--emotion", "neutral")


def test_say_with_joy_smiles_and_still_closes_the_lips(joyful):
    (joy, phones), (neutral, _) = joyful
    for shape in ("mouthSmileLeft", "mouthSmileRight", "cheekSquintLeft", "cheekSquintRight"):
        assert joy[shape].mean() > neutral[shape].mean() + 0.3, shape
    scores = mouth_scores(joy, phones)
    assert scores.counts["bilabials"] >= 5 and scores.closed_on_bilabials == 1.0
    assert scores.open_on_open_vowels == mouth_scores(neutral, phones).open_on_open_vowels


def test_say_output_is_alive_by_default(joyful):
    (joy, _), _ = joyful
    assert joy["eyeBlinkLeft"].max() > 0.8
    for name in ("headYaw", "headPitch", "headRoll", "leftEyeYaw", "rightEyePitch"):
        assert np.abs(joy[name]).max() > 0.002, name


def test_switches_turn_off_blinks_gaze_and_head(tmp_path, arctic_wav):
    out = tmp_path / "still.json"
    args = ["animate", str(arctic_wav), "--text", ARCTIC_TRANSCRIPT, "-o", str(out)]
    assert run(*args, "--no-blink", "--no-gaze", "--no-head", "--emotion", "neutral").returncode == 0
    still = export.read(out)
    assert still.names == ARKIT_NAMES
    assert still["eyeBlinkLeft"].max() == 0 and still["eyeLookOutLeft"].max() == 0
    assert run(*args, "--emotion", "neutral").returncode == 0
    alive = export.read(out)
    assert alive.names == (*ARKIT_NAMES, *POSE_NAMES) and alive["headPitch"].any()
    assert np.array_equal(alive["jawOpen"], still["jawOpen"])  # the lips are the same either way


def test_emotion_track_face_parameters_and_seed(tmp_path, arctic_wav):
    track = tmp_path / "track.json"
    track.write_text(json.dumps([{"time": 0, "emotions": {"sadness": 1}}, {"time": 1.5, "emotions": {"anger": 1}}]))
    out = tmp_path / "a.npz"
    base = ["animate", str(arctic_wav), "--text", ARCTIC_TRANSCRIPT, "-o", str(out)]
    assert run(*base, "--emotion-track", str(track), "--emotion-transition", "0.1", "--seed", "5").returncode == 0
    tracked = export.read(out)
    early, late = slice(0, 8), slice(50, 93)  # keyframes blend linearly from 0 to 1.5 s
    assert tracked["mouthFrownLeft"][early].mean() > tracked["mouthFrownLeft"][late].mean() + 0.2
    assert tracked["browDownLeft"][late].mean() > tracked["browDownLeft"][early].mean() + 0.3
    args = ["--emotion", "neutral", "--face", "jawStrength=0.5,blinkStrength=0", "--multiply", "browInnerUp=0"]
    assert run(*base, *args, "--seed", "5").returncode == 0
    plain = export.read(out)
    assert plain["eyeBlinkLeft"].max() < 0.45 and plain["jawOpen"].max() < 0.35
    assert run(*base, *args, "--seed", "5").returncode == 0
    assert np.array_equal(export.read(out).weights, plain.weights)  # same seed, same face
    assert run(*base, *args, "--seed", "6").returncode == 0
    assert not np.array_equal(export.read(out)["headYaw"], plain["headYaw"])


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--emotion", "happiness=0.5"], "unknown emotion 'happiness'"),
        (["--emotion", "joy=1.7"], "out of range [0, 1]"),
        (["--emotion-strength", "3"], "emotion strength 3 is out of range"),
        (["--emotion-track", "{tmp}/bad.json"], "bad.json: not a readable JSON"),
        (["--emotion-track", "{tmp}/keys.json"], "keyframe 1"),
        (["--emotion-track", "{tmp}/keys.json", "--emotion", "joy"], "either --emotion or --emotion-track"),
        (["--face", "lowerFaceStrength=9"], "lowerFaceStrength = 9 is out of range [0, 2]"),
        (["--face", "mouthStrength=1"], "unknown face parameter 'mouthStrength'"),
        (["--face", "blinkStrength"], "expected NAME=VALUE"),
        (["--offset", "smile=0.2"], "unknown channel 'smile'"),
        (["--blink-rate", "500"], "blink rate"),
        (["--max-emotions", "many"], "many"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_bad_style_options_give_one_line_and_nonzero_exit(tmp_path, args, fragment):
    (tmp_path / "bad.json").write_text("[{")
    (tmp_path / "keys.json").write_text('[{"time": 0, "emotions": {}}, {"time": 1, "emotions": {"joy": "lots"}}]')
    result = run("say", "hello", "-o", str(tmp_path / "o"), *[a.format(tmp=tmp_path) for a in args])
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and fragment in lines[0], lines[0]
    assert not (tmp_path / "o").exists()


def test_style_values_by_name_parse_as_the_command_line():
    values = {
        "emotion": "joy=0.5,anger=0.2",
        "emotion-contrast": 1.5,
        "face": ["jawStrength=1.2", "blinkStrength=0.5"],
        "multiply": "jawOpen=0.8",
        "no-gaze": True,
        "no-head": False,
        "seed": 3,
    }
    expected = Style(
        emotion={"joy": 0.5, "anger": 0.2},
        emotion_settings=EmotionSettings(contrast=1.5),
        face=FaceParams(jaw_strength=1.2, blink_strength=0.5, multipliers={"jawOpen": 0.8}),
        life=LifeConfig(gaze=False),
        seed=3,
    )
    assert Style.from_options(values) == expected
    assert Style.from_options({}).emotion == "auto"  # the command line's defaults
