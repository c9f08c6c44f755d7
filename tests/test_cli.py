"""The `talkface` command as a user runs it: outputs, lip-sync quality on them, and bad input."""

import csv
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ARCTIC_TRANSCRIPT, DATA

from talkface import export
from talkface.align import boundary_errors, read_htk_labels
from talkface.cli import main
from talkface.metrics import mouth_scores
from talkface.phonemes import read_phones_tsv


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "talkface.cli", *args], capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def said(tmp_path_factory):
    out = tmp_path_factory.mktemp("say")
    result = run("say", "Bob bought a pepper and a map", "-o", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_say_writes_wav_phonemes_and_live_link_csv(said):
    audio, rate = sf.read(said / "speech.wav")
    assert rate == 22050 and len(audio) > rate  # over a second of speech
    with open(said / "animation.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows[0]) == 63 and rows[0][0] == "Timecode" and rows[0][-1] == "RightEyeRoll"
    assert abs((len(rows) - 1) - len(audio) / rate * 30) <= 1  # 30 fps over the whole clip
    phones = read_phones_tsv(said / "phonemes.tsv")
    assert [p.phone for p in phones if p.phone in "bpm"] == ["b", "b", "b", "p", "p", "m", "p"]


def _file_size_limit(size: int):
    """A child's start: files of at most `size` bytes, a write past it failing (EFBIG) as on a full disk."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # (else the signal ends the process)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def test_say_on_a_full_disk_is_one_clear_error_and_leaves_nothing(tmp_path):
    """The speech that does not fit is the one-line error of any output that does not (not libsndfile's
    internal error), and the folder is left without a part of it."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "talkface.cli", "say", "Bob bought a pepper and a map", "-o", str(out)]
    limit = _file_size_limit(16 << 10)
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, preexec_fn=limit)
    # (espeak-ng's PulseAudio client says "ftruncate() failed" on a line of its own: the limit is
    # on its shared-memory file too, which no full disk limits)
    ours = [line for line in result.stderr.splitlines() if "ftruncate() failed" not in line]
    assert ours == [f"talkface: error: {out / 'speech.wav'}: cannot write (File too large)"], result.stderr
    assert result.returncode == 1
    assert list(out.iterdir()) == []


def test_say_lips_close_on_bilabials_and_open_on_open_vowels(said):
    anim = export.read(said / "animation.csv")
    scores = mouth_scores(anim, read_phones_tsv(said / "phonemes.tsv"))
    assert scores.closed_on_bilabials == 1.0 and scores.counts["bilabials"] == 7
    assert scores.open_on_open_vowels == 1.0 and scores.counts["open_vowels"] >= 4


def test_animate_with_transcript_on_real_speech(tmp_path, arctic_wav):
    out, tsv = tmp_path / "face.json", tmp_path / "phones.tsv"
    result = run("animate", str(arctic_wav), "--text", ARCTIC_TRANSCRIPT, "-o", str(out), "--phonemes-out", str(tsv))
    assert result.returncode == 0, result.stderr
    anim = export.read(out)
    assert anim.fps == 30 and abs(anim.duration - 3.1) < 0.1
    aligned, hand = read_phones_tsv(tsv), read_htk_labels(DATA / "arctic_a0009_phone.lab")
    # boundaries: each hand-labelled phone start against the aligned start of the same phone
    errors = boundary_errors(aligned, hand)
    assert len(errors) >= 0.9 * (len(hand) - 1)
    assert np.median(np.abs(errors)) <= 0.020
    # lips close on the real bilabials (/p/ of "sharply", /b/ of "table"), timed by the hand labels
    assert mouth_scores(anim, hand).closed_on_bilabials == 1.0


@pytest.mark.parametrize("fps", ["24", "60"])
def test_fps_sets_the_frame_rate(tmp_path, arctic_wav, fps):
    out = tmp_path / "a.npz"
    assert run("animate", str(arctic_wav), "--text", ARCTIC_TRANSCRIPT, "-o", str(out), "--fps", fps).returncode == 0
    anim = export.read(out)
    assert anim.fps == float(fps) and abs(anim.num_frames - 3.1 * float(fps)) <= 2


def test_rhubarb_cues(tmp_path, arctic_wav):
    out = tmp_path / "cues.tsv"
    result = run("animate", str(arctic_wav), "--text", ARCTIC_TRANSCRIPT, "-o", str(out), "--format", "rhubarb-tsv")
    assert result.returncode == 0, result.stderr
    shapes = [line.split("\t")[1] for line in out.read_text().splitlines()]
    assert shapes[0] == "X" and shapes[-1] == "X" and "A" in shapes and "D" in shapes


def test_voices_lists_espeak(tmp_path):
    result = run("voices")
    assert result.returncode == 0 and "espeak:en-us" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["say", "", "-o", "{tmp}/o"], "text"),
        (["say", "...", "-o", "{tmp}/o"], "text"),
        (["say", "!!! ?? 😀", "-o", "{tmp}/o"], "nothing to pronounce"),  # espeak-ng would read the names
        (["say", "9 " * 60_000, "-o", "{tmp}/o"], "at most 100,000 at a time"),
        (["say", "caf\udce9", "-o", "{tmp}/o"], "not UTF-8 text (byte 0xe9"),  # (os.fsencode: the byte)
        (["animate", "{wav}", "--text", "he \udcff", "--lang", "de", "-o", "{tmp}/o.csv"], "not UTF-8 text"),
        (["say", "hello", "--voice", "klingon", "-o", "{tmp}/o"], "talkface voices"),
        (["animate", "{tmp}/missing.wav", "-o", "{tmp}/o.csv"], "no such audio file"),
        (["animate", "{tmp}/corrupt.wav", "-o", "{tmp}/o.csv"], "not a readable audio file"),
        (["animate", "{tmp}/two\nlines.wav", "-o", "{tmp}/o.csv"], "two\\nlines.wav: no such audio file"),
        (["say", "hello", "--voice", "a\r\nb", "-o", "{tmp}/o"], "a\\r\\nb"),
        (["animate", "{tmp}/silent.wav", "-o", "{tmp}/o.csv"], "silent"),
        (["animate", "{tmp}/silent.wav", "-o", "{tmp}/o.xyz"], "format"),
        (["animate", "{wav}", "--text", "", "-o", "{tmp}/o.csv"], "transcript"),
        (["animate", "{wav}", "-o", "{tmp}/file.txt/o.csv"], "cannot write"),
        (["animate", "{wav}", "-o", "{tmp}/o.csv", "--fps", "0"], "fps"),
        (["animate"], "Missing argument"),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(tmp_path, arctic_wav, args, fragment):
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF1234WAVEfmt nonsense")
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    (tmp_path / "file.txt").write_text("a file, not a folder")
    argv = [a.format(tmp=tmp_path, wav=arctic_wav) for a in args]
    assert_one_line_error(run(*argv), fragment)
    assert not (tmp_path / "o.csv").exists() and not list(tmp_path.glob(".*part*"))


def test_failed_run_keeps_the_existing_output(tmp_path):
    good = tmp_path / "o.csv"
    good.write_text("previous good output")
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    assert run("animate", str(tmp_path / "silent.wav"), "-o", str(good)).returncode != 0
    assert good.read_text() == "previous good output"


def test_demo_runs_and_prints_its_outputs(tmp_path):
    result = run("demo", "-o", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    listed = [line.strip() for line in result.stdout.splitlines() if line.startswith("  ")]
    assert len(listed) == 7 and all(Path(p).stat().st_size > 0 for p in listed)
    aligned = json.loads((tmp_path / "demo" / "sample_aligned.csv.json").read_text())  # what made each output
    heard = json.loads((tmp_path / "demo" / "sample.json").read_text())["metadata"]
    assert aligned["engine"] == "text-aligned" and heard["engine"] == "neural"


def test_utf8_text_in_an_ascii_locale_is_said_as_in_a_utf8_one(tmp_path):
    """With LC_ALL=C and PYTHONUTF8=0 Python reads arguments as ASCII, keeping other bytes as surrogates:
    `say "Ça va, José?"` was refused as "not UTF-8 text", which it is."""
    ascii_env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0"}
    probe = [sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"]
    if subprocess.run(probe, env=ascii_env, capture_output=True, text=True, timeout=60).stdout.strip() != "ascii":
        pytest.skip("the C locale is not ASCII here")
    for name, env in (("utf8", None), ("ascii", ascii_env)):
        say = [sys.executable, "-m", "talkface.cli", "say", "Ça va, José?", "-o", str(tmp_path / name)]
        result = subprocess.run(say, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "ascii" / "phonemes.tsv").read_text() == (tmp_path / "utf8" / "phonemes.tsv").read_text()


def test_audio_named_in_another_encoding_is_animated(tmp_path, arctic_wav):
    """A file name that is not UTF-8 (Latin-1 "café.wav" on Linux) is read, and Rhubarb's XML, which
    records the sound file's name, is written with the byte it cannot show replaced."""
    audio = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.wav"))
    audio.write_bytes(Path(arctic_wav).read_bytes())
    out = tmp_path / "cues.xml"
    result = run("animate", str(audio), "--format", "rhubarb-xml", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "<soundFile>" in out.read_text() and "caf\ufffd.wav" in out.read_text()


def test_demo_finds_an_output_folder_it_cannot_write_before_the_work(tmp_path, monkeypatch, capsys):
    """Its outputs were checked only as they were written, after both animations were made."""
    from talkface import cli_animate

    def no_work(*args, **kwargs):
        raise AssertionError("the demo started its work")

    monkeypatch.setattr(cli_animate, "Animator", no_work)
    (tmp_path / "a_file").write_text("not a folder")
    assert main(["demo", "-o", str(tmp_path / "a_file" / "out")]) == 1
    assert "cannot write here" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "module", "extra"),
    [
        (["animate", "{wav}", "-o", "{tmp}/face.usda"], "pxr", "usd"),
        (["animate", "{wav}", "-o", "{tmp}/face.usdc", "--format", "usd"], "pxr", "usd"),
        (["render", "{wav}", "-o", "{tmp}/face.mp4"], "moderngl", "render"),
        (["batch", "{manifest}", "-o", "{tmp}/out", "--format", "usd", "--jobs", "1"], "pxr", "usd"),
        (["train", "--config", "{tmp}/run.yaml"], "yaml", "train"),  # torch alone is not the train extra
        (["corpus", "--hours", "0.01", "-o", "{tmp}/c", "--text", "{tmp}"], "scipy", "train"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it_before_any_work(args, module, extra, tmp_path, arctic_wav, monkeypatch,
                                                               capsys):  # fmt: skip
    """Without pxr, moderngl or the train extra's modules, each command said so only after animating the speech
    (batch: on every line, after its animation), or, with torch alone there, ended in a traceback."""
    from talkface import batch, cli_animate

    def no_work(*args, **kwargs):
        raise AssertionError("the command started its work")

    monkeypatch.setattr(cli_animate, "Animator", no_work)
    monkeypatch.setattr(batch, "run", no_work)
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: its import fails, find_spec finds nothing
    (tmp_path / "run.yaml").write_text("out: run\n")
    manifest = tmp_path / "lines.csv"
    manifest.write_text(f"audio\n{arctic_wav}\n")
    argv = [a.format(wav=arctic_wav, tmp=tmp_path, manifest=manifest) for a in args]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"pip install 'talkface[{extra}]'" in err[0], err
    assert not list(tmp_path.glob("face.*")) and not (tmp_path / "out" / "face.usda").exists()


def test_voices_says_how_to_install_one_when_there_is_none(monkeypatch, capsys):
    """Without espeak-ng (a pip install on a bare machine) `voices` printed nothing and exited 0."""
    from talkface import tts

    monkeypatch.setattr(tts, "list_voices", list)
    assert main(["voices"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "apt-get install espeak-ng" in captured.err and len(captured.err.splitlines()) == 1
