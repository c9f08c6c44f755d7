"""Outputs and hostile inputs, tried the way they break: nothing but a regular file is replaced,
`-o -` is standard output, every option is checked before any work, and exit codes follow one rule
(2: the command line is wrong; 1: an input or output cannot be used)."""

import contextlib
import csv
import io
import json
import os
import resource
import socket
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ARCTIC_TRANSCRIPT

from talkface import export
from talkface.animation import Animation
from talkface.cli import main
from talkface.errors import TalkfaceError
from talkface.files import write_text


def run(*args: str, cwd: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "talkface.cli", *args], capture_output=True, text=True, timeout=120, cwd=cwd, **kwargs
    )


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, fragment: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code and len(lines) == 1, (result.returncode, result.stderr)
    assert "internal error" not in lines[0] and fragment in lines[0], lines[0]


def anim(frames: int = 30, fps: float = 30.0) -> Animation:
    return Animation(np.random.default_rng(0).random((frames, 52), dtype=np.float32), fps)


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".part" in p.name]


# --- what is at the path: only a regular file is replaced ---


def char_device(tmp_path: Path) -> Path:
    """A null device node made in tmp_path (as root), else /dev/null itself, which a user who is
    not root cannot replace whatever the code does."""
    node = tmp_path / "null"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        if os.geteuid() == 0:
            pytest.skip("root without CAP_MKNOD: not risking the real /dev/null")
        return Path("/dev/null")
    return node


@pytest.mark.parametrize(
    ("kind", "word", "is_kind"),
    [
        ("device", "a device", stat.S_ISCHR),
        ("fifo", "a named pipe", stat.S_ISFIFO),
        ("socket", "a socket", stat.S_ISSOCK),
        ("folder", "a folder", stat.S_ISDIR),
    ],
)
def test_refuses_to_replace_what_is_not_a_regular_file(tmp_path, kind, word, is_kind):
    with contextlib.ExitStack() as stack:
        path = tmp_path / "out"
        if kind == "device":
            path = char_device(tmp_path)
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "socket":
            sock = stack.enter_context(socket.socket(socket.AF_UNIX))
            sock.bind(str(path))
        else:
            path.mkdir()
        for fmt in ("csv", "npz"):
            with pytest.raises(TalkfaceError, match=f"is {word}, not a regular file"):
                export.write(anim(), path, fmt)
            assert is_kind(os.lstat(path).st_mode)
        assert not leftovers(tmp_path)


def test_a_symlink_is_written_through_and_stays_a_link(tmp_path):
    real = tmp_path / "real.json"
    export.write(anim(10), real)
    real.chmod(0o600)
    link = tmp_path / "link.json"
    link.symlink_to(real)
    export.write(anim(20), link)
    assert link.is_symlink() and link.resolve() == real
    assert export.read(real).num_frames == 20 and stat.S_IMODE(real.stat().st_mode) == 0o600
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "sub" / "new.json")
    export.write(anim(5), dangling)
    assert dangling.is_symlink() and export.read(tmp_path / "sub" / "new.json").num_frames == 5
    assert not leftovers(tmp_path)


def test_a_symlink_to_a_fifo_or_a_loop_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "to_pipe.csv").symlink_to(tmp_path / "pipe")
    with pytest.raises(TalkfaceError, match="named pipe"):
        export.write(anim(), tmp_path / "to_pipe.csv")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode)
    (tmp_path / "a.csv").symlink_to(tmp_path / "b.csv")
    (tmp_path / "b.csv").symlink_to(tmp_path / "a.csv")
    with pytest.raises(TalkfaceError, match="symbolic link loop"):
        export.write(anim(), tmp_path / "a.csv")
    assert (tmp_path / "a.csv").is_symlink() and (tmp_path / "b.csv").is_symlink()


def test_an_existing_file_keeps_its_mode_and_a_new_one_follows_the_umask(tmp_path):
    secret, script = tmp_path / "secret.json", tmp_path / "script.sh"
    secret.write_text("old")
    secret.chmod(0o600)
    script.write_text("old")
    script.chmod(0o750)
    old_umask = os.umask(0o027)
    try:
        export.write(anim(), secret)
        write_text(script, "#!/bin/sh\n")
        export.write(anim(), tmp_path / "new.csv")
        export.write(anim(), tmp_path / "new.npz")
    finally:
        os.umask(old_umask)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"secret.json": 0o600, "script.sh": 0o750, "new.csv": 0o640, "new.npz": 0o640}
    assert export.read(secret).num_frames == 30


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another owner")
def test_root_keeps_an_existing_files_owner(tmp_path):
    path = tmp_path / "theirs.json"
    path.write_text("old")
    os.chown(path, 1234, 5678)
    export.write(anim(), path)
    assert (path.stat().st_uid, path.stat().st_gid) == (1234, 5678) and export.read(path).num_frames == 30


def test_cli_refuses_a_fifo_output_before_any_work(tmp_path, arctic_wav):
    os.mkfifo(tmp_path / "pipe.csv")
    assert_one_line_error(run("animate", str(arctic_wav), "-o", str(tmp_path / "pipe.csv")), 1, "named pipe")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe.csv").st_mode)
    os.mkfifo(tmp_path / "say_out_is_a_pipe")
    out = tmp_path / "said"
    out.mkdir()
    os.mkfifo(out / "phonemes.tsv")
    assert_one_line_error(run("say", "hello", "-o", str(out)), 1, "named pipe")
    assert sorted(p.name for p in out.iterdir()) == ["phonemes.tsv"]  # no speech.wav or animation.csv first


# --- `-o -`: standard output for text formats ---


@pytest.mark.parametrize("fmt", ["csv", "json", "rhubarb-dat", None])
def test_dash_writes_text_formats_to_stdout(tmp_path, arctic_wav, fmt):
    result = run("animate", str(arctic_wav), "-o", "-", "--engine", "phonetic", *(["--format", fmt] if fmt else []),
                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not list(tmp_path.iterdir())  # no file named "-"
    if fmt in ("csv", None):  # CSV unless --format says otherwise
        rows = list(csv.reader(io.StringIO(result.stdout)))
        assert rows[0][0] == "Timecode" and abs(len(rows) - 1 - 3.1 * 30) <= 2 and all(len(r) == 63 for r in rows)
    elif fmt == "json":
        assert json.loads(result.stdout)["fps"] == 30
    else:
        assert result.stdout.startswith("MohoSwitch1\n") and result.stdout.endswith(" X\n")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["animate", "{wav}", "-o", "-", "--format", "npz"], "binary"),
        (["animate", "{wav}", "-o", "-", "--format", "glb"], "binary"),
        (["say", "hello", "-o", "-"], "folder"),
        (["demo", "-o", "-"], "folder"),
        (["animate", "{wav}", "-o", "face.usda", "--format", "npz"], "a .usda file is usd, not npz"),  # (was NPZ bytes)
        (["animate", "{wav}", "-o", "face.csv", "--format", "json"], "a .csv file is csv, not json"),
    ],
)
def test_dash_is_a_usage_error_for_binary_formats_and_folders(tmp_path, arctic_wav, args, fragment):
    result = run(*[a.format(wav=arctic_wav) for a in args], cwd=tmp_path)
    assert_one_line_error(result, 2, fragment)
    assert not list(tmp_path.iterdir())


def test_an_output_ending_in_a_slash_is_a_folder_not_a_file(tmp_path, arctic_wav):
    """`-o take.csv/` names a folder; it was written as the file take.csv."""
    result = run("animate", str(arctic_wav), "-o", "take.csv/", "--engine", "phonetic", cwd=tmp_path)
    assert_one_line_error(result, 1, "ends in a slash")
    assert not list(tmp_path.iterdir())


def test_a_closed_stdout_ends_quietly(tmp_path, arctic_wav):
    args = [sys.executable, "-m", "talkface.cli", "animate", str(arctic_wav), "-o", "-", "--engine", "phonetic"]
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        proc.stdout.close()  # the reader (`| head`) is gone before the first line
        stderr = proc.stderr.read()
        assert proc.wait(timeout=120) == 1
    assert stderr == ""


# --- every option is checked before any work ---


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--livelink", "127.0.0.1:notaport"], 2, "--livelink"),
        (["--livelink", "127.0.0.1:99999"], 2, "--livelink"),
        (["--phonemes-out", "{tmp}/file.txt/phones.tsv"], 1, "cannot write"),
        (["--phonemes-out", "{tmp}/pipe"], 1, "named pipe"),
    ],
)
def test_bad_options_are_reported_before_the_output_is_written(tmp_path, arctic_wav, args, code, fragment):
    (tmp_path / "file.txt").write_text("a file, not a folder")
    os.mkfifo(tmp_path / "pipe")
    out = tmp_path / "out.csv"
    argv = ["animate", str(arctic_wav), "--text", ARCTIC_TRANSCRIPT, "-o", str(out)]
    assert_one_line_error(run(*argv, *[a.format(tmp=tmp_path) for a in args]), code, fragment)
    assert not out.exists() and not leftovers(tmp_path)


# --- hostile input files ---


def test_deeply_nested_emotion_track_is_one_clear_line(tmp_path):
    track = tmp_path / "track.json"
    track.write_text("[" * 100_000 + "]" * 100_000)
    result = run("say", "hello", "-o", str(tmp_path / "o"), "--emotion-track", str(track))
    assert_one_line_error(result, 1, "nested too deeply")
    assert not (tmp_path / "o").exists()


def test_non_utf8_text_file_is_one_clear_line(tmp_path, arctic_wav):
    text = tmp_path / "line.txt"
    text.write_bytes("He turned sharply, and faced Gregson across the table.".encode("latin-1") + b" caf\xe9")
    result = run("animate", str(arctic_wav), "--text-file", str(text), "-o", str(tmp_path / "o.csv"))
    assert_one_line_error(result, 1, "not UTF-8")
    assert not (tmp_path / "o.csv").exists()


def limit_memory() -> None:  # were the limit gone, /dev/zero would fill memory rather than hang
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["animate", "{wav}", "-o", "{tmp}/o.csv", "--text-file", "/dev/zero"], 1, "is a device"),
        (["animate", "{wav}", "-o", "{tmp}/o.csv", "--text-file", "{tmp}/big.txt"], 1, "larger than"),
        (["say", "hello", "-o", "{tmp}/o", "--emotion-track", "/dev/zero"], 1, "is a device"),
        (["animate", "{wav}", "-o", "{tmp}/o.glb", "--character", "/dev/zero"], 1, "is a device"),
        (["animate", "{wav}", "-o", "{tmp}/o.json", "--rig", "{tmp}/zero.json"], 2, "is a device"),
        (["animate", "{wav}", "-o", "{tmp}/o.json", "--rig", "{tmp}/big.json"], 2, "larger than"),
    ],
)
def test_endless_or_huge_input_files_are_refused(tmp_path, arctic_wav, args, code, fragment):
    (tmp_path / "big.txt").write_text("the quick brown fox " * 60_000)  # 1.2 MB
    (tmp_path / "big.json").write_text('{"jaw": {"jawOpen": 1}, "pad": "' + "x" * 1_100_000 + '"}')
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    argv = [a.format(tmp=tmp_path, wav=arctic_wav) for a in args]
    assert_one_line_error(run(*argv, preexec_fn=limit_memory), code, fragment)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("o")]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["animate", "{pipe}", "-o", "{tmp}/o.csv"], "is a named pipe"),
        (["stream", "{pipe}"], "is a named pipe"),
        (["animate", "{wav}", "-o", "{tmp}/o.csv", "--text-file", "{pipe}"], "transcript is empty"),
        (["animate", "{wav}", "-o", "{tmp}/o.csv", "--emotion-track", "{pipe}"], "emotion track"),
        (["animate", "{wav}", "-o", "{tmp}/o.json", "--rig", "{tmp}/pipe.json"], "rig file"),
        (["animate", "{wav}", "-o", "{tmp}/o.glb", "--character", "{tmp}/pipe.glb"], "not a binary glTF"),
    ],
)
def test_a_named_pipe_no_one_writes_to_ends_in_one_line(tmp_path, arctic_wav, args, fragment):
    """Opening a pipe waits for a writer: every input talkface reads must not wait for one that never comes."""
    os.mkfifo(tmp_path / "pipe")
    for name in ("pipe.json", "pipe.glb"):
        (tmp_path / name).symlink_to(tmp_path / "pipe")
    argv = [a.format(tmp=tmp_path, wav=arctic_wav, pipe=tmp_path / "pipe") for a in args]
    result = subprocess.run([sys.executable, "-m", "talkface.cli", *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode in (1, 2) and fragment in result.stderr and "Traceback" not in result.stderr, result


def test_a_process_substitution_pipe_is_read_whole(tmp_path, arctic_wav):
    """`--text-file <(command)`: a pipe with a writer is read as a file is."""
    out = tmp_path / "o.csv"
    script = f'"$0" -m talkface.cli animate {arctic_wav} -o {out} --text-file <(echo "{ARCTIC_TRANSCRIPT}")'
    result = subprocess.run(["bash", "-c", script, sys.executable], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr
    assert json.loads(Path(f"{out}.json").read_text())["words_matched"] == len(ARCTIC_TRANSCRIPT.split())


def test_no_output_is_written_over_an_input_or_another_output(tmp_path, arctic_wav):
    """Through a link or by name, an animation, its sidecar and its phones never replace the audio
    they come from, nor each other (`animate`, `stream -o`, `render`)."""
    audio = tmp_path / "in.wav"
    audio.write_bytes(arctic_wav.read_bytes())
    (tmp_path / "link.csv").symlink_to(audio)
    text = ["--text", ARCTIC_TRANSCRIPT]
    cases = [
        (["-o", "{tmp}/o.csv", *text, "--phonemes-out", "{tmp}/in.wav"], "is the input"),
        (["-o", "{tmp}/in.wav", "--format", "csv"], "is the input"),
        (["-o", "{tmp}/link.csv"], "is the input"),
        (["-o", "{tmp}/o.csv", *text, "--phonemes-out", "{tmp}/o.csv"], "two of this run's outputs"),
        (["-o", "{tmp}/o.csv", *text, "--phonemes-out", "{tmp}/o.csv.json"], "two of this run's outputs"),
    ]
    for args, fragment in cases:
        result = run("animate", str(audio), *[a.format(tmp=tmp_path) for a in args])
        assert_one_line_error(result, 1, fragment)
        assert audio.read_bytes() == arctic_wav.read_bytes()
        assert not (tmp_path / "o.csv").exists() and not (tmp_path / "o.csv.json").exists()
    (tmp_path / "link.mp4").symlink_to(audio)
    for command, link in (("stream", "link.csv"), ("render", "link.mp4")):  # a link to the audio as their output
        assert_one_line_error(run(command, str(audio), "-o", str(tmp_path / link)), 1, "is the input")
        assert audio.read_bytes() == arctic_wav.read_bytes()


def test_an_output_whose_sidecar_cannot_be_written_keeps_the_file_it_replaces(tmp_path, arctic_wav):
    """The animation and its metadata sidecar are put in place together: with a 252-character name the
    animation could be written, its sidecar (.csv.json, 257) cannot, and the old animation must stay."""
    out = tmp_path / ("a" * 248 + ".csv")
    out.write_text("old")
    assert_one_line_error(run("animate", str(arctic_wav), "-o", str(out)), 1, ".csv.json: File name too long")
    assert out.read_text() == "old" and not leftovers(tmp_path)


# --- exit codes: 2 the command line is wrong, 1 an input or output cannot be used ---

EXIT_CODES = [
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--fps", "0"], 2),
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--fps", "nan"], 2),
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--fps", "500"], 2),  # over MAX_FPS, as the server refuses
    (["serve", "--idle-timeout", "nan"], 2),
    (["serve", "--max-upload-mb", "inf"], 2),
    (["serve", "--max-upload-mb", "1e308"], 2),  # finite, but its bytes are not: was an internal error (70)
    (["stream", "{wav}", "--livelink", "fe80::1:2"], 2),  # IPv6 needs brackets: was port 2 of fe80::1
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--emotion", "happiness=1"], 2),
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--emotion", "joy=2"], 2),
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--emotion-strength", "3"], 2),
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--face", "jawStrength=9"], 2),
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--offset", "smile=1"], 2),
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--blink-rate", "500"], 2),
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--max-emotions", "many"], 2),
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--seed", "-1"], 2),
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--livelink", "host:port"], 2),
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--format", "mp3"], 2),
    (["animate", "{wav}", "-o", "{tmp}/o.xyz"], 2),
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--text", "a", "--text-file", "{tmp}/line.txt"], 2),
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--phonemes-out", "{tmp}/p.tsv"], 2),
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--text", "a", "--phonemes-out", "-"], 2),
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--emotion", "joy", "--emotion-track", "{tmp}/track.json"], 2),
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--no-such-option"], 2),
    (["animate", "{wav}"], 2),
    (["say", "hello", "-o", "{tmp}/s", "--emotion", "happiness=1"], 2),
    (["serve", "--livelink", "host:port"], 2),
    (["serve", "--livelink", "a" * 70 + ".example:11111"], 2),  # no such address: found before serving
    (["stream", "{wav}", "--livelink", "a" * 5000 + ":1"], 2),
    (["stream", "{wav}", "--mic"], 2),
    (["stream", "{wav}", "--emotion", "happiness=1"], 2),
    (["render", "{wav}", "-o", "{tmp}/o.mp4", "--size", "65"], 2),  # (an encoder needs even sides)
    (["evaluate", "--set", "/dev/zero"], 1),  # a device is not read without end
    (["animate", "{tmp}/missing.wav", "-o", "{tmp}/o.csv"], 1),
    (["animate", "{tmp}/corrupt.wav", "-o", "{tmp}/o.csv"], 1),
    (["animate", "{tmp}/silent.wav", "-o", "{tmp}/o.csv"], 1),
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--text-file", "{tmp}/missing.txt"], 1),
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--text-file", "{tmp}/latin1.txt"], 1),
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--emotion-track", "{tmp}/missing.json"], 1),
    (["animate", "{wav}", "-o", "{tmp}/o.csv", "--emotion-track", "{tmp}/line.txt"], 1),
    (["animate", "{wav}", "-o", "{tmp}/line.txt/o.csv"], 1),
    (["animate", "{wav}", "-o", "{tmp}"], 1),
    (["say", "hello", "-o", "{tmp}/line.txt"], 1),
    (["say", "hello", "--voice", "klingon", "-o", "{tmp}/s"], 1),
    (["corpus", "--hours", "0.001", "--seed", "-1", "--text", "{tmp}/texts", "-o", "{tmp}/c"], 2),
    (["corpus", "--hours", "0.001", "--text", "{tmp}/texts", "-o", "{tmp}/c"], 1),  # a.zip is not a zip
]


@pytest.mark.parametrize(("args", "code"), EXIT_CODES)
def test_exit_codes(tmp_path, arctic_wav, capsys, args, code):
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF1234WAVEfmt nonsense")
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    (tmp_path / "line.txt").write_text("hello")
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9")
    (tmp_path / "track.json").write_text('[{"time": 0, "emotions": {"joy": 1}}]')
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.zip").write_bytes(b"not a zip")
    assert main([a.format(tmp=tmp_path, wav=arctic_wav) for a in args]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("talkface: error: "), err
    assert not (tmp_path / "o.csv").exists()


def test_rhubarb_dat_follows_fps(tmp_path, arctic_wav):
    result = run("animate", str(arctic_wav), "-o", str(tmp_path / "a.dat"), "--fps", "60", "--engine", "phonetic")
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "a.dat").read_text().splitlines()
    frames = sf.info(str(arctic_wav)).duration * 60
    assert lines[0] == "MohoSwitch1" and lines[-1].endswith(" X")
    assert abs(int(lines[-1].split()[0]) - (frames + 1)) <= 2  # on the 60 fps timeline, not 24


def test_standard_output_closed_is_one_line_before_any_work(arctic_wav):
    """`-o -` with standard output closed: refused at once (it crashed after the whole stream)."""
    for command in ("animate", "stream"):
        result = subprocess.run([sys.executable, "-m", "talkface.cli", command, str(arctic_wav), "-o", "-"],
                                capture_output=False, stderr=subprocess.PIPE, text=True, timeout=120,
                                preexec_fn=lambda: os.close(1))  # fmt: skip
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and lines == ["talkface: error: -o - writes to standard output, which is closed"]


@pytest.mark.parametrize("name", ["face.csv", "face.usd"])
def test_an_output_named_in_other_bytes_than_utf8_is_one_line_before_any_work(tmp_path, arctic_wav, name):
    """Such a name reaches Python as surrogates, which the temporary file's name (and USD) could not encode:
    exit 70 after the work; now one line before it, and nothing left behind."""
    out = os.fsdecode(bytes(tmp_path) + b"/\xff" + name.encode())
    assert_one_line_error(run("animate", str(arctic_wav), "-o", out), 1, "not UTF-8")
    assert os.listdir(tmp_path) == []
    say_out = os.fsdecode(bytes(tmp_path) + b"/say\xff")
    assert_one_line_error(run("say", "Hello.", "-o", say_out), 1, "not UTF-8")
    assert os.listdir(tmp_path) == []


def test_a_usd_named_in_utf8_is_written_under_that_name_in_a_latin1_locale(tmp_path, arctic_wav, latin1_env):
    """USD encodes a file's name as UTF-8 whatever the locale: in a Latin-1 one, where Python reads the UTF-8
    name "café.usda" as "cafÃ©.usda", USD saved its temporary file as another name, and the output was
    left empty (exit 0) beside that stray file. A name of Latin-1 bytes, which USD cannot save, is refused."""
    usd = pytest.importorskip("pxr.Usd")
    result = run("animate", str(arctic_wav), "-o", "café.usda", cwd=tmp_path, env=latin1_env)
    assert result.returncode == 0, result.stderr
    assert os.listdir(tmp_path) == ["café.usda"]
    assert usd.Stage.Open(str(tmp_path / "café.usda")).GetPrimAtPath("/Head/Skel/Anim").IsValid()
    latin1 = os.fsdecode(b"caf\xe9.usda")
    result = run("animate", str(arctic_wav), "-o", latin1, cwd=tmp_path, env=latin1_env, errors="replace")
    assert_one_line_error(result, 1, "the file name is not UTF-8, which USD writes names in")
    assert os.listdir(tmp_path) == ["café.usda"]


def test_say_never_writes_over_its_rig_or_emotion_track(tmp_path):
    """`say -o DIR` writes DIR/animation.json and DIR/phonemes.tsv: a rig or emotion track of those names
    there is an input, as `animate` already refuses to replace one."""
    rig = tmp_path / "animation.json"
    rig.write_text(json.dumps({"Mouth": {"jawOpen": 1}}))
    track = tmp_path / "phonemes.tsv"
    track.write_text(json.dumps([{"time": 0, "emotions": {"joy": 0.5}}]))
    assert_one_line_error(run("say", "Hello.", "--rig", str(rig), "-o", str(tmp_path)), 1, "is the input")
    assert_one_line_error(run("say", "Hello.", "--emotion-track", str(track), "-o", str(tmp_path)), 1, "is the input")
    assert json.loads(rig.read_text()) == {"Mouth": {"jawOpen": 1}} and json.loads(track.read_text())[0]["time"] == 0
    assert sorted(os.listdir(tmp_path)) == ["animation.json", "phonemes.tsv"]


#: `talkface` with SIGTERM coming while the Live Link CSV is written (its first block made), as `kill`,
#: systemd or `docker stop` may send it.
_TERMINATED_MID_WRITE = """
import os, signal, sys
from talkface import cli
from talkface.export import livelink_csv

made = livelink_csv.csv_chunks


def chunks(anim):
    for chunk in made(anim):
        os.kill(os.getpid(), signal.SIGTERM)
        yield chunk


livelink_csv.csv_chunks = chunks
sys.exit(cli.main(sys.argv[1:]))
"""


def test_sigterm_mid_write_leaves_no_temporary_file_and_the_old_output(tmp_path, arctic_wav):
    """SIGTERM ended the process where it stood: the temporary files of the output and its sidecar
    stayed beside them for good. It now unwinds as Ctrl-C does (exit status 143, as the signal's)."""
    out = tmp_path / "out.csv"
    out.write_text("the last run's\n")
    (tmp_path / "out.csv.json").write_text("{}\n")
    command = [sys.executable, "-c", _TERMINATED_MID_WRITE, "animate", str(arctic_wav), "-o", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 143, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "out.csv.json"]
    assert out.read_text() == "the last run's\n"


@pytest.mark.parametrize("reader", ["rig", "character", "text"])
def test_a_file_name_holding_a_nul_is_one_clear_error(reader):
    """The Python API with a name no file can have: os.open's ValueError was the caller's to make sense of."""
    from talkface import character
    from talkface.files import read_text
    from talkface.retarget import load_rig

    read = {"rig": load_rig, "character": character.plan, "text": read_text}[reader]
    with pytest.raises(TalkfaceError, match="cannot hold a NUL"):
        read("face\0.json" if reader == "rig" else "face\0.glb")
