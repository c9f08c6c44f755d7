"""Training data in memory: corpus shards (or any frames × features/targets), random crops, feature augmentation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TalkfaceError
from ..features import N_MELS


@dataclass
class Frames:
    """Utterances as concatenated 100 Hz frames: features, targets, viseme classes, and per-utterance emotion."""

    mel: np.ndarray  # [N, N_MELS] float16
    targets: np.ndarray  # [N, 52] float16
    visemes: np.ndarray  # [N] int8
    emotion: np.ndarray  # [U, E] float16
    starts: np.ndarray  # [U] first frame of each utterance
    lengths: np.ndarray  # [U]

    @classmethod
    def load(cls, paths: list[Path]) -> Frames:
        """Concatenate corpus shards."""
        if not paths:
            raise TalkfaceError("no corpus shards found; build one with `talkface corpus`")
        parts = [np.load(p) for p in paths]
        lengths = np.concatenate([p["lengths"] for p in parts])
        return cls(
            mel=np.concatenate([p["mel"] for p in parts]),
            targets=np.concatenate([p["targets"] for p in parts]),
            visemes=np.concatenate([p["visemes"] for p in parts]),
            emotion=np.concatenate([p["emotion"] for p in parts]),
            starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]),
            lengths=lengths,
        )

    def seconds(self) -> float:
        return float(self.lengths.sum()) / 100.0


def vtlp(mel: np.ndarray, alpha: float) -> np.ndarray:
    """Vocal-tract-length perturbation: stretch the mel axis by `alpha` (formants move up for > 1)."""
    bins = np.arange(N_MELS, dtype=np.float32)
    source = np.clip(bins / alpha, 0, N_MELS - 1)
    lo = np.floor(source).astype(int)
    hi = np.minimum(lo + 1, N_MELS - 1)
    frac = source - lo
    return mel[..., lo] * (1 - frac) + mel[..., hi] * frac


def batch(frames: Frames, rng: np.random.Generator, size: int, crop: int,
          augment: bool = True) -> tuple[np.ndarray, ...]:  # fmt: skip
    """A batch of random crops: mel [B, T, M], emotion [B, E], targets [B, T, 52], visemes [B, T]."""
    utts = rng.integers(0, frames.lengths.size, size)
    mel = np.empty((size, crop, N_MELS), np.float32)
    targets = np.zeros((size, crop, frames.targets.shape[1]), np.float32)
    visemes = np.zeros((size, crop), np.int64)
    mel[:] = frames.mel.min()
    for b, u in enumerate(utts):
        length = int(frames.lengths[u])
        offset = int(rng.integers(0, max(1, length - crop + 1)))
        a = int(frames.starts[u]) + offset
        n = min(crop, length - offset)
        mel[b, :n] = frames.mel[a : a + n]
        targets[b, :n] = frames.targets[a : a + n]
        visemes[b, :n] = frames.visemes[a : a + n]
        if augment:
            mel[b] = vtlp(mel[b], rng.uniform(0.88, 1.12))
            for _ in range(2):  # frequency masks
                w, f0 = int(rng.integers(0, 8)), int(rng.integers(0, N_MELS - 8))
                mel[b, :, f0 : f0 + w] = mel[b].mean()
    emotion = frames.emotion[utts].astype(np.float32)
    return mel, emotion, targets, visemes
