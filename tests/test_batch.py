"""`talkface batch`: every line animated or reported, resumable after Ctrl-C or SIGKILL, the same
outputs from one worker, two, or a Ray cluster."""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ARCTIC_TRANSCRIPT

from talkface import export
from talkface.batch import REPORT, Settings, read_manifest, run
from talkface.batch.manifest import check_outputs
from talkface.cli import main
from talkface.files import temp_base

TALKFACE = [sys.executable, "-m", "talkface.cli"]


@pytest.fixture
def library(tmp_path: Path, arctic_wav: Path) -> Path:
    """A folder of clips: speech (twice), corrupt, empty and silent files, and a transcript."""
    folder = tmp_path / "lib"
    (folder / "vo").mkdir(parents=True)
    shutil.copy(arctic_wav, folder / "vo" / "a.wav")
    speech, rate = sf.read(arctic_wav, dtype="float32")
    sf.write(folder / "vo" / "b.flac", speech[: rate * 2], rate)
    (folder / "corrupt.wav").write_bytes(b"RIFF" + bytes(range(256)) * 8)
    (folder / "empty.wav").write_bytes(b"")
    sf.write(folder / "silent.wav", np.zeros(rate, np.float32), rate)
    (folder / "vo" / "a.txt").write_text(ARCTIC_TRANSCRIPT)
    return folder


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / REPORT).read_text().splitlines()]


def _manifest(folder: Path, rows: list[str]) -> Path:
    path = folder / "lines.csv"
    path.write_text("\n".join(["audio,text_file,emotion,fps,output,speaker", *rows]) + "\n")
    return path


def test_every_line_is_animated_or_reported_and_a_rerun_does_only_what_changed(library, tmp_path, capsys):
    manifest = _manifest(library, [
        "vo/a.wav,vo/a.txt,joy=0.5,,,bob",
        "vo/b.flac,,,60,b60.json,alice",
        "corrupt.wav,,,,,",
        "empty.wav,,,,,",
        "silent.wav,vo/a.txt,,,,",
        "missing.wav,,,,,",
        "vo/a.wav,,joyful=2,,bad_emotion.csv,",
        "vo/a.wav,,,fast,bad_fps.csv,",
        ",,,,,",
    ])  # fmt: skip
    out = tmp_path / "out"
    assert main(["batch", str(manifest), "-o", str(out), "--jobs", "2"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "9 lines: 2 done, 7 failed, 0 skipped" in captured.out
    assert "columns not used: speaker" in captured.err
    errors = {r["line"]: r["error"] for r in _records(out) if r["status"] == "failed"}
    assert [r["line"] for r in _records(out)] == list(range(2, 11))  # one record per line, in manifest order
    assert "not a readable audio file" in errors[4]
    assert "audio is empty" in errors[5]
    assert "silent" in errors[6]
    assert "no such audio file" in errors[7]
    assert "unknown emotion 'joyful'" in errors[8]
    assert "fps must be a number, not 'fast'" in errors[9]
    assert "no audio file given" in errors[10]
    for line, error in errors.items():
        assert f"line {line} (" in captured.err and error in captured.err  # each failure on stderr as it comes
    aligned = next(r for r in _records(out) if r["line"] == 2)
    assert (aligned["output"], aligned["words"], aligned["words_matched"]) == ("vo/a.csv", 9, 9)
    assert export.read(out / "vo" / "a.csv").duration == pytest.approx(3.1, abs=0.1)
    assert export.read(out / "b60.json").fps == 60
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["a.csv", "a.csv.json", "b60.json", REPORT]

    before = (out / "b60.json").stat().st_mtime_ns
    (library / "vo" / "a.txt").write_text("He turned sharply.")  # line 2's transcript changes
    assert main(["batch", str(manifest), "-o", str(out), "--jobs", "2"]) == 1
    assert "9 lines: 1 done, 7 failed, 1 skipped" in capsys.readouterr().out
    assert (out / "b60.json").stat().st_mtime_ns == before
    assert next(r for r in _records(out) if r["line"] == 2)["words"] == 3
    assert main(["batch", str(manifest), "-o", str(out), "--jobs", "2", "--force"]) == 1
    assert "9 lines: 2 done, 7 failed, 0 skipped" in capsys.readouterr().out
    assert len(_records(out)) == 9


def test_outputs_are_the_same_whatever_runs_them_and_seeds_come_from_the_lines(library, tmp_path):
    rows = [
        {"audio": "vo/a.wav", "output": "first.csv"},
        {"audio": "vo/a.wav", "output": "second.csv"},
        {"audio": "vo/a.wav", "output": "seeded1.csv", "seed": 7},
        {"audio": "vo/a.wav", "output": "seeded2.csv", "seed": "7"},
        {"audio": "vo/b.flac", "face": {"jawStrength": 0.5}, "emotion": "sadness=0.8", "format": "rhubarb-tsv"},
        {"audio": "vo/a.wav", "text_file": "vo/a.txt", "output": "aligned.json"},
    ]
    manifest = library / "lines.jsonl"
    manifest.write_text("\n".join([*map(json.dumps, rows[:3]), "{not json", *map(json.dumps, rows[3:])]) + "\n")
    lines = read_manifest(manifest)
    assert lines[3].error == "not a JSON object"
    outputs = {}
    for jobs in (1, 2):
        out = tmp_path / f"out{jobs}"
        results = list(run(lines, out, Settings(fps=25), jobs=jobs))
        assert sorted(r.status for r in results) == ["failed"] + ["ok"] * 6
        outputs[jobs] = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.*") if p.name != REPORT}
    written = ["aligned.json", "first.csv", "second.csv", "seeded1.csv", "seeded2.csv", "vo/b.tsv"]
    sidecars = [f"{name}.json" for name in written if not name.endswith(".json")]  # what made them
    assert sorted(outputs[1]) == sorted(written + sidecars)
    assert outputs[1] == outputs[2]
    made = json.loads(outputs[1]["aligned.json"])["metadata"]
    assert made["engine"] == "text-aligned" and made["words_matched"] == made["transcript_words"] == 9
    assert json.loads(outputs[1]["first.csv.json"])["engine"] == "neural"
    assert outputs[1]["seeded1.csv"] == outputs[1]["seeded2.csv"]  # the same seed, the same blinks
    assert outputs[1]["first.csv"] != outputs[1]["second.csv"]  # each line its own seed
    assert export.read(tmp_path / "out1" / "first.csv").fps == 25


def test_a_line_whose_output_or_sidecar_is_another_lines_is_refused(tmp_path):
    """A CSV's metadata goes to NAME.csv.json: a line that writes that name, or the report's, is refused
    before any work, whichever comes first, so no line's result replaces another's."""
    rows = [{"audio": "a.wav", "output": "a.csv.json"}, {"audio": "a.wav", "output": "a.csv"},
            {"audio": "a.wav", "output": "b.csv"}, {"audio": "a.wav", "output": "b.csv.json"},
            {"audio": "a.wav", "output": "report.jsonl", "format": "json"}]  # fmt: skip
    manifest = tmp_path / "lines.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    errors = [line.error for line in read_manifest(manifest)]
    assert errors[0] is None and errors[2] is None and "a.csv.json is also line 1's" in errors[1]
    assert "b.csv.json is also line 3's" in errors[3] and "report's name" in errors[4]


def test_a_line_whose_output_is_inside_another_lines_output_is_refused(tmp_path):
    """`guard` and `guard/01.csv`: one is a file, the other needs it to be a folder; whichever ran second
    failed, after the work. The line whose output lies inside the other's fails before any."""
    rows = [{"audio": "a.wav", "output": "guard/01.csv"}, {"audio": "a.wav", "output": "guard", "format": "csv"},
            {"audio": "a.wav", "output": "guarded/01.csv"}]  # fmt: skip
    manifest = tmp_path / "lines.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    errors = [line.error for line in check_outputs(read_manifest(manifest), tmp_path / "out")]
    assert "guard/01.csv: is inside line 2's output" in errors[0] and errors[1:] == [None, None]


def test_a_lines_format_is_its_own_else_its_outputs_extension_else_the_runs(tmp_path):
    """--format is the default of lines whose output says nothing: it wrote NPZ bytes into a line's face.usda."""
    rows = [{"audio": "a.wav", "output": "face.usda"},
            {"audio": "b.wav", "output": "cues.json", "format": "rhubarb-json"},
            {"audio": "c.wav"}, {"audio": "d.wav", "output": "face2.usda", "format": "npz"}]  # fmt: skip
    manifest = tmp_path / "lines.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    lines = read_manifest(manifest, "npz")
    assert [(line.fmt, line.output) for line in lines[:3]] == [
        ("usd", "face.usda"), ("rhubarb-json", "cues.json"), ("npz", "c.npz")]  # fmt: skip
    assert "a .usda file is usd, not npz" in lines[3].error


def test_a_ray_cluster_runs_the_same_worker_with_the_same_outputs(library, tmp_path):
    ray = pytest.importorskip("ray", reason="the batch extra (ray) is not installed")
    lines = read_manifest(library / "vo", "json")  # a folder: a.wav with a.txt beside it, b.flac without
    pooled = list(run(lines, tmp_path / "pool", jobs=2))
    # a cluster of its own, even where another one runs on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    try:
        on_ray = list(run(lines, tmp_path / "ray", ray="auto"))
    finally:
        ray.shutdown()
    summary = sorted((r.output, r.status, r.words) for r in on_ray)
    assert summary == [("a.json", "ok", 9), ("b.json", "ok", None)]
    assert sorted((r.output, r.status, r.words) for r in pooled) == summary
    for name in ("a.json", "b.json"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "pool" / name).read_bytes()


def _long_manifest(library: Path, count: int) -> Path:
    return _manifest(library, [f"vo/a.wav,,,,line{k:02d}.csv," for k in range(count)])


def _start(manifest: Path, out: Path) -> subprocess.Popen:
    command = [*TALKFACE, "batch", str(manifest), "-o", str(out), "--jobs", "1"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_records(out: Path, count: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(FileNotFoundError):
            if (out / REPORT).read_text().count("\n") >= count:
                return
        time.sleep(0.01)
    pytest.fail(f"the batch did not get to {count} lines while running: {process.communicate()}")


def _check_complete(out: Path, count: int) -> None:
    records = _records(out)
    assert sorted(r["output"] for r in records) == [f"line{k:02d}.csv" for k in range(count)]  # each line once
    assert {r["status"] for r in records} == {"ok"}
    for k in range(count):
        assert export.read(out / f"line{k:02d}.csv").num_frames > 80  # whole files only
    lines = [f"line{k:02d}.csv" for k in range(count)]
    assert sorted(p.name for p in out.iterdir()) == sorted([REPORT, *lines, *(f"{name}.json" for name in lines)])


def test_a_run_killed_with_sigkill_is_finished_by_the_next_each_line_once(library, tmp_path):
    count = 16
    manifest, out = _long_manifest(library, count), tmp_path / "out"
    process = _start(manifest, out)
    _wait_for_records(out, 3, process)
    os.killpg(process.pid, signal.SIGKILL)  # the run and its worker, mid-line
    process.wait()
    done = len(_records(out))
    assert 3 <= done < count
    assert main(["batch", str(manifest), "-o", str(out), "--jobs", "1"]) == 0
    _check_complete(out, count)


def test_a_killed_writers_temporary_file_of_a_long_name_is_cleared(library, tmp_path):
    """A temporary file's name shortens a long output name; the next run still knows it for its own."""
    long = "l" * 240 + ".csv"
    out = tmp_path / "out"
    out.mkdir()
    (out / f".{temp_base(long)}.0123abcd.part.csv").write_text("half a file")
    assert main(["batch", str(_manifest(library, [f"vo/a.wav,,,,{long},"])), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([REPORT, long, f"{long}.json"])


def test_a_killed_writers_temporary_files_of_sidecars_and_usd_saves_are_cleared(library, tmp_path):
    """A kill mid-write leaves the sidecar's temporary file beside the output's, and a USD save leaves
    USD's own (`.NAME.XXXXXXXX.part.Ab12Cd`); the next run clears them all, and nobody else's."""
    out = tmp_path / "out"
    out.mkdir()
    debris = [".a.csv.0123abcd.part.csv", ".a.csv.json.0123abcd.part.json", ".b.usda.0123abcd.part.usda",
              ".b.usda.0123abcd.part.7VKgRJ"]  # fmt: skip
    others = [".c.csv.0123abcd.part.csv", ".c.csv.json.0123abcd.part.json"]  # not this manifest's outputs
    for name in debris + others:
        (out / name).write_text("half a file")
    manifest = _manifest(library, ["vo/a.wav,,,,a.csv,", "vo/a.wav,,,,b.usda,"])
    assert main(["batch", str(manifest), "-o", str(out), "--jobs", "1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([REPORT, "a.csv", "a.csv.json", "b.usda", *others])


def test_ctrl_c_finishes_the_lines_in_progress_and_the_next_run_does_the_rest(library, tmp_path, capsys):
    count = 16
    manifest, out = _long_manifest(library, count), tmp_path / "out"
    process = _start(manifest, out)
    _wait_for_records(out, 2, process)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal sends it, to the whole process group
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted: run the same command again to do the rest" in stderr
    assert "Traceback" not in stderr
    written = sorted(p.name for p in out.glob("*.csv"))
    assert sorted(r["output"] for r in _records(out)) == written  # every output written is in the report
    assert main(["batch", str(manifest), "-o", str(out), "--jobs", "1"]) == 0
    assert f"{count} lines: {count - len(written)} done, 0 failed, {len(written)} skipped" in capsys.readouterr().out
    _check_complete(out, count)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("lines.csv", b"\x00\x01garbage\x00", "no 'audio' column"),
        ("lines.csv", b"audio\n" + b"x" * 200_000, "not a readable CSV manifest"),
        ("lines.csv", b"\xff\xfe\x00binary", "not UTF-8"),
        ("lines.csv", b"file,text\na.wav,hello\n", "no 'audio' column"),
        ("lines.csv", b"audio\n", "no lines in it"),
        ("lines.jsonl", b"audio,text\na.wav,hello\n", "line 1 is not a JSON object"),
        ("lines.txt", b"a.wav\n", "a manifest is a .csv or .jsonl file"),
    ],
)
def test_a_manifest_that_cannot_be_read_is_one_usage_error(tmp_path, capsys, name, content, message):
    (tmp_path / name).write_bytes(content)
    assert main(["batch", str(tmp_path / name), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists()


def test_an_unknown_lang_is_one_usage_error_before_any_work(library, tmp_path, capsys):
    # (as for `animate`: it was every line with a transcript failed, the others animated, exit 1)
    manifest = _manifest(library, ["vo/a.wav,vo/a.txt,,,a.csv,", "vo/b.flac,,,,b.csv,"])
    assert main(["batch", str(manifest), "-o", str(tmp_path / "out"), "--lang", "xx-nowhere"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown language 'xx-nowhere'" in err, err
    assert not (tmp_path / "out").exists()


def test_a_worker_that_dies_fails_only_its_own_line(library, tmp_path):
    speech, rate = sf.read(library / "vo" / "a.wav", dtype="float32")
    sf.write(library / "vo" / "long.wav", np.tile(speech, 100), rate)  # 5 minutes: seconds of work on any machine
    manifest = _manifest(library, ["vo/long.wav,,,,first.csv,", "vo/b.flac,,,,second.csv,", "vo/a.wav,,,,third.csv,"])
    out = tmp_path / "out"
    killed = []

    def kill_the_first_worker() -> None:  # as it starts up or works on the first line, sent to it at once
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            for child in multiprocessing.active_children():
                if child.name == "talkface-batch":
                    time.sleep(0.3)
                    os.kill(child.pid, signal.SIGKILL)
                    killed.append(child.pid)
            time.sleep(0.01)

    killer = threading.Thread(target=kill_the_first_worker)
    killer.start()
    results = {r.output: r for r in run(manifest, out, jobs=1)}
    killer.join()
    assert killed
    assert results["first.csv"].status == "failed" and "worker process died" in results["first.csv"].error
    assert results["second.csv"].status == "ok" and results["third.csv"].status == "ok"
    written = ["report.jsonl", "second.csv", "second.csv.json", "third.csv", "third.csv.json"]
    assert sorted(p.name for p in out.iterdir()) == written


def test_a_worker_that_dies_between_lines_is_replaced(library, tmp_path):
    manifest = _manifest(library, ["vo/a.wav,,,,first.csv,", "vo/b.flac,,,,second.csv,"])
    results = run(manifest, tmp_path / "out", jobs=1)
    assert next(results).status == "ok"
    (worker,) = [c for c in multiprocessing.active_children() if c.name == "talkface-batch"]
    os.kill(worker.pid, signal.SIGKILL)  # idle, waiting for its next line
    worker.join(5)
    assert [r.status for r in results] == ["ok"]


def test_a_line_never_writes_over_what_it_reads_nor_over_its_manifest(library):
    """With the output folder the manifest's own: a line whose output is its audio, its transcript or
    the manifest fails; the files stay as they were and the other lines are done."""
    manifest = library / "lines.csv"
    manifest.write_text("audio,text_file,output,format\nvo/a.wav,,vo/a.wav,csv\nvo/a.wav,vo/a.txt,vo/a.txt,csv\n"
                        "vo/a.wav,,lines.csv,\nvo/b.flac,,vo/b.csv,\n")  # fmt: skip
    before = {p: p.read_bytes() for p in (library / "vo" / "a.wav", library / "vo" / "a.txt", manifest)}
    results = {r.line: r for r in run(manifest, library, jobs=1)}
    assert [results[n].status for n in (2, 3, 4, 5)] == ["failed", "failed", "failed", "ok"]
    assert all("refusing to write over it" in results[n].error for n in (2, 3, 4))
    assert all(p.read_bytes() == data for p, data in before.items())


def test_a_nul_in_a_cell_fails_its_line_only(library, tmp_path):
    manifest = library / "lines.jsonl"
    manifest.write_text('{"audio": "vo/a.wav", "output": "x\\u0000/b.csv"}\n{"audio": "vo/b.flac"}\n')
    results = list(run(manifest, tmp_path / "out", jobs=1))
    assert (results[0].status, results[0].error) == ("failed", "output holds a NUL character, which no file name may")
    assert results[1].status == "ok"


@pytest.mark.parametrize("column", ["audio", "text_file", "emotion_track", "output"])
@pytest.mark.parametrize("escape", ["\\ud800", "\\udcff"])
def test_a_lone_surrogate_in_a_file_name_fails_its_line_only(library, tmp_path, column, escape):
    """JSON may escape a lone surrogate, which no file name can hold: it was an internal error (exit 70) that
    ended the whole run, the lines that were fine undone."""
    manifest = library / "lines.jsonl"
    manifest.write_text(f'{{"audio": "vo/a.wav", "{column}": "x{escape}.json"}}\n{{"audio": "vo/b.flac"}}\n')
    results = list(run(manifest, tmp_path / "out", jobs=1))
    assert results[0].status == "failed" and results[0].error.startswith(f"{column} holds a lone surrogate (U+")
    assert results[1].status == "ok" and (tmp_path / "out" / "vo" / "b.csv").is_file()


def test_a_file_name_the_locale_cannot_hold_fails_its_line_only(library, tmp_path, latin1_env):
    """In a Latin-1 locale a UTF-8 manifest may name a file Python cannot (日): it was an internal error
    (exit 70) that ended the whole run."""
    manifest = library / "lines.csv"
    manifest.write_text("audio,output\nvo/a.wav,日.csv\nvo/b.flac,b.csv\n", encoding="utf-8")
    out = tmp_path / "out"
    result = subprocess.run([*TALKFACE, "batch", str(manifest), "-o", str(out), "--jobs", "1"], env=latin1_env,
                            capture_output=True, timeout=300)  # fmt: skip
    assert result.returncode == 1 and b"internal error" not in result.stderr, result.stderr
    assert b"line 2 (vo/a.wav): output holds '\\u65e5', which file names in this locale" in result.stderr
    assert [r["status"] for r in _records(out)] == ["failed", "ok"] and (out / "b.csv").is_file()


def test_a_whole_number_cell_is_not_rounded():
    """`"seed": 1.5` is refused rather than run as seed 1; 7, 7.0 and "7" are seed 7."""
    from talkface.errors import TalkfaceError, checked_number

    assert [checked_number(v, "seed", 0, 10, whole=True) for v in (7, 7.0, "7")] == [7, 7, 7]
    for bad in (1.5, "1.5", float("nan"), True):
        with pytest.raises(TalkfaceError, match="seed must be a whole number"):
            checked_number(bad, "seed", 0, 10, whole=True)


def test_a_line_whose_sidecar_is_missing_is_animated_again(library, tmp_path, capsys):
    """A CSV's provenance sidecar lost (deleted, or the run killed between the two renames): the next
    run does the line again rather than skip it with its sidecar missing for good."""
    manifest = _manifest(library, ["vo/a.wav,,,,a.csv,"])
    out = tmp_path / "out"
    assert main(["batch", str(manifest), "-o", str(out)]) == 0
    (out / "a.csv.json").unlink()
    capsys.readouterr()
    assert main(["batch", str(manifest), "-o", str(out)]) == 0
    assert "1 line: 1 done, 0 failed, 0 skipped" in capsys.readouterr().out
    assert (out / "a.csv.json").is_file()


def test_a_line_never_writes_over_another_lines_input(library, capsys):
    """An emotion track many lines share, in the folder the outputs go to: the line whose output is that
    file (here by default, `anger.wav` as JSON) fails before any work, whatever order the lines run in,
    and the track stays as it was for the lines that read it."""
    shutil.copy(library / "vo" / "b.flac", library / "anger.flac")
    track = library / "anger.json"
    track.write_text('[{"time": 0, "emotions": {"anger": 0.8}}]')
    before = track.read_bytes()
    manifest = library / "lines.csv"
    manifest.write_text("audio,emotion_track\nvo/b.flac,anger.json\nanger.flac,\n")
    assert main(["batch", str(manifest), "-o", str(library), "--format", "json", "--jobs", "1"]) == 1
    err = capsys.readouterr().err
    assert f"line 3 (anger.flac): {track}: is line 2's input {track}; refusing to write over it" in err
    assert "Traceback" not in err
    assert track.read_bytes() == before
    assert {r["line"]: r["status"] for r in _records(library)} == {2: "ok", 3: "failed"}
    # the other way round (the writer first), on the next run: the same
    manifest.write_text("audio,emotion_track\nanger.flac,\nvo/b.flac,anger.json\n")
    assert main(["batch", str(manifest), "-o", str(library), "--format", "json", "--jobs", "1"]) == 1
    assert track.read_bytes() == before
    assert {r["line"]: r["status"] for r in _records(library)} == {2: "failed", 3: "ok"}


def test_the_output_folders_own_report_as_the_manifest_is_refused(tmp_path, capsys):
    """The report's records are a manifest's lines (audio, output): given as the manifest for its own
    folder (to redo the failed lines), the run would rewrite it. Refused before any work; it stays."""
    manifest, out = tmp_path / "lines.csv", tmp_path / "out"
    manifest.write_text("audio,output\nmissing.wav,a.csv\n")
    assert main(["batch", str(manifest), "-o", str(out)]) == 1
    report = (out / REPORT).read_bytes()
    capsys.readouterr()
    (tmp_path / "link.jsonl").symlink_to(out / REPORT)
    for given in (out / REPORT, tmp_path / "link.jsonl"):
        assert main(["batch", str(given), "-o", str(out)]) == 1
        err = capsys.readouterr().err.splitlines()
        assert "is the report of" in err[-1] and "Traceback" not in "".join(err)
        assert (out / REPORT).read_bytes() == report
    assert sorted(p.name for p in out.iterdir()) == [REPORT]


def test_a_line_refused_for_its_output_keeps_its_record_in_the_final_report(library):
    """The summary says to see the report: a line refused before any work for what its output would
    write over is there at the end (it was dropped when the report was rewritten in manifest order)."""
    manifest = library / "lines.csv"
    manifest.write_text("audio,output,format\nmissing.wav,missing.wav,csv\nvo/a.wav,vo/a.wav,csv\n")
    assert main(["batch", str(manifest), "-o", str(library), "--jobs", "1"]) == 1
    records = _records(library)
    assert [(r["line"], r["status"]) for r in records] == [(2, "failed"), (3, "failed")]
    assert "refusing to write over it" in records[1]["error"]


def test_a_folder_filled_by_two_manifests_keeps_both_records_and_a_rerun_of_either_skips(library, tmp_path, capsys):
    """A dialogue library done a chapter at a time into one folder: the second run's rewrite kept only its
    own lines' records, so a re-run of the first chapter redid every line. Records of outputs the
    manifest does not name are kept while their files are there."""
    first = _manifest(library, ["vo/b.flac,,,,b.csv,"]).rename(library / "first.csv")
    second = _manifest(library, ["vo/a.wav,,,,a.csv,", "vo/b.flac,,,,c.csv,"])
    out = tmp_path / "out"
    for manifest in (first, second):
        assert main(["batch", str(manifest), "-o", str(out), "--jobs", "1"]) == 0
    assert sorted(r["output"] for r in _records(out)) == ["a.csv", "b.csv", "c.csv"]
    capsys.readouterr()
    assert main(["batch", str(first), "-o", str(out), "--jobs", "1"]) == 0
    assert "1 line: 0 done, 0 failed, 1 skipped" in capsys.readouterr().out
    assert [r["output"] for r in _records(out)] == ["b.csv", "a.csv", "c.csv"]  # its own lines first
    (out / "a.csv").unlink()
    with open(out / REPORT, "a") as f:  # a record edited by hand, its output a name no file can have
        f.write(json.dumps({"output": "x" * 300, "status": "ok"}) + "\n")
    assert main(["batch", str(first), "-o", str(out), "--jobs", "1"]) == 0
    assert [r["output"] for r in _records(out)] == ["b.csv", "c.csv"]  # an output gone takes its record


def test_a_transcript_in_a_json_line_has_the_limit_of_a_transcript_file(tmp_path):
    """`text_file` is read up to 1 MB; `text` in a JSON line had no limit (20 MB took 1.6 GB and half a
    minute, a 200 MB line would take all memory): over 1 MB its line fails, before any work."""
    manifest = tmp_path / "lines.jsonl"
    rows = [{"audio": "a.wav", "output": "a.csv", "text": "word " * 250_000},
            {"audio": "a.wav", "output": "b.csv", "text": "word " * 200_000}]  # fmt: skip
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    big, fine = read_manifest(manifest)
    assert big.error == "text is larger than 1 MB; not a transcript talkface reads"
    assert fine.error is None


def test_an_absolute_audio_path_in_the_library_keeps_its_folders_in_the_default_output(tmp_path, monkeypatch):
    """A generated manifest names its audio by absolute path: `en/g01.wav` and `fr/g01.wav` were both
    written to `g01.csv` (the second line failed as a clash); like relative paths, they keep their folders,
    whether the manifest itself is named by an absolute or a relative path. Audio outside the manifest's
    folder still goes by its name alone."""
    manifest = tmp_path / "lib" / "lines.csv"
    manifest.parent.mkdir()
    manifest.write_text(f"audio\n{manifest.parent / 'en' / 'g01.wav'}\n{manifest.parent / 'fr' / 'g01.wav'}\n"
                        "/elsewhere/x.wav\n")  # fmt: skip
    monkeypatch.chdir(tmp_path)
    for named in (manifest, Path("lib/lines.csv")):
        assert [(line.output, line.error) for line in read_manifest(named)] == [
            ("en/g01.csv", None), ("fr/g01.csv", None), ("x.csv", None)]  # fmt: skip


def test_a_report_beyond_the_manifests_limit_is_read_not_refused(library, tmp_path, capsys):
    """A million lines' report (260 bytes a record) is over 256 MB: read whole, it was refused as too large
    and no re-run could start. It is read a line at a time; what is not a record in it is passed over."""
    manifest, out = _manifest(library, ["vo/b.flac,,,,b.csv,"]), tmp_path / "out"
    assert main(["batch", str(manifest), "-o", str(out), "--jobs", "1"]) == 0
    record = (out / REPORT).read_bytes()
    with open(out / REPORT, "r+b") as f:  # (sparse: 257 MB of NULs in no time, then the record again)
        f.truncate(257 << 20)
        f.seek(0, os.SEEK_END)
        f.write(b"\n" + record)
    capsys.readouterr()
    assert main(["batch", str(manifest), "-o", str(out), "--jobs", "1"]) == 0
    assert "1 line: 0 done, 0 failed, 1 skipped" in capsys.readouterr().out
    assert (out / REPORT).read_bytes() == record


def test_a_failed_line_is_one_line_on_stderr_whatever_its_cells_hold(tmp_path, capsys):
    """An audio name with a line break (JSON Lines takes one) printed as two lines, the second one made up
    by the manifest ("line 99 ... ok"); it is escaped, as the CLI's own errors are."""
    manifest = tmp_path / "lines.jsonl"
    manifest.write_text(json.dumps({"audio": "missing\nline 99 (x.wav): fake.wav", "output": "n.csv"}) + "\n")
    assert main(["batch", str(manifest), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith("line 1 (missing\\nline 99 (x.wav): fake.wav): "), err
    assert err[1].startswith("talkface: error: 1 of 1 lines failed")


def test_an_empty_output_folder_name_is_a_usage_error_not_the_current_folder(tmp_path, capsys, monkeypatch):
    """`-o "$OUT"` with OUT unset wrote every line and the report into the current folder."""
    manifest = tmp_path / "lines.csv"
    manifest.write_text("audio,output\nmissing.wav,a.csv\n")
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["batch", str(manifest), "-o", ""]) == 2
    assert "an empty name is none" in capsys.readouterr().err
    assert list(here.iterdir()) == []


@pytest.mark.parametrize("jobs", [-1, 0, 2.5, "2", True])
def test_a_worker_count_that_is_not_one_or_more_is_refused_before_any_work(tmp_path, jobs):
    """`jobs=-1` (joblib's "every core") or 2.5 never equalled the pool's size, so the pool started a
    process, each loading the model, for every line of the manifest at once."""
    from talkface.errors import TalkfaceError

    manifest = tmp_path / "lines.csv"
    manifest.write_text("audio,output\nmissing.wav,a.csv\n")
    with pytest.raises(TalkfaceError, match="jobs must be a whole number of worker processes, at least 1"):
        next(run(manifest, tmp_path / "out", jobs=jobs))
    assert not (tmp_path / "out").exists()


def test_a_ray_address_where_nothing_listens_is_an_error_in_seconds(tmp_path):
    """`--ray HOST:PORT` with no cluster there: `ray.init` waited for one for ever (a warning every 40 s),
    deaf to Ctrl-C and SIGTERM; now one line and exit 1, before anything is started."""
    pytest.importorskip("ray", reason="the batch extra (ray) is not installed")
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # a port of ours that nobody listens on
    port = closed.getsockname()[1]
    manifest = tmp_path / "lines.csv"
    manifest.write_text("audio,output\nmissing.wav,a.csv\n")
    command = [*TALKFACE, "batch", str(manifest), "-o", str(tmp_path / "out"), "--ray", f"127.0.0.1:{port}"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail("talkface batch --ray with nothing at the address did not end in 60 s")
    finally:
        closed.close()
    assert process.returncode == 1
    assert err.startswith(f"talkface: error: cannot use the Ray cluster at 127.0.0.1:{port}: nothing answers there")
    assert len(err.strip().splitlines()) == 1, err


def test_more_workers_than_four_a_core_is_a_usage_error(tmp_path, capsys):
    """`--jobs 1000` (a typo, or a cluster's count on a laptop) started a process, each holding the model, for
    every line up to that many; as `serve --workers`, at most 4 a CPU core, refused before any work."""
    manifest = tmp_path / "lines.csv"
    manifest.write_text("audio,output\nmissing.wav,a.csv\n")
    too_many = 4 * len(os.sched_getaffinity(0)) + 1
    assert main(["batch", str(manifest), "-o", str(tmp_path / "out"), "--jobs", str(too_many)]) == 2
    assert f"--jobs {too_many}: at most {too_many - 1} (4 per CPU core here)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
