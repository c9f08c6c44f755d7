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
    assert "1 lines: 1 done, 0 failed, 0 skipped" in capsys.readouterr().out
    assert (out / "a.csv.json").is_file()
