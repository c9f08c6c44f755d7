"""The real-speech evaluation set: reading a manifest split by split, `talkface evaluate --set`, and
the builder's rules (no network: a tiny manifest over the bundled ARCTIC clip stands in for the set)."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ARCTIC_TRANSCRIPT, DATA
from test_cli import assert_one_line_error, run

from talkface.align import read_htk_labels
from talkface.errors import TalkfaceError
from talkface.evaluation import read_set
from talkface.phonemes import phones_tsv

ROOT = Path(__file__).parent.parent


def _builder():
    spec = importlib.util.spec_from_file_location("real_speech_builder", ROOT / "scripts" / "real_speech.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """Three rows over the ARCTIC clip: two sources in validation, one in test."""
    (tmp_path / "wav").mkdir()
    (tmp_path / "phones").mkdir()
    (tmp_path / "wav" / "a.wav").write_bytes((DATA / "arctic_a0009.wav").read_bytes())
    (tmp_path / "phones" / "a.tsv").write_text(phones_tsv(read_htk_labels(DATA / "arctic_a0009_phone.lab")))
    rows = [
        {"id": "tel/a", "source": "telephone", "speaker": "s1", "split": "validation"},
        {"id": "studio/a", "source": "studio", "speaker": "s2", "split": "validation"},
        {"id": "held/a", "source": "held", "speaker": "s3", "split": "test"},
    ]
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(r | {"wav": "wav/a.wav", "phones": "phones/a.tsv"}) + "\n" for r in rows))
    return path


def test_read_set_keeps_one_split_with_its_sources(manifest):
    validation = read_set(manifest, "validation")
    assert [(c.name, c.source) for c in validation] == [("tel/a", "telephone"), ("studio/a", "studio")]
    assert [c.name for c in read_set(manifest, "test")] == ["held/a"]
    clip = validation[0]
    assert clip.audio.size == pytest.approx(3.1 * 16000, rel=0.05)
    assert clip.reference == read_htk_labels(DATA / "arctic_a0009_phone.lab")


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("{not json", ":4: not a clip line"),
        ('{"id": "x", "source": "s", "split": "test", "wav": "wav/a.wav"}', ":4: not a clip line"),
        ('{"id": "x", "source": "s", "split": "train", "wav": "wav/a.wav", "phones": "p.tsv"}', "unknown split"),
        ('{"id": "x", "source": "s", "split": "test", "wav": "wav/a.wav", "phones": "none.tsv"}', "no such phone"),
        ('{"id": "x", "source": "s", "split": "test", "wav": "none.wav", "phones": "phones/a.tsv"}', "no such audio"),
        ('{"id": "x", "source": "s", "split": "test", "wav": 5, "phones": null}', ":4: not a clip line"),
        ('{"id": "x", "source": ["s"], "split": "test", "wav": "wav/a.wav", "phones": "p.tsv"}', ":4: not a clip"),
        ("[" * 100_000, ":4: not a clip line"),
        ('{"id": ' + "1" * 5000 + "}", ":4: not a clip line"),  # (past Python's 4300 digits)
        ('{"id": "x", "source": "s", "split": "test", "wav": "wav/a.wav", "phones": "bad.tsv"}', "bad.tsv:3: not"),
        ('{"id": "x", "source": "s", "split": "test", "wav": "wav/a.wav", "phones": "nan.tsv"}', "nan.tsv:1: not"),
        ('{"id": "x", "source": "s", "split": "test", "wav": "wav/a.wav", "phones": "bin.tsv"}', "not UTF-8"),
        ('{"id": "x", "source": "s", "split": "test", "wav": "\\u0000", "phones": "phones/a.tsv"}', "hold a NUL"),
        ('{"id": "x", "source": "s", "split": "test", "wav": "wav/a.wav", "phones": "far.tsv"}', "far.tsv:1: not"),
    ],
)
def test_read_set_names_the_bad_line(manifest, line, fragment):
    """A bad line or phone table is one TalkfaceError naming it, never an internal error (a NUL in a name was a
    ValueError; far.tsv an OverflowError)."""
    folder = manifest.parent
    (folder / "bad.tsv").write_text("start_s\tend_s\tphone\n0.0\t0.1\tsil\n0.1\t0.2\tzzz\n")
    (folder / "nan.tsv").write_text("0.0\tnan\tsil\n")
    (folder / "bin.tsv").write_bytes(b"\xff\xfe\x00garbage")
    (folder / "far.tsv").write_text("0.0\t1e308\tsil\n")  # finite, but its midpoint overflowed the scoring
    manifest.write_text(manifest.read_text() + line + "\n")
    with pytest.raises(TalkfaceError, match=fragment):
        read_set(manifest, "test")


def test_read_set_refuses_unknown_or_empty_splits(manifest, tmp_path):
    with pytest.raises(TalkfaceError, match="unknown split 'train'"):
        read_set(manifest, "train")
    only_validation = tmp_path / "v.jsonl"
    only_validation.write_text(manifest.read_text().splitlines()[0] + "\n")
    with pytest.raises(TalkfaceError, match="no clips in the test split"):
        read_set(only_validation, "test")


def test_cli_evaluate_scores_a_split_per_source(manifest):
    result = run("evaluate", "--set", str(manifest), "--split", "validation")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "validation split" in lines[0] and "held-out" not in result.stdout
    for engine in ("neural", "phonetic"):
        assert any(line.startswith(engine) for line in lines)
        for source in ("telephone", "studio"):
            assert any(line.startswith(f"  {engine}") and source in line for line in lines)
    neural = next(line for line in lines if line.startswith("neural"))
    assert "(    4)" in neural  # the clip's two bilabials in each of the two validation rows, none from test
    assert "held (" not in result.stdout
    assert_one_line_error(run("evaluate", "", "--set", str(manifest)), "no such model")  # (was a ValueError)
    manifest.write_text("{broken\n")
    assert_one_line_error(run("evaluate", "--set", str(manifest)), "not a clip line")


def test_builder_reads_prompts_as_spoken_and_keeps_speakers_apart():
    builder = _builder()
    assert builder._asterisk_text("[ascending tones]") == ""
    assert builder._asterisk_text("press * to pause, # to exit, at [@]") == "press star to pause, pound to exit, at"
    rows = [{"speaker": "a", "split": "validation"}, {"speaker": "b", "split": "test"}]
    builder.check_disjoint(rows)
    with pytest.raises(TalkfaceError, match="more than one split: a"):
        builder.check_disjoint([*rows, {"speaker": "a", "split": "test"}])


def test_builder_reads_mfa_transcripts(tmp_path):
    builder = _builder()
    conftest = tmp_path / "conftest.py"
    conftest.write_text('import x\n\ndef reference_transcripts():\n    return {"mfa_um": "montreal forced um"}\n')
    assert builder._reference_transcripts(conftest) == {"mfa_um": "montreal forced um"}
    svg = tmp_path / "words.svg"
    svg.write_text(
        "<svg><text x='90.0' y='10.0' s='1'>there</text><text x='20.5' y='10.0'>the</text>"
        "<text x='95.0' y='10.0'>'s</text><text x='20.0' y='30.0'>ð</text></svg>"
    )
    assert builder._svg_words(svg) == "the there's"


def test_builder_leaves_out_a_transcript_that_does_not_fit_its_sound():
    """A reference is kept only where its transcript fits: the clip's own sentence does; another
    sentence does not, nor an alignment whose pause lies over sound as loud as the speech."""
    from talkface.align import align_transcript
    from talkface.audio import load_audio

    builder = _builder()
    audio = np.concatenate([np.zeros(8000, np.float32), load_audio(DATA / "arctic_a0009.wav")])
    phones, name = builder._align_first([("wav", audio)], ARCTIC_TRANSCRIPT)
    assert name == "wav" and [p.phone for p in phones if p.phone != "sil"][:3] == ["hh", "iy", "t"]
    assert phones[0].phone == "sil" and phones[0].end > 0.4
    phones, why = builder._align_first([("wav", audio)], "Seven silver swans swam south.")
    assert phones == [] and "words fit" in why
    talk_over_pause = audio.copy()
    talk_over_pause[:8000] = audio[24000:32000]  # speech the transcript does not hold
    result = align_transcript(audio, ARCTIC_TRANSCRIPT)
    assert builder._misfit(audio, result) is None
    assert builder._misfit(talk_over_pause, result).startswith("the pause at 0.00-")


def test_a_class_with_nothing_to_score_reads_as_a_dash_not_nan():
    from talkface.evaluation import _COLUMNS, report

    scores = {k: (float("nan"), 0) for k in _COLUMNS} | {"closed_on_bilabials": (0.5, 2)}
    table = report({"neural": scores | {"lag_frames": 0.0, "seconds": 60.0}})
    assert "nan" not in table and "50.0% (    2)" in table and "– (    0)" in table
