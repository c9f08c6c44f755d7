"""Corpus → training → ONNX → runtime, on a tiny corpus, as `configs/quick.yaml` does it."""

import csv
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ARCTIC_TRANSCRIPT

pytest.importorskip("torch")

from talkface import Animation, Animator, TalkfaceError, load_audio
from talkface import model as runtime
from talkface.phonemes import VISEMES
from talkface.rig import ARKIT_NAMES
from talkface.train import augment
from talkface.train.corpus import CorpusConfig, build_corpus, read_sentences
from talkface.train.loop import TrainConfig, train
from talkface.tts import festival, flite

ROOT = Path(__file__).resolve().parents[1]
TEXT = (
    "The big brown bear ate plump berries by the pool. Maybe the map will show which way to go. "
    "Few of the violins survived the flood in the old museum. She pushed the boat out over the water. "
    "Please bring both bottles back before noon tomorrow. The wind moved the tall wheat in waves."
)
CONFIG = CorpusConfig(
    hours=20 / 3600, seed=3, shard_seconds=10, piper_share=0.0, english_share=1.0, flite_share=0.0, festival_share=0.0
)


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("text")
    (folder / "english.txt").write_text(TEXT)
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, text_dir) -> Path:
    return build_corpus(tmp_path_factory.mktemp("corpus"), text_dir, CONFIG, workers=1, progress=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus) -> Path:
    raw = yaml.safe_load((ROOT / "configs" / "quick.yaml").read_text())
    raw |= {"corpus": str(corpus), "out": str(tmp_path_factory.mktemp("run"))}
    path = tmp_path_factory.mktemp("cfg") / "quick.yaml"
    path.write_text(yaml.safe_dump(raw))
    return train(TrainConfig.load(path), progress=False)


def test_sentences_are_read_and_split(text_dir):
    sentences = read_sentences(text_dir, {})["en"]
    assert len(sentences) == 6 and all(s.endswith(".") for s in sentences)


def test_corpus_holds_aligned_features_targets_and_visemes(corpus):
    shards = sorted(corpus.glob("train-*.npz"))
    assert len(shards) == 2 and len(list(corpus.glob("val-*.npz"))) == 1
    data = np.load(shards[0])
    n = data["lengths"].sum()
    assert data["mel"].shape == (n, 80) and data["targets"].shape == (n, 52) and data["visemes"].shape == (n,)
    assert data["mel"].shape[0] >= 1000  # at least 10 s of audio per shard
    # lips are pressed on bilabial frames and the jaw is open on open vowels
    jaw, press = data["targets"][:, 17].astype(float), data["targets"][:, 35].astype(float)
    visemes = data["visemes"]
    assert press[visemes == VISEMES.index("PP")].mean() > 0.15 > press[visemes == VISEMES.index("aa")].mean()
    assert jaw[visemes == VISEMES.index("aa")].mean() > 0.3
    voices = {str(v) for v in data["voices"]}
    assert all(v.startswith("espeak:en") and "nyc" not in v for v in voices)
    held_out = {str(v) for v in np.load(corpus / "val-00000.npz")["voices"]}
    assert all("en-us-nyc" in v for v in held_out)


def test_corpus_speaks_with_flite_and_festival_voices(text_dir, tmp_path, monkeypatch, caplog):
    config = CorpusConfig(hours=20 / 3600, seed=6, shard_seconds=20, piper_share=0.0, english_share=1.0,
                          flite_share=0.5, festival_share=0.5)  # fmt: skip
    folder = build_corpus(tmp_path / "voices", text_dir, config, workers=1, progress=False)
    voices = {str(v).split(":")[0] for v in np.load(folder / "train-00000.npz")["voices"]}
    assert voices == {"flite", "festival"}
    assert all("en-us-nyc" in str(v) for v in np.load(folder / "val-00000.npz")["voices"])  # held out stays espeak
    # without the programs, their share goes to espeak-ng, with a warning
    monkeypatch.setattr(flite, "installed", lambda: False)
    monkeypatch.setattr(festival, "installed", lambda: False)
    folder = build_corpus(tmp_path / "without", text_dir, config, workers=1, progress=False)
    assert all(str(v).startswith("espeak:") for v in np.load(folder / "train-00000.npz")["voices"])
    assert "flite is not installed" in caplog.text and "festival is not installed" in caplog.text


def test_emotional_corpus_keeps_lips_right(text_dir, tmp_path):
    config = CorpusConfig(
        hours=10 / 3600, seed=5, shard_seconds=10, piper_share=0.0, english_share=1.0, emotion_share=1.0
    )
    folder = build_corpus(tmp_path / "emo", text_dir, config, workers=1, progress=False)
    data = np.load(folder / "train-00000.npz")
    emotion = data["emotion"].astype(float)
    assert emotion.shape[1] == 10 and (emotion.sum(axis=1) > 0.1).mean() >= 0.5  # most are emotional
    targets, visemes = data["targets"].astype(float), data["visemes"]
    upper = [ARKIT_NAMES.index(n) for n in ("browInnerUp", "browDownLeft", "cheekSquintLeft", "mouthSmileLeft")]
    assert targets[:, upper].max() > 0.2  # the face shows the emotions
    mouth_close, jaw = targets[:, ARKIT_NAMES.index("mouthClose")], targets[:, ARKIT_NAMES.index("jawOpen")]
    pp = visemes == VISEMES.index("PP")
    assert (mouth_close[pp] >= jaw[pp] - 0.05).mean() > 0.8  # lips still meet on /p b m/


def test_whispered_corpus_speaks_without_voice_and_keeps_the_targets(text_dir, tmp_path):
    config = CorpusConfig(hours=10 / 3600, seed=5, shard_seconds=10, piper_share=0.0, english_share=1.0,
                          whisper_share=1.0)  # fmt: skip
    data = np.load(build_corpus(tmp_path / "whisper", text_dir, config, workers=1, progress=False) / "train-00000.npz")
    assert {str(v).rsplit("+", 1)[-1] for v in data["voices"]} <= {"whisper", "whisperf"}
    # no voicing: the audio's autocorrelation has no peak at a pitch period (2.5–12 ms)
    audio = data["audio"].astype(float)
    frame = audio[np.argmax(np.convolve(audio**2, np.ones(640), "valid")) :][:640]
    ac = np.correlate(frame, frame, "full")[639:]
    assert ac[40:192].max() < 0.5 * ac[0]
    press, visemes = data["targets"][:, ARKIT_NAMES.index("mouthPressLeft")].astype(float), data["visemes"]
    assert press[visemes == VISEMES.index("PP")].mean() > 0.15 > press[visemes == VISEMES.index("aa")].mean()


def test_corpus_is_deterministic_and_resumes(corpus, text_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(corpus, copy)
    (copy / "train-00001.npz").unlink()
    build_corpus(copy, text_dir, CONFIG, workers=1, progress=False)  # rebuilds only the missing shard
    rebuilt, original = np.load(copy / "train-00001.npz"), np.load(corpus / "train-00001.npz")
    # the same utterances from the same voices; espeak-ng keeps some state between utterances,
    # so a rebuilt utterance may differ from the first build by a frame or two
    np.testing.assert_array_equal(rebuilt["voices"], original["voices"])
    np.testing.assert_allclose(rebuilt["lengths"], original["lengths"], atol=3)


def test_corpus_refuses_other_settings_in_the_same_folder(corpus, text_dir):
    with pytest.raises(TalkfaceError, match=r"other settings \(hours .* there, 1 asked; seed 3 there, 4 asked"):
        build_corpus(corpus, text_dir, CorpusConfig(hours=1, seed=4), workers=1, progress=False)


def _hold_lock(folder: Path) -> int:
    """Lock `folder` as a running build or training run does (an exclusive flock); the descriptor to close."""
    import fcntl
    import os

    fd = os.open(folder, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_a_second_corpus_build_in_a_folder_is_refused_while_one_runs(corpus, text_dir, tmp_path):
    """Two builds at once, with other settings, both passed the settings check before either wrote its
    manifest and replaced each other's shards; a build in a folder another holds is refused, at once."""
    import os

    copy = tmp_path / "copy"
    shutil.copytree(corpus, copy)
    (copy / "train-00001.npz").unlink()
    fd = _hold_lock(copy)
    try:
        with pytest.raises(TalkfaceError, match="another talkface corpus is being built in this folder"):
            build_corpus(copy, text_dir, CONFIG, workers=1, progress=False)
    finally:
        os.close(fd)
    assert not (copy / "train-00001.npz").exists()


def test_a_resumed_corpus_clears_what_a_killed_build_left(corpus, text_dir, tmp_path):
    """A build killed mid-write leaves a shard's (or the manifest's) temporary file; the next clears it,
    and nobody else's."""
    copy = tmp_path / "copy"
    shutil.copytree(corpus, copy)
    debris = [".train-00001.npz.0123abcd.part.npz", ".manifest.json.0123abcd.part.json"]
    others = [".notes.txt.0123abcd.part.txt"]
    for name in debris + others:
        (copy / name).write_bytes(b"half a shard")
    build_corpus(copy, text_dir, CONFIG, workers=1, progress=False)
    assert sorted(p.name for p in copy.iterdir() if p.name.startswith(".")) == others


def test_a_second_training_run_in_a_run_folder_is_refused_while_one_runs(corpus, tmp_path):
    """Two runs in one folder both ran, writing their rows into one log.csv; the second is refused, at once."""
    import os

    out = tmp_path / "run"
    out.mkdir()
    fd = _hold_lock(out)
    try:
        with pytest.raises(TalkfaceError, match="another talkface train is writing to this run folder"):
            train(TrainConfig(corpus=str(corpus), out=str(out), steps=2), progress=False)
    finally:
        os.close(fd)
    assert list(out.iterdir()) == []


def test_a_corpus_from_before_the_newer_settings_resumes(corpus, text_dir, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(corpus, old)
    manifest = json.loads((old / "manifest.json").read_text())
    for key in ("emotion_share", "flite_share", "festival_share", "whisper_share"):  # what an early build wrote
        assert manifest["config"].pop(key) == 0.0
    (old / "manifest.json").write_text(json.dumps(manifest))
    (old / "train-00001.npz").unlink()
    build_corpus(old, text_dir, CONFIG, workers=1, progress=False)
    assert (old / "train-00001.npz").exists()


@pytest.mark.parametrize("step", [f for f, _ in augment.CHAIN])
def test_augmentations_keep_length_and_are_seeded(step):
    audio = load_audio(ROOT / "tests" / "data" / "arctic_a0009.wav")
    a = step(audio, np.random.default_rng(7))
    b = step(audio, np.random.default_rng(7))
    assert a.shape == audio.shape and np.isfinite(a).all() and np.abs(a).max() <= 1.0 + 1e-6
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, audio)


def test_training_learns_and_exports(trained):
    rows = list(csv.DictReader((trained.parent / "log.csv").read_text().splitlines()))
    assert int(rows[-1]["step"]) == 60
    assert float(rows[-1]["loss"]) < 0.6 * float(rows[0]["loss"])
    validated = [r for r in rows if r["real_closed"]]  # real speech scored at each validation
    assert [int(r["step"]) for r in validated] == [30, 60]
    assert all(0.0 <= float(r["real_closed"]) <= 1.0 and 0.0 <= float(r["real_open"]) <= 1.0 for r in validated)
    meta = json.loads(trained.with_suffix(".json").read_text())
    assert meta["lookahead"] * 10 <= 100  # ms of look-ahead
    assert trained.stat().st_size < 5_000_000


def test_resume_goes_on_from_the_checkpoint(trained, corpus, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained.parent, run)
    raw = yaml.safe_load((ROOT / "configs" / "quick.yaml").read_text())
    path = tmp_path / "longer.yaml"
    path.write_text(yaml.safe_dump(raw | {"corpus": str(corpus), "out": str(run), "steps": 80}))
    train(TrainConfig.load(path), resume=True, progress=False)
    steps = [int(r["step"]) for r in csv.DictReader((run / "log.csv").read_text().splitlines())]
    assert steps == [10, 20, 30, 40, 50, 60, 70, 80]  # picked up at 60, not from the start


def test_a_run_can_start_from_a_checkpoint_on_several_corpora(trained, corpus, tmp_path):
    import torch

    raw = yaml.safe_load((ROOT / "configs" / "quick.yaml").read_text())
    init = trained.parent / "checkpoint.pt"
    raw |= {"corpus": [str(corpus), str(corpus)], "out": str(tmp_path / "run"), "steps": 2, "lr": 1e-9,
            "init": str(init)}  # fmt: skip
    path = tmp_path / "init.yaml"
    path.write_text(yaml.safe_dump(raw))
    model = train(TrainConfig.load(path), progress=False)
    start, end = torch.load(init, weights_only=True)["model"], torch.load(model.parent / "checkpoint.pt")["model"]
    assert all(torch.allclose(start[k], end[k], atol=1e-5) for k in start)  # the weights it was given
    once = json.loads(trained.with_suffix(".json").read_text())["train_seconds_of_audio"]
    assert json.loads(model.with_suffix(".json").read_text())["train_seconds_of_audio"] == pytest.approx(2 * once)


def test_a_run_can_start_from_an_exported_model(trained, corpus, tmp_path):
    """Fine-tuning starts from an .onnx (the packaged model, or any exported one) as from a checkpoint."""
    import torch

    raw = yaml.safe_load((ROOT / "configs" / "quick.yaml").read_text())
    raw |= {"corpus": str(corpus), "out": str(tmp_path / "run"), "steps": 2, "lr": 1e-9, "init": str(trained)}
    path = tmp_path / "init.yaml"
    path.write_text(yaml.safe_dump(raw))
    model = train(TrainConfig.load(path), progress=False)
    start = torch.load(trained.parent / "checkpoint.pt", weights_only=True)["model"]
    end = torch.load(model.parent / "checkpoint.pt")["model"]
    assert all(torch.allclose(start[k], end[k], atol=1e-5) for k in start)
    (tmp_path / "other.onnx").write_bytes(b"not a model")
    path.write_text(yaml.safe_dump(raw | {"init": str(tmp_path / "other.onnx")}))
    with pytest.raises(TalkfaceError, match="cannot read model"):
        train(TrainConfig.load(path), progress=False)


def test_distillation_shards_carry_the_file_models_closures(tmp_path):
    """Real recordings labelled by the file model: the live model's input (log-mel, also as telephone
    audio) and targets line up, and the teacher's /p b m/ class sits on the hand-labelled bilabials."""
    from talkface.align import read_htk_labels
    from talkface.train import dataset, distill

    sample = ROOT / "src" / "talkface" / "samples"
    (shard,) = distill.build_shards([sample / "arctic_a0009.wav"], tmp_path, shard_seconds=1)
    frames = dataset.Frames.load([shard])
    assert frames.lengths.tolist() == [frames.lengths[0]] * 2  # wideband and narrowband, one label track
    assert frames.mel.shape[0] == frames.targets.shape[0] == frames.visemes.shape[0] == frames.lengths.sum()
    wide, narrow = np.split(frames.mel.astype(np.float32), 2)
    assert np.abs(wide - narrow)[:, 60:].mean() > 1.0  # no energy above 4 kHz in the telephone copy
    visemes = frames.visemes[: frames.lengths[0]]
    bilabials = [p for p in read_htk_labels(sample / "arctic_a0009_phone.lab") if p.phone in ("p", "b", "m")]
    heard = [np.any(visemes[int(p.start * 100) : int(p.end * 100) + 1] == VISEMES.index("PP")) for p in bilabials]
    assert len(bilabials) == 2 and all(heard)
    jaw = ARKIT_NAMES.index("jawOpen")
    assert frames.targets[: frames.lengths[0], jaw].astype(np.float32).max() > 0.2  # the mouth opens


def test_a_labelled_corpus_keeps_its_audio_and_takes_the_file_models_targets(corpus, tmp_path):
    """`label_corpus`: the same audio and log-mel, the teacher's labels of that audio as targets, the
    validation shards untouched (they score the run against the synthetic targets)."""
    from talkface.audio import to_mono
    from talkface.features import HOP
    from talkface.train import distill
    from talkface.train.dataset import Frames

    shards = distill.label_corpus(corpus, tmp_path)
    assert [p.name for p in shards] == [p.name for p in sorted(corpus.glob("train-*.npz"))]
    before, after = Frames.load(sorted(corpus.glob("train-*.npz"))), Frames.load(shards)
    assert np.array_equal(before.mel, after.mel) and before.lengths.tolist() == after.lengths.tolist()
    assert not np.allclose(before.targets.astype(np.float32), after.targets.astype(np.float32), atol=0.01)
    with np.load(shards[0]) as shard:
        n = int(shard["lengths"][0])
        weights, visemes = distill.label(
            to_mono(shard["audio"][: n * HOP]), runtime.load_default(runtime.OFFLINE_MODEL)
        )
        assert np.allclose(shard["targets"][:n].astype(np.float32), weights[:n], atol=1e-3)
        assert np.array_equal(shard["visemes"][:n], visemes[:n])
    for val in corpus.glob("val-*.npz"):
        assert (tmp_path / val.name).read_bytes() == val.read_bytes()


def test_critical_visemes_weigh_more_in_the_viseme_loss():
    import torch

    from talkface.features import N_MELS
    from talkface.train.loop import _losses
    from talkface.train.net import FaceNet, NetConfig

    net = FaceNet(NetConfig(channels=8, dilations=(1,), lookahead=2))
    with torch.no_grad():  # a viseme head that hears an open vowel everywhere
        net.visemes.weight.zero_()
        net.visemes.bias.zero_()
        net.visemes.bias[VISEMES.index("aa")] = 3.0
    visemes = np.full((1, 20), VISEMES.index("aa"), np.int64)
    visemes[0, 5:10] = VISEMES.index("PP")  # a /p/ it misses
    batch = (np.zeros((1, 20, N_MELS), np.float32), np.zeros((1, 10), np.float32),
             np.zeros((1, 20, len(ARKIT_NAMES)), np.float32), visemes)  # fmt: skip

    def ce(weight: float) -> float:
        config = TrainConfig(corpus="c", out="o", critical_viseme_weight=weight)
        with torch.no_grad():
            return _losses(net, batch, torch.device("cpu"), config)["ce"].item()

    assert ce(3.0) > 1.5 * ce(1.0)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("corpus: x\nout: y\nstepz: 3\n", "unknown config keys: stepz"),
        ("hello\n", "a YAML mapping"),
        ("[1, 2]\n", "a YAML mapping"),
        ("corpus: x\nout: y\nsteps: .nan\n", "steps must be a whole number"),
        ("corpus: x\nout: y\nsteps: 1.5\n", "steps must be a whole number"),
        ("corpus: x\nout: y\nsteps: -5\n", "steps must be at least 1"),
        ("corpus: x\nout: y\nbatch: 0\n", "batch must be at least 1"),
        ("corpus: x\nout: y\nlr: .nan\n", "lr must be a finite number"),
        ("corpus: x\nout: y\ncrop: 50\nnet: {lookahead: 100}\n", "crop (50) must be longer"),
        ("corpus: x\nout: y\nnet: 5\n", "net must be a mapping"),
        ("corpus: x\nout: y\nnet: {channels: -8}\n", "channels must be at least 1"),
        ("corpus: x\nout: y\nnet: {dilations: 3}\n", "dilations must be whole numbers"),
        ("corpus: 5\nout: y\n", "corpus must be a list of folders"),
        ("corpus: x\nout: 7\n", "out must be text"),
        ("corpus: x\nout: y\ntakes: /tmp\n", "takes must be a list of folders"),
        ('corpus: x\nout: "r\\0un"\n', "out holds a NUL character"),  # (a ValueError from os.mkdir)
        ('corpus: x\nout: y\nvertex_caches: ["c\\0"]\n', "vertex_caches holds a NUL character"),
    ],
)
def test_bad_config_is_refused(tmp_path, text, fragment):
    """Each bad value is one clear line naming it, before any work (they ran to an exported model
    trained on nothing, or to an internal error)."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TalkfaceError, match=re.escape(fragment)):
        TrainConfig.load(path)
    path.write_bytes(b"\xff\xfe binary")
    with pytest.raises(TalkfaceError, match="cannot read config"):
        TrainConfig.load(path)


def test_a_checkpoint_exports_to_a_model_the_runtime_loads(trained, tmp_path):
    from talkface.train.export_onnx import export_checkpoint

    path = export_checkpoint(trained.parent / "checkpoint.pt", tmp_path / "mid.onnx")
    assert json.loads(path.with_suffix(".json").read_text())["trained_steps"] == 60
    face = runtime.FaceModel(path)
    mel = np.zeros((20 + face.lookahead, 80), np.float32)
    weights, visemes = face.run_features(mel)
    assert weights.shape == (20, 52) and visemes.shape == (20, len(VISEMES))


def test_animator_uses_the_model_without_a_transcript(trained):
    wav = ROOT / "tests" / "data" / "arctic_a0009.wav"
    anim = Animator(fps=25, model=str(trained)).animate(wav)
    assert anim.fps == 25 and anim.num_frames == 78 and anim.names[:52] == ARKIT_NAMES
    anim.validate()
    with_text = Animator(fps=25, model=str(trained)).animate(wav, text=ARCTIC_TRANSCRIPT)
    assert not np.allclose(with_text.weights, anim.weights)


def test_corrupt_or_mismatched_model_is_refused(trained, tmp_path):
    bad = tmp_path / "model.onnx"
    data = bytearray(trained.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    shutil.copy(trained.with_suffix(".json"), bad.with_suffix(".json"))
    with pytest.raises(TalkfaceError, match="checksum"):
        runtime.FaceModel(bad)
    bad.with_suffix(".json").unlink()
    with pytest.raises(TalkfaceError, match="no such model"):
        runtime.FaceModel(bad)


def write_pc2(path: Path, frames: np.ndarray, counts: tuple[int, int] | None = None) -> None:
    """A PointCache2 file of `frames`; `counts` (points, samples) stands in for the header's own."""
    points, samples = counts or (frames.shape[1], frames.shape[0])
    header = b"POINTCACHE2\0" + np.array([1, points], "<i4").tobytes()
    header += np.array([0.0, 1.0], "<f4").tobytes() + np.array([samples], "<i4").tobytes()
    path.write_bytes(header + frames.astype("<f4").tobytes())


def test_trains_on_live_link_takes_and_vertex_caches(corpus, tmp_path):
    from talkface import export
    from talkface.head import Head
    from talkface.train.dataset import read_pc2

    wav = ROOT / "tests" / "data" / "arctic_a0009.wav"
    anim = Animator(engine="phonetic").animate(wav, text=ARCTIC_TRANSCRIPT).with_channels(ARKIT_NAMES)
    takes, caches = tmp_path / "takes", tmp_path / "caches"
    takes.mkdir()
    caches.mkdir()
    export.write(anim, takes / "take1.csv")
    shutil.copy(wav, takes / "take1.wav")
    head = Head.load()
    frames = head.apply(anim.weights)  # (all of them: a cache as long as its audio)
    np.save(caches / "a.npy", frames)
    write_pc2(caches / "b.pc2", frames)
    for name in ("a.wav", "b.wav"):
        shutil.copy(wav, caches / name)
    np.testing.assert_allclose(read_pc2(caches / "b.pc2"), frames, atol=1e-6)
    (caches / "bad.pc2").write_bytes(b"POINTCACHE2\0" + b"\0" * 10)
    with pytest.raises(TalkfaceError, match="PointCache2"):
        read_pc2(caches / "bad.pc2")
    (caches / "bad.pc2").unlink()
    blendshapes = tmp_path / "shapes.npz"
    np.savez(blendshapes, neutral=head.vertices, shapes=head.targets, names=np.array(ARKIT_NAMES))
    raw = yaml.safe_load((ROOT / "configs" / "quick.yaml").read_text())
    raw |= {"corpus": str(corpus), "out": str(tmp_path / "run"), "steps": 10, "takes": [str(takes)],
            "vertex_caches": [str(caches)], "blendshapes": str(blendshapes)}  # fmt: skip
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(raw))
    model = train(TrainConfig.load(path), progress=False)
    seconds = json.loads(model.with_suffix(".json").read_text())["train_seconds_of_audio"]
    assert seconds > 20 + 3 * 3.0  # the corpus plus the take and the two caches


def test_a_take_or_vertex_cache_not_as_long_as_its_audio_is_refused(tmp_path):
    """A take cut short, another take's audio or a cache at another rate than vertex_cache_fps was trained on
    targets cut or stretched against the speech, and nothing said so. A few frames apart (the app starts audio
    and video at slightly different moments) are taken."""
    from talkface import export
    from talkface.head import Head
    from talkface.train.dataset import live_link_takes, vertex_caches

    wav = ROOT / "tests" / "data" / "arctic_a0009.wav"
    anim = Animator(engine="phonetic").animate(wav, text=ARCTIC_TRANSCRIPT).with_channels(ARKIT_NAMES)  # 93 at 30 fps
    shutil.copy(wav, tmp_path / "take.wav")
    export.write(Animation(anim.weights[:-3], anim.fps, anim.names), tmp_path / "take.csv")  # 0.1 s short
    assert live_link_takes(tmp_path)[0][1].num_frames == 90
    export.write(Animation(anim.weights[:63], anim.fps, anim.names), tmp_path / "take.csv")  # 1 s short
    with pytest.raises(TalkfaceError, match=r"take\.csv: 2\.10 s of animation .* take\.wav holds 3\.10 s of audio"):
        live_link_takes(tmp_path)
    for name in ("take.csv", "take.wav"):
        (tmp_path / name).unlink()
    head = Head.load()
    np.save(tmp_path / "a.npy", head.apply(anim.weights))
    shutil.copy(wav, tmp_path / "a.wav")
    np.savez(tmp_path / "shapes.npz", neutral=head.vertices, shapes=head.targets, names=np.array(ARKIT_NAMES))
    assert vertex_caches(tmp_path, tmp_path / "shapes.npz", 30.0)[0][1].duration == pytest.approx(3.1)
    with pytest.raises(TalkfaceError, match=r"a\.npy: 1\.55 s of animation \(93 frames at 60 fps\).*vertex_cache_fps"):
        vertex_caches(tmp_path, tmp_path / "shapes.npz", 60.0)


def test_a_take_missing_a_shape_or_in_other_units_is_refused(tmp_path):
    """A misspelt or absent shape column was read as 0, and a take scaled to 0..100 was clipped to 1: the model
    learnt a jaw that never opens, or every shape at full weight. The app's own variants read."""
    from talkface.export import livelink_csv
    from talkface.train.dataset import live_link_takes

    wav = ROOT / "tests" / "data" / "arctic_a0009.wav"
    anim = Animator(engine="phonetic").animate(wav, text=ARCTIC_TRANSCRIPT).with_channels(ARKIT_NAMES)
    shutil.copy(wav, tmp_path / "take.wav")
    # "BlendshapeCount", camelCase names, no head and eye columns, weights a little past 0..1: read, clipped later
    codes = livelink_csv.timecodes(0, anim.num_frames, anim.fps)
    values = anim.weights * 1.2 - 0.03
    rows = [",".join([code, "52", *(f"{v:.6f}" for v in w)]) for code, w in zip(codes, values, strict=True)]
    (tmp_path / "take.csv").write_text("\n".join([",".join(["Timecode", "BlendshapeCount", *ARKIT_NAMES]), *rows]))
    assert values.min() < 0 and values.max() > 1
    np.testing.assert_allclose(live_link_takes(tmp_path)[0][1].with_channels(ARKIT_NAMES).weights, values, atol=1e-5)
    (tmp_path / "take.csv").write_text(livelink_csv.csv_text(anim).replace("JawOpen", "JawOpne", 1))
    with pytest.raises(TalkfaceError, match=r"take\.csv: no column for jawOpen"):
        live_link_takes(tmp_path)
    (tmp_path / "take.csv").write_text(livelink_csv.csv_text(Animation(anim.weights * 100, anim.fps, anim.names)))
    with pytest.raises(TalkfaceError, match=r"take\.csv: shape weights from 0 to .*ARKit weights lie in 0\.\.1"):
        live_link_takes(tmp_path)


@pytest.mark.parametrize(
    ("name", "make", "fragment"),
    [
        ("a.npy", lambda p: np.save(p, np.array([1, None], object), allow_pickle=True), "Object arrays cannot"),
        ("a.npy", lambda p: p.write_bytes(b""), "not a readable .npy"),
        ("a.npy", lambda p: np.save(p, np.full((2, 3, 3), "x")), "vertex positions"),
        ("a.npy", lambda p: p.mkdir(), "is a folder"),
        ("a.npy", os.mkfifo, "not a readable .npy"),  # (waited for a writer for ever)
        ("a.pc2", os.mkfifo, "not a PointCache2"),
        ("a.pc2", lambda p: p.symlink_to("/dev/zero"), "is a device"),  # (read until memory ran out)
        ("a.pc2", lambda p: write_pc2(p, np.zeros((2, 1, 3)), counts=(-1, -2)), "truncated"),
        ("a.pc2", lambda p: write_pc2(p, np.zeros((2, 1, 3)), counts=(2**31 - 1, 2**31 - 1)), "truncated"),
    ],
)
def test_an_unreadable_vertex_cache_or_blendshape_set_is_one_error(tmp_path, name, make, fragment):
    """Each was a ValueError, EOFError or OSError (an internal error), a hang or all of memory; an object
    array is never unpickled."""
    from talkface.train.dataset import vertex_caches

    blendshapes = tmp_path / "shapes.npz"
    np.savez(blendshapes, neutral=np.zeros((3, 3)), shapes=np.ones((1, 3, 3)), names=np.array(["jawOpen"]))
    shutil.copy(ROOT / "tests" / "data" / "arctic_a0009.wav", tmp_path / "a.wav")
    make(tmp_path / name)
    with pytest.raises(TalkfaceError, match=fragment):
        vertex_caches(tmp_path, blendshapes, 30.0)


@pytest.mark.parametrize(
    "arrays", [{"neutral": np.zeros((3, 3)), "shapes": np.array([None], object)}, {"neutral": np.zeros((3, 3))}]
)
def test_a_blendshape_set_that_is_not_one_is_one_error(tmp_path, arrays):
    """An object array or a missing array was a ValueError or KeyError (an internal error)."""
    from talkface.train.dataset import vertex_caches

    np.save(tmp_path / "a.npy", np.zeros((2, 3, 3)))
    np.savez(tmp_path / "shapes.npz", **arrays)
    with pytest.raises(TalkfaceError, match=r"shapes.npz: not an \.npz of neutral, shapes and names"):
        vertex_caches(tmp_path, tmp_path / "shapes.npz", 30.0)
    with pytest.raises(TalkfaceError, match="cannot hold a NUL"):  # (a YAML "\0" in the path: a ValueError)
        vertex_caches(tmp_path, f"{tmp_path}/a\0.npz", 30.0)


def test_cli_corpus_train_evaluate(tmp_path, text_dir):
    """The commands a user runs, end to end on a tiny corpus, and their one-line errors."""
    from test_cli import assert_one_line_error, run

    corpus = tmp_path / "corpus"
    result = run("corpus", "--hours", "0.003", "--text", str(text_dir), "-o", str(corpus), "--workers", "1")
    assert result.returncode == 0, result.stderr
    raw = yaml.safe_load((ROOT / "configs" / "quick.yaml").read_text())
    config = tmp_path / "quick.yaml"
    config.write_text(yaml.safe_dump(raw | {"corpus": str(corpus), "out": str(tmp_path / "run"), "steps": 20}))
    result = run("train", "--config", str(config))
    assert result.returncode == 0, result.stderr
    model = tmp_path / "run" / "model.onnx"
    result = run("evaluate", str(model))
    assert result.returncode == 0, result.stderr
    assert "neural" in result.stdout and "phonetic" in result.stdout
    missing_text = run("corpus", "--hours", "1", "--text", str(tmp_path / "none"), "-o", str(tmp_path / "c2"))
    assert_one_line_error(missing_text, "no such text folder")
    assert_one_line_error(run("evaluate", str(tmp_path / "missing.onnx")), "no such model")
    config.write_text("corpus: x\nout: y\nsteps: many\n")
    assert_one_line_error(run("train", "--config", str(config)), "steps must be a whole number")


def test_a_head_over_the_speech_encoder_trains_exports_and_animates(corpus, tmp_path):
    """`front_end: speech-encoder`: features from the corpus's audio, cached; the exported head runs
    in the same runtime, as the packaged model for files does."""
    from talkface.train.export_onnx import export_checkpoint

    raw = yaml.safe_load((ROOT / "configs" / "quick.yaml").read_text())
    raw |= {"corpus": str(corpus), "out": str(tmp_path / "run"), "steps": 6, "eval_every": 6,
            "front_end": "speech-encoder", "net": {"channels": 16, "blocks": 1}}  # fmt: skip
    path = tmp_path / "encoder.yaml"
    path.write_text(yaml.safe_dump(raw))
    model = train(TrainConfig.load(path), progress=False)
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["input"] == "speech-encoder" and meta["lookahead"] == 0 and meta["receptive_field"] == 2
    assert len(list((corpus / "features").glob("train-*.npz"))) == 2  # encoded once, kept for the next run
    wav = ROOT / "tests" / "data" / "arctic_a0009.wav"
    anim = Animator(fps=25, model=str(model)).animate(wav)
    assert anim.num_frames == 78 and np.isfinite(anim.weights).all()
    again = export_checkpoint(model.parent / "checkpoint.pt", tmp_path / "mid.onnx")
    assert runtime.FaceModel(again).input == "speech-encoder"
    raw["front_end"] = "wav2vec"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(TalkfaceError, match="front_end"):
        TrainConfig.load(path)


@pytest.mark.parametrize("shapes", [((16, 1, 5), (24, 2, 3)), ((16, 0, 5), (24, 1, 1))])
def test_heads_averaged_into_one_model_give_the_mean_of_their_outputs(tmp_path, shapes):
    """`export_mean` (scripts/mean_heads.py): one ONNX file, written as one network, whose outputs are
    the mean of the heads' (weights and viseme logits) exactly in float32 and closely in int8, the
    form that ships; models that read other input are refused. Heads of other shapes (channels,
    blocks, kernels; the same reach) are averaged alike."""
    import torch

    from talkface.encoder import FEATURE_DIM
    from talkface.train.export_onnx import export, export_mean
    from talkface.train.net import EncoderFaceNet, EncoderNetConfig

    heads = []
    for seed, (channels, blocks, kernel) in enumerate(shapes, 1):
        config = EncoderNetConfig(channels, blocks, kernel)
        torch.manual_seed(seed)
        net = EncoderFaceNet(config, FEATURE_DIM)
        heads.append(export(net, tmp_path / f"head{seed}.onnx", {"seed": seed}))
    features = np.random.default_rng(0).normal(size=(40, FEATURE_DIM)).astype(np.float32)
    (wa, va), (wb, vb) = (runtime.FaceModel(h).run_features(features) for h in heads)
    assert not np.allclose(wa, wb)  # two different heads
    exact = export_mean(heads, tmp_path / "mean.onnx", int8=False)
    weights, visemes = runtime.FaceModel(exact).run_features(features)
    np.testing.assert_allclose(weights, (wa + wb) / 2, atol=1e-5)
    np.testing.assert_allclose(visemes, (va + vb) / 2, atol=1e-5)
    small = export_mean(heads, tmp_path / "int8.onnx")
    weights8, visemes8 = runtime.FaceModel(small).run_features(features)
    assert np.abs(weights8 - weights).max() < 0.05
    assert (visemes8.argmax(1) == visemes.argmax(1)).mean() >= 0.95
    assert small.stat().st_size < exact.stat().st_size / 2
    meta = json.loads(small.with_suffix(".json").read_text())
    assert [h["seed"] for h in meta["heads"]] == [1, 2] and "viseme_bias" not in meta
    assert meta["storage"].startswith("dynamic int8")
    with pytest.raises(ValueError, match="differ"):
        export_mean([heads[0], runtime.default_model_path()], tmp_path / "mixed.onnx")
    torn = tmp_path / "torn.onnx"
    torn.write_bytes(heads[1].read_bytes()[:1000])
    torn.with_suffix(".json").write_text(heads[1].with_suffix(".json").read_text())
    with pytest.raises(ValueError, match=r"torn\.onnx: not an ONNX file"):
        export_mean([heads[0], torn], tmp_path / "torn-mean.onnx")


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 a torn zip", None])
def test_a_shard_that_is_empty_torn_or_foreign_is_one_line(tmp_path, capsys, content):
    """An empty shard printed "aborted" with exit 130 (its EOFError read as Ctrl-D); a torn or foreign
    one was an internal error."""
    from talkface.cli import main

    (tmp_path / "c").mkdir()
    for name in ("train-00000.npz", "val-00000.npz"):
        if content is None:
            np.savez(tmp_path / "c" / name, something=np.zeros(3))  # an NPZ of other arrays
        else:
            (tmp_path / "c" / name).write_bytes(content)
    (tmp_path / "e.yaml").write_text(f"corpus: {tmp_path / 'c'}\nout: {tmp_path / 'r'}\nsteps: 1\n")
    assert main(["train", "--config", str(tmp_path / "e.yaml")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a readable corpus shard" in err[0], err


def test_corpus_texts_are_read_bounded(tmp_path, monkeypatch):
    """A device among the texts is refused, a pipe nobody writes to reads as empty (it hung), and a text
    or zip member past the limit is one line (a 1.4 MB zip of 1 GB of text took all memory)."""
    import os
    import zipfile

    from talkface.train import corpus

    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "good.txt").write_text("The quick brown fox jumps over the lazy dog. " * 3)
    os.mkfifo(tmp_path / "t" / "pipe.txt")
    assert read_sentences(tmp_path / "t", {})["en"]  # the pipe read as empty, not waited on
    monkeypatch.setattr(corpus, "TEXT_FILE_LIMIT", 1000)
    with zipfile.ZipFile(tmp_path / "t" / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.txt", "word " * 10_000)
    with pytest.raises(TalkfaceError, match=re.escape("bomb.zip: a.txt: over 0 MB of text")):
        read_sentences(tmp_path / "t", {})
    (tmp_path / "t" / "bomb.zip").unlink()
    (tmp_path / "t" / "zero.txt").symlink_to("/dev/zero")
    with pytest.raises(TalkfaceError, match="is a device, not a text file"):
        read_sentences(tmp_path / "t", {})


def test_corpus_workers_end_with_a_killed_run(tmp_path, text_dir):
    """Workers of a corpus run killed with SIGKILL went on, holding hundreds of MB, until killed by hand."""
    import os
    import signal
    import subprocess
    import sys
    import time

    code = (
        "import sys; from talkface.train.corpus import CorpusConfig, build_corpus;"
        "config = CorpusConfig(hours=0.05, seed=3, shard_seconds=10, piper_share=0.0, english_share=1.0,"
        " flite_share=0.0, festival_share=0.0);"
        "build_corpus(sys.argv[1], sys.argv[2], config, workers=2, progress=False)"
    )
    run = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "c"), str(text_dir)])
    children: list[str] = []
    deadline = time.monotonic() + 120
    while len(children) < 2 and run.poll() is None and time.monotonic() < deadline:
        children = Path(f"/proc/{run.pid}/task/{run.pid}/children").read_text().split()
        time.sleep(0.1)
    assert len(children) >= 2, "the run ended before its workers were seen"
    os.kill(run.pid, signal.SIGKILL)
    run.wait()

    def running(pid: str) -> bool:  # (an exited worker no one has reaped yet is a zombie: not running)
        try:
            return "(zombie)" not in Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 30
    while any(map(running, children)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [c for c in children if running(c)], "workers outlived their run"


def _tiny_config(tmp_path: Path, corpus: Path, name: str = "tiny", **values) -> Path:
    """A config of a few steps of a very small net on the test corpus, in `tmp_path/name.yaml`."""
    raw = {"corpus": str(corpus), "out": str(tmp_path / name), "steps": 2, "batch": 2, "crop": 50, "log_every": 1,
           "eval_every": 100, "net": {"channels": 4, "dilations": [1], "lookahead": 2}} | values  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _logged_steps(run: Path) -> list[int]:
    with open(run / "log.csv", newline="") as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


def test_a_resumed_run_logs_each_step_once(corpus, tmp_path):
    """A run stopped after its checkpoint had logged steps past it; resumed, it ran them again and
    log.csv held those steps twice."""
    train(TrainConfig.load(_tiny_config(tmp_path, corpus, steps=2)), progress=False)  # checkpoint at step 2
    run = tmp_path / "tiny"
    with open(run / "log.csv", "a", newline="") as f:  # what a run killed at step 3 of 4 had logged
        f.write("3,0.5,0.4,0.01,2.0,0.4,,,,,1.0\n")
    train(TrainConfig.load(_tiny_config(tmp_path, corpus, steps=4)), resume=True, progress=False)
    assert _logged_steps(run) == [1, 2, 3, 4]


def test_a_resumed_runs_seconds_go_on_from_the_checkpoints(corpus, tmp_path):
    """log.csv's `seconds` restarted from 0 on resume, so a plot of loss against time folded back."""
    train(TrainConfig.load(_tiny_config(tmp_path, corpus, steps=2)), progress=False)
    log = tmp_path / "tiny" / "log.csv"
    rows = log.read_text().splitlines()
    log.write_text("\n".join([*rows[:-1], rows[-1].rsplit(",", 1)[0] + ",5000"]) + "\n")  # as if it took long
    train(TrainConfig.load(_tiny_config(tmp_path, corpus, steps=4)), resume=True, progress=False)
    with open(log, newline="") as f:
        seconds = [float(row["seconds"]) for row in csv.DictReader(f)]
    assert seconds[1] == 5000 and all(s >= 5000 for s in seconds[2:]) and seconds[-1] > 5000  # (5 digits)


def test_validation_runs_at_eval_every_whatever_log_every(corpus, tmp_path):
    """Validation and its checkpoint came only at steps that were also multiples of log_every: with
    log_every 2 and eval_every 3, none until the last step."""
    train(TrainConfig.load(_tiny_config(tmp_path, corpus, steps=4, log_every=2, eval_every=3)), progress=False)
    with open(tmp_path / "tiny" / "log.csv", newline="") as f:
        validated = [int(row["step"]) for row in csv.DictReader(f) if row["val_loss"]]
    assert validated == [3, 4]


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"device": "tpu"}, "device 'tpu' cannot be used"),
        ({"seed": 2**80}, "seed must be at most"),
        ({"batch": 10**9}, "batch must be at most 4096"),
        ({"crop": 10**9}, "crop must be at most 60000"),
        ({"net": {"channels": 10**6, "dilations": [1], "lookahead": 2}}, "channels must be at most 4096"),
        ({"net": {"channels": 4, "dilations": [1, 10**9], "lookahead": 2}}, "dilations must be at most 4096"),
    ],
)
def test_a_device_seed_or_size_torch_cannot_take_is_refused(corpus, tmp_path, values, fragment):
    """They ran into an internal error (torch's RuntimeError, an overflow, memory) once the corpus was read."""
    with pytest.raises(TalkfaceError, match=re.escape(fragment)):
        TrainConfig.load(_tiny_config(tmp_path, corpus, **values))


def test_numbers_in_exponent_form_are_numbers(corpus, tmp_path):
    """PyYAML reads `1e-3` (no point) as text: `lr: 1e-3` was refused as not a number."""
    path = _tiny_config(tmp_path, corpus)
    path.write_text(path.read_text() + "lr: 1e-3\nweight_decay: 5E-5\n")
    config = TrainConfig.load(path)
    assert (config.lr, config.weight_decay) == (1e-3, 5e-5)
    path.write_text(path.read_text() + "velocity_weight: 1e-3x\n")
    with pytest.raises(TalkfaceError, match="velocity_weight must be a finite number"):
        TrainConfig.load(path)


def test_an_emotion_dim_other_than_the_corpus_is_one_line(corpus, tmp_path):
    path = _tiny_config(tmp_path, corpus, net={"channels": 4, "dilations": [1], "lookahead": 2, "emotion_dim": 5})
    with pytest.raises(TalkfaceError, match="emotion vectors have 10 values, the net's emotion_dim is 5"):
        train(TrainConfig.load(path), progress=False)


def test_starting_from_what_is_not_a_checkpoint_of_the_network_is_one_line(corpus, tmp_path):
    """`init:` or `--resume` from a file that is not a checkpoint, or one of another net, was an
    internal error (torch's unpickling or state-dict error); a named pipe waited for ever."""
    import os

    train(TrainConfig.load(_tiny_config(tmp_path, corpus, name="small")), progress=False)
    checkpoint = tmp_path / "small" / "checkpoint.pt"
    pipe = tmp_path / "pipe.pt"
    os.mkfifo(pipe)
    bigger = {"channels": 8, "dilations": [1], "lookahead": 2}
    for init, fragment in [(tmp_path / "small.yaml", "not a talkface training checkpoint"),
                           (pipe, "pipe.pt: not a talkface training checkpoint"),
                           (checkpoint, "a checkpoint of another network")]:  # fmt: skip
        config = TrainConfig.load(_tiny_config(tmp_path, corpus, init=str(init), net=bigger))
        with pytest.raises(TalkfaceError, match=fragment):
            train(config, progress=False)
    with pytest.raises(TalkfaceError, match="a checkpoint of another network"):
        train(TrainConfig.load(_tiny_config(tmp_path, corpus, name="small", net=bigger)), resume=True, progress=False)
    checkpoint.write_bytes(checkpoint.read_bytes()[:5000])
    with pytest.raises(TalkfaceError, match="not a talkface training checkpoint"):
        train(TrainConfig.load(_tiny_config(tmp_path, corpus, name="small")), resume=True, progress=False)


def test_corpus_hours_past_any_corpus_are_refused():
    """`--hours 1e9` planned 12 billion shards before any work, growing by GBs without end."""
    from test_cli import assert_one_line_error, run

    assert_one_line_error(run("corpus", "--hours", "1e9", "--text", "t", "-o", "c"), "--hours")
