"""Export formats: Live Link Face CSV, JSON, NPZ round trips, atomic writes and Rhubarb mouth cues."""

import csv
import io
import json
import os
import resource
import subprocess
import sys
import tracemalloc
import xml.etree.ElementTree as ET
import zipfile
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from talkface import export
from talkface.animation import Animation
from talkface.errors import TalkfaceError
from talkface.export import livelink_csv, rhubarb
from talkface.phonemes import TARGETS
from talkface.rig import ARKIT_NAMES, LIVE_LINK_HEADER, POSE_NAMES


def random_anim(frames: int = 45, fps: float = 30.0, names=ARKIT_NAMES) -> Animation:
    rng = np.random.default_rng(0)
    return Animation(rng.random((frames, len(names)), dtype=np.float32), fps, names)


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".part" in p.name]


# --- Live Link Face CSV ---


def test_csv_round_trip_recovers_weights_and_fps(tmp_path):
    anim = random_anim()
    assert export.write(anim, tmp_path / "a.csv") == "csv"
    back = export.read(tmp_path / "a.csv")
    assert back.fps == 30.0 and back.names == (*ARKIT_NAMES, *POSE_NAMES)
    np.testing.assert_allclose(back.with_channels(ARKIT_NAMES).weights, anim.weights, atol=1e-5)
    np.testing.assert_array_equal(back.with_channels(POSE_NAMES).weights, 0)


def test_a_long_csv_written_in_blocks_is_one_even_table(tmp_path):
    """Long animations are written a block of frames at a time: no seam, no frame lost or doubled."""
    anim = random_anim(frames=4501)
    path = tmp_path / "long.csv"
    export.write(anim, path)
    rows = list(csv.reader(path.open()))
    assert path.read_text() == export.text(anim, "csv") and len(rows) == 4502
    assert [r[0] for r in rows[2000:2003]] == [livelink_csv.timecode(i, 30) for i in range(1999, 2002)]
    back = export.read(path)
    np.testing.assert_allclose(back.with_channels(ARKIT_NAMES).weights, anim.weights, atol=1e-6)


def test_csv_text_is_each_value_printed_to_six_decimals():
    """The CSV is built as bytes a block at a time; it must read exactly as printing each value would."""
    rng = np.random.default_rng(3)
    values = rng.uniform(-2, 2, (500, len(ARKIT_NAMES)))
    values[:50] = np.round(values[:50], 6) + rng.choice([-5e-7, 5e-7, -4e-7, 0.0], (50, len(ARKIT_NAMES)))
    values[60, :3] = [-0.0, 9.9999996, -9.9999994]  # the sign of zero, a carry into the units
    values[70, 0] = 12.5  # two digits: that block is printed value by value
    anim = Animation(values.astype(np.float32), 30.0)
    text = "".join(livelink_csv.csv_chunks(anim, rows=64))
    rows = np.round(anim.with_channels(livelink_csv.LIVE_LINK_ORDER).weights.astype(np.float64), 6) + 0.0
    line = ",".join(["%.6f"] * rows.shape[1])
    expected = [f"{livelink_csv.timecode(i, 30)},61," + line % tuple(r) for i, r in enumerate(rows.tolist())]
    assert text.splitlines()[1:] == expected
    hundred_hours = 100 * 3600 * 30  # timecodes widen there: that block is printed row by row
    assert livelink_csv._block_text(values[:2], hundred_hours - 1, 30.0, "61") is None
    assert livelink_csv.timecode(hundred_hours, 30) == "100:00:00:00.000"


def test_csv_header_is_live_link_face(tmp_path):
    export.write(random_anim(3), tmp_path / "a.csv")
    with open(tmp_path / "a.csv", newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    assert tuple(header) == LIVE_LINK_HEADER and len(header) == 63
    assert header[:4] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft", "EyeLookDownLeft"]
    assert header[-9:] == [
        "HeadYaw", "HeadPitch", "HeadRoll",
        "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
        "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
    ]  # fmt: skip
    assert header.index("JawRight") < header.index("JawLeft")
    assert header.index("MouthRight") < header.index("MouthLeft")
    assert header[header.index("TongueOut") + 1] == "HeadYaw"
    assert all(len(r) == 63 and r[1] == "61" for r in rows[1:])
    assert all(len(v.split(".")[1]) == 6 for v in rows[1][2:])  # 6 decimals


def test_csv_values_are_in_live_link_order(tmp_path):
    anim = Animation.zeros(1, 30)
    anim.weights[0, anim.index("jawLeft")] = 0.25
    anim.weights[0, anim.index("jawOpen")] = 0.5
    export.write(anim, tmp_path / "a.csv")
    with open(tmp_path / "a.csv", newline="") as f:
        header, row = list(csv.reader(f))
    assert row[header.index("JawLeft")] == "0.250000" and row[header.index("JawOpen")] == "0.500000"
    assert row[header.index("JawRight")] == "0.000000"


def test_csv_timecodes():
    assert livelink_csv.timecode(0, 30) == "00:00:00:00.000"
    assert livelink_csv.timecode(29, 30) == "00:00:00:29.000"
    assert livelink_csv.timecode(31, 30) == "00:00:01:01.000"  # second 1, frame 1
    assert livelink_csv.timecode(65, 60) == "00:00:01:05.000"
    assert livelink_csv.timecode(30 * 3661 + 7, 30) == "01:01:01:07.000"
    # a fractional rate counts frames at the whole rate above it, with a sub-frame fraction
    assert livelink_csv.timecode(30, 29.97) == "00:00:01:00.030"


def test_csv_timecode_of_frame_31_in_the_file(tmp_path):
    export.write(random_anim(40), tmp_path / "a.csv")
    with open(tmp_path / "a.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[1 + 31][0] == "00:00:01:01.000"


def test_csv_keeps_head_and_eye_angles(tmp_path):
    names = (*ARKIT_NAMES, *POSE_NAMES)
    anim = random_anim(90, 60.0, names)
    anim.weights[:, names.index("headYaw")] = np.linspace(-0.5, 0.5, 90)
    export.write(anim, tmp_path / "a.csv")
    back = export.read(tmp_path / "a.csv")
    assert back.fps == 60.0 and back.names == names
    np.testing.assert_allclose(back.weights, anim.weights, atol=1e-5)
    with open(tmp_path / "a.csv", newline="") as f:
        header, first, *_ = list(csv.reader(f))
    assert first[header.index("HeadYaw")] == "-0.500000"


def test_csv_fractional_fps_round_trip(tmp_path):
    anim = random_anim(100, 29.97)
    export.write(anim, tmp_path / "a.csv")
    back = export.read(tmp_path / "a.csv")
    assert back.num_frames == 100 and back.fps == pytest.approx(29.97, rel=1e-5)


def test_csv_under_a_second_needs_fps(tmp_path):
    anim = random_anim(10)
    export.write(anim, tmp_path / "a.csv")
    with pytest.raises(TalkfaceError, match="pass fps"):
        export.read(tmp_path / "a.csv")
    back = export.read(tmp_path / "a.csv", fps=30)
    np.testing.assert_allclose(back.with_channels(ARKIT_NAMES).weights, anim.weights, atol=1e-5)


def test_an_empty_csv_reads_back_as_no_frames_at_a_given_fps(tmp_path):
    """A 0-frame CSV (the header only: `talkface stream` of a very short file writes one) was an IndexError,
    an internal error of `talkface view`: without timecodes its rate is unknown, as with fewer than a second's."""
    export.write(Animation.zeros(0, 30), tmp_path / "a.csv")
    with pytest.raises(TalkfaceError, match="pass fps"):
        export.read(tmp_path / "a.csv")
    assert export.read(tmp_path / "a.csv", fps=30).num_frames == 0


def test_rhubarb_xml_is_well_formed_whatever_the_sound_files_name():
    """A file name may hold characters XML cannot (a control character, an undecodable byte's surrogate):
    `animate 'a\\x01.wav' -o cues.xml` wrote XML that no parser reads, and exited 0."""
    name = 'a\x01b\x1f<&>"\udcff\ufffe\nc.wav'
    root = ET.fromstring(export.text(random_anim(10), "rhubarb-xml", sound_file=name).encode("utf-8", "surrogatepass"))
    assert root.find("metadata/soundFile").text == 'a\ufffdb\ufffd<&>"\ufffd\ufffd\nc.wav'


def test_csv_from_the_app_with_dropped_frames_is_resampled(tmp_path):
    """A capture at 60 fps stamped with 30 fps timecode (sub-frame .500), one frame missing."""
    header = ",".join(LIVE_LINK_HEADER)
    rows, jaw = [], []
    for k in range(130):
        if k == 50:
            continue  # dropped
        s, half = divmod(k, 60)
        code = f"14:03:{52 + s:02d}:{half // 2:02d}.{500 if half % 2 else 0:03d}"
        values = ["0"] * 61
        values[LIVE_LINK_HEADER.index("JawOpen") - 2] = str(k / 130)
        jaw.append(k / 130)
        rows.append(f"{code},61," + ",".join(values))
    (tmp_path / "take.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    back = export.read(tmp_path / "take.csv")
    assert back.fps == 60.0 and back.num_frames == 130
    np.testing.assert_allclose(back["jawOpen"], np.arange(130) / 130, atol=1e-6)


def test_csv_of_a_take_past_midnight_reads_and_a_repeated_timecode_names_its_line(tmp_path):
    """The app stamps rows with the time of day, which starts again at 00:00:00: a take recorded across
    midnight was refused ("timecodes do not increase"), without saying which row."""
    codes = [f"23:59:59:{f:02d}.000" for f in range(30, 60)] + [f"00:00:00:{f:02d}.000" for f in range(30)]
    rows = "".join(f"{code},61,{k / 60}\n" for k, code in enumerate(codes))
    (tmp_path / "take.csv").write_text("Timecode,BlendShapeCount,JawOpen\n" + rows)
    back = export.read(tmp_path / "take.csv")
    assert back.fps == 60.0 and back.num_frames == 60
    np.testing.assert_allclose(back["jawOpen"], np.arange(60) / 60, atol=1e-6)
    codes.insert(40, codes[39])  # a repeated row: line 42 (the header is line 1)
    rows = "".join(f"{code},61,0.5\n" for code in codes)
    (tmp_path / "take.csv").write_text("Timecode,BlendShapeCount,JawOpen\n" + rows)
    with pytest.raises(TalkfaceError, match="line 42: timecodes do not increase"):
        export.read(tmp_path / "take.csv")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("a,b\n1,2\n", "Timecode"),
        ("Timecode,BlendShapeCount\n00:00:00:00.000,61\n", "no ARKit"),
        ("Timecode,BlendShapeCount,JawOpen\n00:00:00:00.000,61\n", "columns"),
        ("Timecode,BlendShapeCount,JawOpen\n00:00:00:00.000,61,wide\n", "not a number"),
        ("Timecode,BlendShapeCount,JawOpen\nnoon,61,0.1\n00:00:01:00.000,61,0.2\n", "bad timecode"),
        ("Timecode,BlendShapeCount,JawOpen\n00:00:01:00.000,61,0.1\n00:00:00:00.000,61,0.2\n", "increase"),
    ],
)
def test_csv_malformed(tmp_path, text, fragment):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(TalkfaceError, match=fragment):
        export.read(tmp_path / "bad.csv")


@pytest.mark.parametrize(
    "code",
    ["1" + "0" * 400 + ":00:00:00.000", "00:00:00:" + "9" * 400],
)
def test_csv_timecode_of_hundreds_of_digits_is_a_bad_timecode(tmp_path, code):
    """An hour or frame field of 400 digits was an OverflowError (an internal error), not a bad timecode."""
    (tmp_path / "a.csv").write_text(f"Timecode,BlendShapeCount,JawOpen\n{code},61,0.1\n00:00:01:00.000,61,0.2\n")
    with pytest.raises(TalkfaceError, match="bad timecode"):
        export.read(tmp_path / "a.csv")


def test_csv_whose_timecodes_jump_by_years_is_refused_before_resampling(tmp_path):
    """A 160-byte take whose last row jumps 999 999 hours was resampled as if frames had dropped: an
    even grid of billions of frames (it asked for tens of gigabytes). It is refused in one line."""
    rows = ["00:00:00:00.000", "00:00:00:01.000", "00:00:00:02.000", "00:00:01:00.000", "999999:00:00:00.000"]
    (tmp_path / "a.csv").write_text("Timecode,BlendShapeCount,JawOpen\n" + "".join(f"{r},61,0.5\n" for r in rows))
    with pytest.raises(TalkfaceError, match="more than talkface reads"):
        export.read(tmp_path / "a.csv")


@pytest.mark.parametrize("kind", ["zero", "pipe", "huge_int"])
def test_a_csvs_sidecar_that_is_no_sidecar_is_passed_over(tmp_path, kind):
    """The frame rate a CSV's sidecar keeps is read from a file, not from /dev/zero (memory filled) nor from a
    named pipe no one writes to (read waited forever): the rate then comes from the timecodes. Run in a
    process of its own, with a memory limit and a timeout, as the old reader filled memory or hung."""
    export.write(random_anim(45, 30.0), tmp_path / "a.csv")
    side = tmp_path / "a.csv.json"
    if kind == "zero":
        side.symlink_to("/dev/zero")
    elif kind == "pipe":
        os.mkfifo(side)
    else:
        side.write_text('{"fps": 1' + "0" * 400 + "}")
    script = "import sys; from talkface import export; a = export.read(sys.argv[1]); print(a.num_frames, a.fps)"
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "a.csv")],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)),
    )
    assert result.returncode == 0 and result.stdout.split() == ["45", "30.0"], result.stderr


# --- JSON and NPZ ---


def test_json_round_trip(tmp_path):
    anim = random_anim(names=(*ARKIT_NAMES, "headYaw"))
    assert export.write(anim, tmp_path / "a.json") == "json"
    data = json.loads((tmp_path / "a.json").read_text())
    assert data["fps"] == 30.0 and data["names"] == list(anim.names) and len(data["frames"]) == 45
    back = export.read(tmp_path / "a.json")
    assert back.fps == anim.fps and back.names == anim.names
    np.testing.assert_allclose(back.weights, anim.weights, atol=1e-6)


def test_npz_round_trip_is_exact(tmp_path):
    anim = random_anim(fps=24.0)
    assert export.write(anim, tmp_path / "a.npz") == "npz"
    with np.load(tmp_path / "a.npz") as data:
        assert data["weights"].dtype == np.float32 and float(data["fps"]) == 24.0
        assert list(data["names"]) == list(ARKIT_NAMES)
    back = export.read(tmp_path / "a.npz")
    assert back.fps == 24.0 and back.names == anim.names
    np.testing.assert_array_equal(back.weights, anim.weights)


def test_npz_under_another_extension_keeps_its_name(tmp_path):
    export.write(random_anim(), tmp_path / "a.bin", "npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


@pytest.mark.parametrize("ext", ["json", "npz"])
def test_empty_animation_round_trip(tmp_path, ext):
    export.write(Animation.zeros(0, 30), tmp_path / f"a.{ext}")
    back = export.read(tmp_path / f"a.{ext}")
    assert back.num_frames == 0 and back.names == ARKIT_NAMES


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("a.json", "{not json"),
        ("a.json", '{"fps": 30, "names": ["jawOpen"]}'),
        ("a.json", '{"fps": 30, "names": ["jawOpen"], "frames": [[0.1], [0.2, 0.3]]}'),
        ("a.json", '{"fps": "fast", "names": ["jawOpen"], "frames": [[0.1]]}'),
        ("a.json", '{"fps": 0, "names": ["jawOpen"], "frames": [[0.1]]}'),
        ("a.json", '{"fps": 30, "names": ["jawOpen"], "frames": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        ("a.npz", "not a zip file"),
    ],
)
def test_json_and_npz_malformed(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    with pytest.raises(TalkfaceError):
        export.read(tmp_path / name)


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [
        ({"weights": np.full((2, 1), np.nan, np.float32)}, "not finite numbers"),
        ({"weights": np.array([["a"]])}, "2-D array of real numbers"),
        ({"weights": np.zeros((2, 1), np.complex64)}, "2-D array of real numbers"),
        ({"weights": np.zeros((2, 1), np.float32), "fps": np.array("x")}, "bad fps"),
        ({"weights": np.zeros((100, 61), np.float32)}, "100 frames of 61 weights: more than talkface reads"),
    ],
)
def test_npz_animations_are_checked_before_and_after_loading(tmp_path, monkeypatch, arrays, fragment):
    """Read from the array's header first: a few KB of zeros may hold gigabytes (a limit of 1000 values
    here stands for the real one, 64 million)."""
    monkeypatch.setattr(export.npz, "MAX_VALUES", 1000)
    np.savez_compressed(tmp_path / "a.npz", **{"fps": np.float64(30), "names": np.array(["jawOpen"]), **arrays})
    with pytest.raises(TalkfaceError, match=fragment):
        export.read(tmp_path / "a.npz")


def test_npz_names_and_fps_are_checked_from_their_headers_before_loading(tmp_path):
    """Only the weights' header was checked: a names array claiming a billion entries (4 GB) behind a few
    KB of file was allocated and read before it was refused; the three arrays' headers are read first."""
    with zipfile.ZipFile(tmp_path / "a.npz", "w") as archive:
        for name, array in (("weights", np.zeros((2, 1), np.float32)), ("fps", np.float64(30))):
            buffer = io.BytesIO()
            np.save(buffer, array)
            archive.writestr(f"{name}.npy", buffer.getvalue())
        buffer = io.BytesIO()
        np.lib.format.write_array_header_1_0(buffer, {"descr": "<U1", "fortran_order": False, "shape": (10**9,)})
        archive.writestr("names.npy", buffer.getvalue() + bytes(4096))  # the header, then a little of its data
    tracemalloc.start()
    try:
        with pytest.raises(TalkfaceError, match="bad fps or names"):
            export.read(tmp_path / "a.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20


def test_npz_of_members_that_are_no_arrays_is_one_clear_error(tmp_path):
    """Members named "weights", "fps" and "names" without ".npy" are listed as arrays by NumPy but are raw
    bytes: a KeyError and an AttributeError escaped as internal errors."""
    with zipfile.ZipFile(tmp_path / "a.npz", "w") as archive:
        for name in ("weights", "fps", "names"):
            archive.writestr(name, "30")
    with pytest.raises(TalkfaceError, match=r"not a \.npy array"):
        export.read(tmp_path / "a.npz")


@pytest.mark.parametrize(
    "text",
    [
        '{"fps": 1' + "0" * 400 + ', "names": ["jawOpen"], "frames": [[0.5]]}',
        '{"fps": 30, "names": ["jawOpen"], "frames": [[1' + "0" * 400 + "]]}",
    ],
)
def test_json_integers_of_hundreds_of_digits_are_one_clear_error(tmp_path, text):
    """JSON's integers have no size: an fps or a weight of 401 digits was an OverflowError (internal error)."""
    (tmp_path / "a.json").write_text(text)
    with pytest.raises(TalkfaceError, match=r"digits|not finite"):
        export.read(tmp_path / "a.json")


def test_json_and_csv_weights_must_be_finite(tmp_path):
    (tmp_path / "a.json").write_text('{"fps": 30, "names": ["jawOpen"], "frames": [[NaN], [1e39]]}')
    with pytest.raises(TalkfaceError, match="not finite numbers"):
        export.read(tmp_path / "a.json")


def test_read_refuses_missing_and_unreadable_formats(tmp_path):
    with pytest.raises(TalkfaceError, match="no such file"):
        export.read(tmp_path / "missing.csv")
    (tmp_path / "cues.tsv").write_text("0.00\tX\n")
    with pytest.raises(TalkfaceError, match="can only read"):
        export.read(tmp_path / "cues.tsv")


# --- choosing the format ---


def test_format_for():
    assert export.format_for("out/a.csv") == "csv"
    assert export.format_for("A.JSON") == "json"
    assert export.format_for("a.npz") == "npz"
    assert export.format_for("a.tsv") == "rhubarb-tsv"
    assert export.format_for("a.json", "rhubarb-json") == "rhubarb-json"
    assert export.format_for("a.anything", "npz") == "npz"
    assert set(export.FORMATS) == {
        "csv", "json", "npz", "rhubarb-tsv", "rhubarb-json", "rhubarb-xml", "rhubarb-dat", "glb", "gltf-anim", "usd",
    }  # fmt: skip
    assert export.format_for("talk.glb") == "glb" and export.format_for("talk.usda") == "usd"


@pytest.mark.parametrize("name", ["face.out", "face"])
def test_usd_named_without_a_usd_extension_is_refused_before_writing(tmp_path, name):
    """USD picks a file's encoding by its extension, to save it and to open it: `--format usd -o face.out`
    was an internal error from USD after the work; now one line before it, and nothing written."""
    with pytest.raises(TalkfaceError, match=r"name it \.usda, \.usdc or \.usd"):
        export.write(random_anim(), tmp_path / name, "usd")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("path", "fmt"), [("a.txt", None), ("noext", None), ("a.csv", "fbx")])
def test_format_for_unknown_lists_the_choices(path, fmt):
    with pytest.raises(TalkfaceError, match="rhubarb-dat"):
        export.format_for(path, fmt)


def test_write_refuses_non_finite_values(tmp_path):
    anim = random_anim()
    anim.weights[3, 5] = np.nan
    with pytest.raises(TalkfaceError, match="non-finite"):
        export.write(anim, tmp_path / "a.csv")
    assert not list(tmp_path.iterdir())


# --- atomic writes ---


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_unwritable_path_raises_and_leaves_nothing(tmp_path, fmt):
    (tmp_path / "file.txt").write_text("a file, not a folder")
    with pytest.raises(TalkfaceError, match="cannot write"):
        export.write(random_anim(), tmp_path / "file.txt" / f"out{export.SUFFIXES[fmt]}", fmt)
    assert no_temp_files(tmp_path) and (tmp_path / "file.txt").read_text() == "a file, not a folder"


def test_failed_text_write_keeps_the_old_file(tmp_path, monkeypatch):
    good = tmp_path / "a.csv"
    good.write_text("previous good output")

    class DiskFull(io.StringIO):
        """A file that takes the first piece written to it, then finds the disk full."""

        def writelines(self, pieces):
            self.write(next(iter(pieces))[:100])
            raise OSError(28, "No space left on device")

    real_open = open
    monkeypatch.setattr("talkface.files.open", lambda path, *a, **k: (real_open(path, "w").close(), DiskFull())[1],
                        raising=False)  # fmt: skip
    with pytest.raises(TalkfaceError, match="No space left"):
        export.write(random_anim(), good)
    monkeypatch.undo()
    assert good.read_text() == "previous good output" and no_temp_files(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_failed_npz_write_keeps_the_old_file(tmp_path, monkeypatch):
    good = tmp_path / "a.npz"
    export.write(random_anim(fps=24.0), good)
    before = good.read_bytes()

    def crash(file, **arrays):
        file.write(b"PK half an archive")
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(np, "savez_compressed", crash)
    with pytest.raises(TalkfaceError, match="Input/output error"):
        export.write(random_anim(fps=60.0), good)
    monkeypatch.undo()
    assert good.read_bytes() == before and export.read(good).fps == 24.0 and no_temp_files(tmp_path)


def test_a_name_as_long_as_the_file_system_allows_is_written(tmp_path):
    """The temporary file beside it has a shorter name, so any name the file system takes can be written."""
    for name in ("a" * 251 + ".csv", "é" * 125 + ".json"):  # 255 bytes each
        export.write(random_anim(), tmp_path / name)
        assert export.read(tmp_path / name).num_frames == 45
    assert no_temp_files(tmp_path) and len(list(tmp_path.iterdir())) == 2


# --- Rhubarb mouth cues ---

EXPECTED_SHAPE = {
    **dict.fromkeys(["p", "b", "m"], "A"),
    **dict.fromkeys(["f", "v"], "G"),
    **dict.fromkeys(["uw", "ow", "w"], "F"),
    "aa": "D",
    **dict.fromkeys(["ae", "eh"], "C"),
    **dict.fromkeys(["iy", "t", "d", "s", "k"], "B"),
    **dict.fromkeys(["ao", "er"], "E"),
    "sil": "X",
}


def pose_anim(*sections: tuple[str, int], fps: float = 25.0) -> Animation:
    """Hold each phone's target pose for a number of frames."""
    return Animation(np.concatenate([np.tile(TARGETS[p], (n, 1)) for p, n in sections]), fps)


@pytest.mark.parametrize("phone", sorted(TARGETS))
def test_every_phone_target_classifies_as_rhubarb_would(phone):
    shape = rhubarb.mouth_shapes(pose_anim((phone, 1)))[0]
    assert shape in rhubarb.SHAPES
    if phone in EXPECTED_SHAPE:
        assert shape == EXPECTED_SHAPE[phone]
    elif phone == "l":
        assert shape in "HB"


def test_shapes_ignore_extra_and_missing_channels():
    anim = pose_anim(("aa", 1), ("p", 1))
    with_head = anim.with_channels((*ARKIT_NAMES, "headYaw"))
    assert rhubarb.mouth_shapes(with_head) == ["D", "A"]
    mouth_only = anim.with_channels(("jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight"))
    assert rhubarb.mouth_shapes(mouth_only) == ["D", "X"]


def test_tongue_out_with_an_open_mouth_is_h():
    anim = pose_anim(("eh", 1))
    anim.weights[0, anim.index("tongueOut")] = 0.6
    assert rhubarb.mouth_shapes(anim) == ["H"]


def test_closed_open_rounded_rest_gives_a_d_f_x_cues():
    anim = pose_anim(("p", 10), ("aa", 10), ("uw", 10), ("sil", 10))  # 0.4 s each at 25 fps
    cues = rhubarb.mouth_cues(anim)
    assert [shape for _, _, shape in cues] == ["A", "D", "F", "X"]
    assert [t for start, end, _ in cues for t in (start, end)] == pytest.approx(
        [0.0, 0.4, 0.4, 0.8, 0.8, 1.2, 1.2, 1.6]
    )


def test_cues_shorter_than_the_grid_merge_into_neighbours():
    anim = pose_anim(("aa", 12), ("m", 1), ("aa", 12), ("uw", 5), ("sil", 10), fps=100.0)
    assert [c[2] for c in rhubarb.mouth_cues(anim)] == ["D", "A", "D", "F", "X"]  # centiseconds
    on_24 = rhubarb.mouth_cues(anim, 24)
    assert [c[2] for c in on_24] == ["D", "F", "X"]  # the 10 ms closure is shorter than 1/24 s
    starts = [round(s * 24, 9) for s, _, _ in on_24]
    assert all(s == int(s) for s in starts) and on_24[-1][1] == pytest.approx(anim.duration, abs=1 / 48)
    assert all(a[1] == b[0] for a, b in pairwise(on_24))


def rhubarb_outputs(tmp_path: Path, anim: Animation) -> dict[str, str]:
    out = {}
    for fmt in rhubarb.FORMATS:
        path = tmp_path / f"cues.{fmt}"
        assert export.write(anim, path, fmt, sound_file=r"C:\voice & <take>.wav") == fmt
        out[fmt] = path.read_text()
    return out


def test_rhubarb_formats_parse_and_cover_the_duration(tmp_path):
    anim = pose_anim(("sil", 5), ("p", 10), ("aa", 10), ("uw", 10), ("f", 6), ("sil", 9), fps=30.0)
    duration = round(anim.duration, 2)  # 50 frames: 1.67 s
    expected = ["X", "A", "D", "F", "G", "X"]
    out = rhubarb_outputs(tmp_path, anim)

    tsv = [line.split("\t") for line in out["rhubarb-tsv"].splitlines()]
    assert tsv[0] == ["0.00", "X"] and tsv[-1] == [f"{duration:.2f}", "X"]
    assert [shape for _, shape in tsv[:-1]] == expected
    times = [float(t) for t, _ in tsv]
    assert times == sorted(times) and all(len(t.split(".")[1]) == 2 for t, _ in tsv)

    data = json.loads(out["rhubarb-json"])
    assert data["metadata"] == {"soundFile": r"C:\voice & <take>.wav", "duration": duration}
    cues = data["mouthCues"]
    assert [c["value"] for c in cues] == expected
    assert cues[0]["start"] == 0 and cues[-1]["end"] == duration
    assert all(a["end"] == b["start"] for a, b in pairwise(cues))
    assert cues[1] == {"start": 0.17, "end": 0.5, "value": "A"}

    root = ET.fromstring(out["rhubarb-xml"].encode())
    assert root.tag == "rhubarbResult"
    assert root.findtext("metadata/soundFile") == r"C:\voice & <take>.wav"
    assert float(root.findtext("metadata/duration")) == duration
    xml_cues = [(float(c.get("start")), float(c.get("end")), c.text) for c in root.iter("mouthCue")]
    assert xml_cues == [(c["start"], c["end"], c["value"]) for c in cues]

    dat = out["rhubarb-dat"].splitlines()
    assert dat[0] == "MohoSwitch1"
    frames = [(int(f), s) for f, s in (line.split(" ") for line in dat[1:])]
    assert frames[0] == (1, "X") and [s for _, s in frames[:-1]] == expected
    assert frames[-1] == (anim.num_frames + 1, "X")  # the animation's 30 fps timeline, counted from 1
    assert [f for f, _ in frames] == sorted({f for f, _ in frames})


def test_rhubarb_dat_frame_rate(tmp_path):
    anim = pose_anim(("p", 10), ("aa", 10), fps=25.0)
    export.write(anim, tmp_path / "a.dat")
    assert (tmp_path / "a.dat").read_text() == "MohoSwitch1\n1 A\n11 D\n21 X\n"  # the animation's own rate
    export.write(anim, tmp_path / "a.dat", dat_fps=100)
    assert (tmp_path / "a.dat").read_text() == "MohoSwitch1\n1 A\n41 D\n81 X\n"
    with pytest.raises(TalkfaceError, match="dat frame rate"):
        export.write(anim, tmp_path / "b.dat", dat_fps=0)


def test_rhubarb_of_an_empty_animation(tmp_path):
    out = rhubarb_outputs(tmp_path, Animation.zeros(0, 30))
    assert out["rhubarb-tsv"] == "0.00\tX\n"
    assert json.loads(out["rhubarb-json"])["mouthCues"] == []
    assert ET.fromstring(out["rhubarb-xml"].encode()).find("mouthCues") is not None
    assert out["rhubarb-dat"] == "MohoSwitch1\n1 X\n"


@pytest.mark.parametrize("ext", [".csv", ".json", ".npz", ".glb"])
def test_a_bytes_path_is_written_and_read_as_its_text(tmp_path, ext):
    """A bytes path (as os.listdir(b".") gives; load_audio takes one) was a TypeError from Path."""
    anim = random_anim(61)
    path = os.fsencode(tmp_path / f"take{ext}")
    export.write(anim, path, metadata={"engine": "tts"})
    assert (tmp_path / f"take{ext}").is_file()
    if ext != ".glb":
        np.testing.assert_allclose(export.read(path).with_channels(anim.names).weights, anim.weights, atol=1e-6)
    with pytest.raises(TalkfaceError, match="must be a str or os"):
        export.read(None)  # type: ignore[arg-type]


def test_json_with_a_byte_order_mark_reads(tmp_path):
    """Windows tools write one; the CSV reader skipped it, the JSON reader refused the file."""
    anim = random_anim()
    path = tmp_path / "a.json"
    path.write_text("\ufeff" + export.text(anim, "json"), encoding="utf-8")
    np.testing.assert_allclose(export.read(path).weights, anim.weights, atol=1e-6)


def test_metadata_of_numpy_values_is_written_and_other_values_refused_before_writing(tmp_path):
    """np.float32 in metadata, or a set, was json's TypeError (the sidecar's half-made temporary removed)."""
    export.write(random_anim(), tmp_path / "a.json", metadata={"score": np.float32(0.5), "spans": np.arange(2)})
    assert json.loads((tmp_path / "a.json").read_text())["metadata"] == {"score": 0.5, "spans": [0, 1]}
    with pytest.raises(TalkfaceError, match="metadata must be a mapping of JSON values"):
        export.write(random_anim(), tmp_path / "b.csv", metadata={"words": {"a", "b"}})
    assert not (tmp_path / "b.csv").exists() and no_temp_files(tmp_path)


@pytest.mark.parametrize("ext", [".glb", ".json", ".csv"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), np.float32("-inf")])
def test_metadata_that_is_no_json_number_is_refused_before_writing(tmp_path, ext, value):
    """NaN or infinity in metadata went out as the bare words NaN / Infinity: a glTF JSON chunk the Khronos
    validator calls INVALID_JSON, a JSON file or CSV sidecar that JavaScript's JSON.parse rejects."""
    with pytest.raises(TalkfaceError, match="metadata must be a mapping of JSON values"):
        export.write(random_anim(), tmp_path / f"a{ext}", metadata={"gain": {"peak": value}})
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "call",
    [
        lambda path: export.text(random_anim(), "rhubarb-dat", dat_fps="24"),  # (was a TypeError)
        lambda path: export.text(random_anim(), 3),  # (was an AttributeError)
        lambda path: export.read(path, fps="30"),  # (was a TypeError)
    ],
)
def test_options_of_the_wrong_type_are_talkface_errors(tmp_path, call):
    export.write(random_anim(), tmp_path / "a.csv")
    with pytest.raises(TalkfaceError):
        call(tmp_path / "a.csv")
