"""Distillation shards: audio labelled by the file model, for the live model.

The live (log-mel) model learnt only from synthetic voices, and hears real ones worse than the file
model, whose frozen speech encoder was trained on real speech. Distillation needs audio, not
labels: the file model's raw outputs on a recording (weights and viseme classes at 100 Hz, before
any post-processing) become the targets, and the recording's log-mel the input, in shards that
`talkface train` reads like a corpus's. `build_shards` makes them from recordings of real people;
with `narrowband` each recording is also kept as telephone audio (8 kHz and back) under the same
wideband labels, so the student learns to hear through the channel what the teacher heard without
it. `label_corpus` gives a synthetic corpus's audio the same kind of targets in place of the
synthesiser's, so that the student learns one teacher's way of hearing from all of its audio.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soxr

from ..audio import SAMPLE_RATE, load_audio, to_mono
from ..errors import TalkfaceError
from ..features import HOP, log_mel, num_frames
from ..files import atomic_path
from ..model import OFFLINE_MODEL, FaceModel, load_default
from .corpus import pcm_frames, write_shard

log = logging.getLogger(__name__)

#: Recordings shorter than this are left out (a word or less carries little timing).
MIN_SECONDS = 0.5


def label(audio: np.ndarray, teacher: FaceModel) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's raw weights [T, 52] and viseme classes [T] at 100 Hz for 16 kHz audio (T = its log-mel frames)."""
    from ..encoder import load_default as load_encoder

    n = num_frames(audio.size)
    weights, logits = teacher.run_features(load_encoder().features(audio))
    weights, visemes = weights[:n], np.argmax(logits[:n], axis=1).astype(np.int8)
    if len(weights) < n:  # the encoder's last frame can end a 10 ms frame early: hold it
        weights = np.concatenate([weights, np.repeat(weights[-1:], n - len(weights), 0)])
        visemes = np.concatenate([visemes, np.repeat(visemes[-1:], n - len(visemes))])
    return weights, visemes


def _narrowband(audio: np.ndarray) -> np.ndarray:
    return soxr.resample(soxr.resample(audio, SAMPLE_RATE, 8000), 8000, SAMPLE_RATE)[: audio.size]


def build_shards(
    recordings: Iterable[str | Path],
    out_dir: str | Path,
    *,
    narrowband: bool = True,
    teacher: FaceModel | None = None,
    emotion_dim: int = 10,
    shard_seconds: float = 300.0,
) -> list[Path]:
    """Write `train-NNNNN.npz` shards of teacher-labelled recordings (any format `load_audio` reads) to `out_dir`."""
    teacher = teacher or load_default(OFFLINE_MODEL)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    pending: list[dict[str, np.ndarray | str]] = []

    def flush() -> None:
        if pending:
            written.append(out / f"train-{len(written):05d}.npz")
            write_shard(written[-1], pending)
            pending.clear()

    seconds = 0.0
    for recording in recordings:
        try:
            audio = load_audio(recording)
        except TalkfaceError as e:  # one unreadable or empty file does not stop a build
            log.warning("left out: %s", e)
            continue
        if audio.size < MIN_SECONDS * SAMPLE_RATE:
            continue
        weights, visemes = label(audio, teacher)
        for heard, kind in [(audio, "wide"), *([(_narrowband(audio), "narrow")] if narrowband else [])]:
            n = len(weights)
            pending.append({"mel": log_mel(heard)[:n].astype(np.float16), "audio": pcm_frames(heard, n),
                            "targets": weights.astype(np.float16), "visemes": visemes,
                            "emotion": np.zeros(emotion_dim, np.float16),
                            "voice": f"{Path(recording).stem}:{kind}"})  # fmt: skip
            seconds += n / 100
        if seconds >= shard_seconds:
            flush()
            seconds = 0.0
    flush()
    if not written:
        raise TalkfaceError("no recordings long enough to distil from")
    return written


def label_corpus(corpus: str | Path, out_dir: str | Path, teacher: FaceModel | None = None) -> list[Path]:
    """Copy a corpus's shards (`talkface corpus`) to `out_dir` with the teacher's labels of each
    utterance's (augmented) audio in place of its targets; validation shards are copied unchanged,
    so that the run still reports the synthetic targets of the held-out voice. Returns the train shards."""
    teacher = teacher or load_default(OFFLINE_MODEL)
    src, out = Path(corpus), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(src.glob("train-*.npz")):
        with np.load(path) as shard:
            ends = np.cumsum(shard["lengths"])
            utterances: list[dict[str, np.ndarray | str]] = []
            for i, (start, end) in enumerate(zip(ends - shard["lengths"], ends, strict=True)):
                pcm = shard["audio"][start * HOP : end * HOP]
                weights, visemes = label(to_mono(pcm), teacher)  # one label per frame of the shard
                utterances.append({"mel": shard["mel"][start:end], "audio": pcm,
                                   "targets": weights.astype(np.float16), "visemes": visemes,
                                   "emotion": shard["emotion"][i], "voice": str(shard["voices"][i])})  # fmt: skip
        write_shard(out / path.name, utterances)
        written.append(out / path.name)
    for path in sorted(src.glob("val-*.npz")):
        with atomic_path(out / path.name) as tmp:
            shutil.copyfile(path, tmp)
    if not written:
        raise TalkfaceError(f"{src}: no train shards (train-*.npz) to label")
    return written
