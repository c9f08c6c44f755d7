"""Training data in memory: corpus shards, Live Link Face takes and vertex caches; random crops and
feature augmentation.

Takes and vertex caches carry no phones, so their viseme labels are `NO_VISEME` and only the
weight losses learn from them.
"""

from __future__ import annotations

import csv
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..animation import Animation
from ..audio import SAMPLE_RATE, load_audio
from ..errors import TalkfaceError
from ..features import FRAME_RATE, HOP, N_MELS, SILENCE, log_mel
from ..files import atomic_path, opened
from ..rig import ARKIT_NAMES, INDEX, LEFT_RIGHT_PAIRS
from .solve import solve

if TYPE_CHECKING:
    from ..encoder import SpeechEncoder

NO_VISEME = -100  # ignored by the viseme loss
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
#: The most (seconds) a take's or vertex cache's animation and its audio may differ in length: the app starts
#: audio and video a few frames apart; more is a take cut short, another take's audio or the wrong frame rate,
#: whose targets would be cut or stretched against the speech.
LENGTH_TOLERANCE = 0.2
#: How far past ARKit's 0..1 a take's weights may go (they are clipped to it): beyond is a take in other units.
WEIGHT_SLACK = 0.5


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
        arrays = {name: [] for name in ("mel", "targets", "visemes", "emotion", "lengths")}
        for path in paths:  # (an empty or truncated file raised EOFError, which the CLI took for Ctrl-D)
            try:
                with np.load(path) as shard:
                    for name, found in arrays.items():
                        found.append(shard[name])
            except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
                raise TalkfaceError(f"{path}: not a readable corpus shard ({type(e).__name__}: {e})") from None
        try:  # (shards of corpora built with other settings: another emotion width)
            joined = {name: np.concatenate(found) for name, found in arrays.items()}
        except ValueError as e:
            raise TalkfaceError(f"corpus shards that do not go together ({e})") from None
        lengths = joined["lengths"]
        return cls(
            mel=joined["mel"],
            targets=joined["targets"],
            visemes=joined["visemes"],
            emotion=joined["emotion"],
            starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]),
            lengths=lengths,
        )

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[np.ndarray, Animation]], emotion_dim: int) -> Frames:
        """Frames from (16 kHz audio, ARKit animation) pairs: features and targets on the 100 Hz grid."""
        mels, targets = [], []
        for audio, anim in pairs:
            mel = log_mel(audio)
            target = anim.with_channels(ARKIT_NAMES).resample_to(np.arange(mel.shape[0]) / FRAME_RATE)
            mels.append(mel.astype(np.float16))
            targets.append(np.clip(target, 0, 1).astype(np.float16))
        lengths = np.array([m.shape[0] for m in mels])
        return cls(
            mel=np.concatenate(mels),
            targets=np.concatenate(targets),
            visemes=np.full(lengths.sum(), NO_VISEME, np.int8),
            emotion=np.zeros((len(pairs), emotion_dim), np.float16),
            starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]),
            lengths=lengths,
        )

    @staticmethod
    def join(parts: Sequence[Frames]) -> Frames:
        """All frames of several sources, one after another."""
        lengths = np.concatenate([p.lengths for p in parts])
        return Frames(
            mel=np.concatenate([p.mel for p in parts]),
            targets=np.concatenate([p.targets for p in parts]),
            visemes=np.concatenate([p.visemes for p in parts]),
            emotion=np.concatenate([p.emotion for p in parts]),
            starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]),
            lengths=lengths,
        )

    def seconds(self) -> float:
        return float(self.lengths.sum()) / FRAME_RATE


def _audio_beside(path: Path) -> Path:
    for suffix in AUDIO_SUFFIXES:
        if path.with_suffix(suffix).is_file():
            return path.with_suffix(suffix)
    raise TalkfaceError(f"{path}: no audio beside it ({', '.join(AUDIO_SUFFIXES)} with the same name)")


def _paired(source: Path, anim: Animation, hint: str = "") -> tuple[np.ndarray, Animation]:
    """(audio, animation) of a take or vertex cache and the audio beside it; TalkfaceError naming both lengths
    where they differ by more than `LENGTH_TOLERANCE` (within it, the animation is cut or its last frame held)."""
    audio_path = _audio_beside(source)
    audio = load_audio(audio_path)
    seconds = audio.size / SAMPLE_RATE
    if abs(anim.duration - seconds) > LENGTH_TOLERANCE:
        raise TalkfaceError(
            f"{source}: {anim.duration:.2f} s of animation ({anim.num_frames} frames at {anim.fps:g} fps), but "
            f"{audio_path.name} holds {seconds:.2f} s of audio: more than {LENGTH_TOLERANCE:g} s apart, so the "
            f"targets would not line up with the speech{hint}; trim both to the same span"
        )
    return audio, anim


def _take(path: Path) -> Animation:
    """The animation of one Live Link Face take; TalkfaceError where training would learn it wrong: an ARKit
    shape without a column (read as 0) or weights far outside 0..1 (clipping would flatten them)."""
    from ..export import read

    anim = read(path)
    with opened(path, "Live Link Face CSV") as f:
        header = next(csv.reader([f.readline(1 << 16).decode("utf-8-sig", "replace")]), [])
    columns = {h.strip().lower() for h in header}
    missing = [n for n in ARKIT_NAMES if n.lower() not in columns]
    if missing:
        raise TalkfaceError(f"{path}: no column for {', '.join(missing)}; a take needs all 52 ARKit shapes")
    shapes = anim.with_channels(ARKIT_NAMES).weights
    low, high = float(shapes.min()), float(shapes.max())
    if low < -WEIGHT_SLACK or high > 1 + WEIGHT_SLACK:
        raise TalkfaceError(f"{path}: shape weights from {low:.3g} to {high:.3g}; ARKit weights lie in 0..1 "
                            "(a take scaled to 0..100?)")  # fmt: skip
    return anim


def live_link_takes(folder: str | Path) -> list[tuple[np.ndarray, Animation]]:
    """(audio, animation) of each Live Link Face take in `folder`: `NAME.csv` with `NAME.wav` beside it,
    checked by `_take` and `_paired`."""
    takes = sorted(Path(folder).glob("*.csv"))
    if not takes:
        raise TalkfaceError(f"{folder}: no Live Link Face CSV takes found")
    return [_paired(csv_path, _take(csv_path)) for csv_path in takes]


def read_pc2(path: str | Path) -> np.ndarray:
    """Vertex frames [T, V, 3] of a PointCache2 (.pc2) file; TalkfaceError if it is not one. Its counts
    are checked against the file's size before its frames are read (a header may claim exabytes)."""
    with opened(path, "PointCache2") as f:
        header = f.read(32)
        if len(header) < 32 or header[:12] != b"POINTCACHE2\0":
            raise TalkfaceError(f"{path}: not a PointCache2 file")
        points, samples = int(np.frombuffer(header, "<i4", 1, 16)[0]), int(np.frombuffer(header, "<i4", 1, 28)[0])
        size = samples * points * 12
        if min(points, samples) < 0 or os.fstat(f.fileno()).st_size != 32 + size:
            raise TalkfaceError(f"{path}: truncated PointCache2 file")
        data = f.read(size)
    if len(data) != size:  # (shortened while read)
        raise TalkfaceError(f"{path}: truncated PointCache2 file")
    return np.frombuffer(data, "<f4").reshape(samples, points, 3)


def _vertex_frames(path: Path) -> np.ndarray:
    """Vertex frames of a `.pc2` or `.npy` cache (never unpickled); TalkfaceError naming the file if unreadable."""
    if path.suffix == ".pc2":
        return read_pc2(path)
    with opened(path, "vertex cache") as f:
        try:
            frames = np.load(f, allow_pickle=False)
        except (ValueError, EOFError, MemoryError) as e:  # (MemoryError: a header that claims terabytes)
            raise TalkfaceError(f"{path}: not a readable .npy vertex cache ({e})") from None
    if not isinstance(frames, np.ndarray) or frames.dtype.kind not in "fiu":
        raise TalkfaceError(f"{path}: not a .npy array of vertex positions (numbers)")
    return frames


def vertex_caches(folder: str | Path, blendshapes: str | Path, fps: float) -> list[tuple[np.ndarray, Animation]]:
    """(audio, ARKit animation) of each vertex cache (`.npy` [T, V, 3] or `.pc2`) in `folder`.

    `blendshapes` is an `.npz` with `neutral` [V, 3], `shapes` [K, V, 3] and `names` [K] (ARKit
    names); each cache is solved into those weights (`talkface.train.solve`).
    """
    try:
        with opened(blendshapes, "blendshapes") as f, np.load(f, allow_pickle=False) as z:
            neutral, shapes, names = z["neutral"], z["shapes"], [str(n) for n in z["names"]]
    except (ValueError, EOFError, KeyError, TypeError, zipfile.BadZipFile) as e:  # (TypeError: a .npy, no .npz)
        raise TalkfaceError(f"{blendshapes}: not an .npz of neutral, shapes and names ({e})") from None
    unknown = sorted(set(names) - set(ARKIT_NAMES))
    if unknown:
        raise TalkfaceError(f"{blendshapes}: shapes that are not ARKit names: {', '.join(unknown)}")
    pos = {n: i for i, n in enumerate(names)}
    pairs = [(pos[a], pos[b]) for a, b in LEFT_RIGHT_PAIRS if a in pos and b in pos]
    caches = sorted(p for p in Path(folder).iterdir() if p.suffix in (".npy", ".pc2"))
    if not caches:
        raise TalkfaceError(f"{folder}: no .npy or .pc2 vertex caches found")
    out = []
    for cache in caches:
        weights = solve(_vertex_frames(cache), neutral, shapes, pairs)
        full = np.zeros((weights.shape[0], len(ARKIT_NAMES)), np.float32)
        full[:, [INDEX[n] for n in names]] = weights
        hint = f" (is vertex_cache_fps, {fps:g}, its frame rate?)"
        out.append(_paired(cache, Animation(full, fps), hint))
    return out


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
    mel[:] = SILENCE  # crops past an utterance's end hear digital silence
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


@dataclass
class EncoderFrames:
    """Corpus shards for a head over the speech encoder: its features two ways, as run time makes them.

    Whisper's positions make a frame's features depend on where it sits in the window it was
    encoded in (`SpeechEncoder.features`), so the head sees both cases it will meet: each utterance
    encoded on its own (a short clip, positions from 0), and each shard's utterances encoded as
    one long recording (a long file, in windows). Features are cached in the corpus's `features/`
    folder, keyed by the encoder's checksum.
    """

    frames: Frames  # targets and visemes at 100 Hz (their mel is not used)
    features: np.ndarray  # [sum of ceil(length / 2), D] float16: each utterance encoded alone
    feature_starts: np.ndarray  # [U] first feature row of each utterance
    long: np.ndarray  # [sum over shards of ceil(frames / 2), D] float16: each shard encoded whole
    shard_starts: np.ndarray  # [S] first 100 Hz frame of each shard
    shard_frames: np.ndarray  # [S] 100 Hz frames of each shard
    long_starts: np.ndarray  # [S] first row of each shard in `long`
    long_share: float = 0.5  # of the crops taken from the long encoding

    @classmethod
    def load(cls, paths: list[Path]) -> EncoderFrames:
        """The shards' targets, and their features (encoded on first use, minutes per hour of audio)."""
        from ..encoder import load_default

        encoder = load_default()
        frames = Frames.load(paths)
        utterance, long = zip(*(_encoded(p, encoder) for p in paths), strict=True)
        halves = -(-frames.lengths // 2)
        shard_frames = np.array([int(np.load(p)["lengths"].sum()) for p in paths])
        return cls(
            frames=frames,
            features=np.concatenate(utterance),
            feature_starts=np.concatenate([[0], np.cumsum(halves)[:-1]]),
            long=np.concatenate(long),
            shard_starts=np.concatenate([[0], np.cumsum(shard_frames)[:-1]]),
            shard_frames=shard_frames,
            long_starts=np.concatenate([[0], np.cumsum([len(x) for x in long])[:-1]]),
        )

    def batch(self, rng: np.random.Generator, size: int, crop: int) -> tuple[np.ndarray, ...]:
        """Random crops of `crop` 100 Hz frames (even): features [B, crop / 2, D], emotion [B, E],
        targets [B, crop, 52], visemes [B, crop] (`NO_VISEME` past an utterance's end)."""
        f, half = self.frames, crop // 2
        x = np.zeros((size, half, self.features.shape[1]), np.float32)
        targets = np.zeros((size, crop, f.targets.shape[1]), np.float32)
        visemes = np.full((size, crop), NO_VISEME, np.int64)
        utts = rng.integers(0, f.lengths.size, size)
        for b, u in enumerate(utts):
            if rng.random() < self.long_share:  # a stretch of a shard encoded whole, from an even frame
                k = int(rng.integers(0, self.shard_starts.size))
                rows = -(-int(self.shard_frames[k]) // 2)
                off = int(rng.integers(0, max(1, rows - half + 1)))
                n = min(half, rows - off)
                x[b, :n] = self.long[self.long_starts[k] + off : self.long_starts[k] + off + n]
                first = int(self.shard_starts[k])
                a, end = first + 2 * off, min(first + 2 * (off + n), first + int(self.shard_frames[k]))
                utts[b] = np.searchsorted(f.starts, a, side="right") - 1  # the utterance it starts in
            else:  # one utterance encoded alone
                length = int(f.lengths[u])
                off = int(rng.integers(0, max(1, -(-length // 2) - half + 1)))
                n = min(half, -(-length // 2) - off)
                start = int(self.feature_starts[u]) + off
                x[b, :n] = self.features[start : start + n]
                a = int(f.starts[u]) + 2 * off
                end = min(a + 2 * n, int(f.starts[u]) + length)
            targets[b, : end - a] = f.targets[a:end]
            visemes[b, : end - a] = f.visemes[a:end]
        return x, f.emotion[utts].astype(np.float32), targets, visemes


def _encoded(shard: Path, encoder: SpeechEncoder) -> tuple[np.ndarray, np.ndarray]:
    """A shard's features, each utterance alone and the shard whole (see `EncoderFrames`), cached."""
    cache = shard.parent / "features" / f"{shard.stem}.{encoder.meta['sha256'][:12]}.npz"
    if cache.is_file():
        with np.load(cache) as z:
            return z["utterances"], z["whole"]
    with np.load(shard) as z:
        if "audio" not in z:
            raise TalkfaceError(f"{shard}: holds no audio (built before corpora kept it); rebuild the corpus")
        audio, lengths = z["audio"].astype(np.float32) / 32767, z["lengths"]
    parts, pos = [], 0
    for length in lengths:
        rows = -(-int(length) // 2)
        feats = encoder.features(audio[pos * HOP : (pos + length) * HOP])[:rows]
        parts.append(np.pad(feats, ((0, rows - len(feats)), (0, 0))).astype(np.float16))
        pos += length
    utterances, whole = np.concatenate(parts), encoder.features(audio).astype(np.float16)
    cache.parent.mkdir(exist_ok=True)
    with atomic_path(cache) as tmp, open(tmp, "wb") as out:
        np.savez(out, utterances=utterances, whole=whole)
    return utterances, whole
