"""Every output says what made it: talkface's version, the engine, the neural model's name and
SHA-256 where it animated the clip, and the speech audio's SHA-256, in each format's own place (a
sidecar NAME.EXT.json for Live Link Face CSV and Rhubarb, whose importers take the file as it is)."""

import hashlib
import json
import subprocess
import sys
from importlib.metadata import version
from importlib.resources import files

import numpy as np
import pytest
from conftest import ARCTIC_TRANSCRIPT
from test_gltf_usd import read_glb, validate

VERSION = version("talkface")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "talkface.cli", *args], capture_output=True, text=True, timeout=300)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def animate(audio, out, *args: str) -> None:
    result = run("animate", str(audio), "-o", str(out), *args)
    assert result.returncode == 0, result.stderr


def test_json_from_the_neural_model_names_the_model_and_the_audio(tmp_path, arctic_wav) -> None:
    out = tmp_path / "a.json"
    animate(arctic_wav, out)
    meta = json.loads(out.read_text())["metadata"]
    model = files("talkface") / "assets" / "talkface-offline.onnx"
    assert meta["generator"] == f"talkface {VERSION}" and meta["talkface_version"] == VERSION
    assert meta["engine"] == "neural"
    assert meta["model"]["name"] == "talkface-offline.onnx"
    assert meta["model"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert meta["audio_sha256"] == sha256(arctic_wav)


def test_npz_of_a_transcript_says_text_aligned_and_no_model(tmp_path, arctic_wav) -> None:
    out = tmp_path / "a.npz"
    animate(arctic_wav, out, "--text", ARCTIC_TRANSCRIPT)
    with np.load(out, allow_pickle=False) as data:
        meta = json.loads(str(data["metadata"]))
    assert meta["engine"] == "text-aligned" and "model" not in meta  # every word fitted: no model was used
    assert meta["audio_sha256"] == sha256(arctic_wav) and meta["words_matched"] == meta["transcript_words"]


def test_glb_generator_and_extras(tmp_path, arctic_wav) -> None:
    out = tmp_path / "a.glb"
    animate(arctic_wav, out, "--engine", "phonetic")
    doc, _ = read_glb(out)
    assert doc["asset"]["generator"] == f"talkface {VERSION}"
    extras = doc["asset"]["extras"]
    assert extras["engine"] == "phonetic" and extras["audio_sha256"] == sha256(arctic_wav) and "model" not in extras
    issues = validate(out)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"][:5]


def test_usd_layer_metadata(tmp_path, arctic_wav) -> None:
    pytest.importorskip("pxr")
    from pxr import Sdf

    out = tmp_path / "a.usda"
    animate(arctic_wav, out, "--engine", "phonetic")
    layer = Sdf.Layer.FindOrOpen(str(out))
    assert layer.documentation == f"Made by talkface {VERSION}"
    data = layer.customLayerData
    assert data["engine"] == "phonetic" and data["audio_sha256"] == sha256(arctic_wav)


@pytest.mark.parametrize("name", ["take.csv", "cues.tsv"])
def test_live_link_csv_and_rhubarb_get_a_sidecar_and_stay_as_they_were(tmp_path, arctic_wav, name) -> None:
    out = tmp_path / name
    animate(arctic_wav, out, "--engine", "phonetic")
    meta = json.loads((tmp_path / f"{name}.json").read_text())
    assert meta["engine"] == "phonetic" and meta["audio_sha256"] == sha256(arctic_wav)
    first = out.read_text().splitlines()[0]
    assert first.startswith("Timecode,BlendShapeCount,EyeBlinkLeft") if name.endswith(".csv") else first == "0.00\tX"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, f"{name}.json"])  # no temporary files left


def test_standard_output_gets_no_sidecar(tmp_path, arctic_wav) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "talkface.cli", "animate", str(arctic_wav), "--engine", "phonetic", "-o", "-"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0 and result.stdout.startswith("Timecode,")
    assert not list(tmp_path.iterdir())


def test_a_sidecar_that_cannot_be_written_is_found_before_any_work(tmp_path, arctic_wav) -> None:
    (tmp_path / "take.csv.json").mkdir()
    result = run("animate", str(arctic_wav), "-o", str(tmp_path / "take.csv"))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "take.csv.json" in lines[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.csv.json"]


def test_say_records_the_voice_and_its_speech(tmp_path) -> None:
    result = run("say", "Hello there.", "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    meta = json.loads((tmp_path / "animation.csv.json").read_text())
    assert meta["engine"] == "tts" and meta["voice"].startswith("espeak")
    assert meta["audio_sha256"] == sha256(tmp_path / "speech.wav") and meta["talkface_version"] == VERSION
