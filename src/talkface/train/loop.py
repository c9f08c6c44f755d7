"""`talkface train`: the training loop, with checkpoints, resumption, CSV logs and validation."""

from __future__ import annotations

import copy
import csv
import functools
import math
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.nn import functional as F
from tqdm import tqdm

from .. import evaluation
from ..animator import Animator
from ..audio import SAMPLE_RATE
from ..encoder import FEATURE_DIM
from ..errors import TalkfaceError
from ..files import atomic_path, folder_lock
from ..model import ENCODER, LOG_MEL
from ..phonemes import VISEMES
from ..rig import ARKIT_NAMES
from . import dataset
from .checkpoints import checkpoint_state, initial_weights, load_weights, log_until
from .export_onnx import export
from .net import EncoderFaceNet, EncoderNetConfig, FaceNet, NetConfig

#: Channels the lips and jaw use: where lip-sync error is measured.
MOUTH = np.array([i for i, n in enumerate(ARKIT_NAMES) if n.startswith(("mouth", "jaw"))])
#: Viseme classes of the articulations that must be reached (`coarticulation.enforce`).
CRITICAL = torch.tensor([VISEMES.index(v) for v in ("PP", "FF", "TH")])
SILENT = VISEMES.index("sil")


@dataclass
class TrainConfig:
    """Everything a run depends on; read from a YAML file (`configs/*.yaml`)."""

    corpus: str | list[str]  # one corpus folder or several, whose shards are trained on together
    out: str
    steps: int = 20000
    batch: int = 32
    crop: int = 300
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 300
    velocity_weight: float = 0.5
    viseme_weight: float = 0.1
    critical_weight: float = 0.0  # extra weight of /p b m/, /f v/, /th dh/ frames in the L1 loss
    rest_weight: float = 0.0  # extra weight of silent frames (pauses) in the L1 loss
    critical_viseme_weight: float = 1.0  # class weight of those visemes in the viseme loss
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # 0: torch's default
    log_every: int = 50
    eval_every: int = 1000
    takes: list[str] = field(default_factory=list)  # folders of Live Link Face takes (CSV + audio)
    vertex_caches: list[str] = field(default_factory=list)  # folders of .npy/.pc2 caches + audio
    blendshapes: str | None = None  # .npz blendshape set the vertex caches are solved into
    vertex_cache_fps: float = 30.0
    #: weights (and feature statistics) a new run starts from: a run's checkpoint.pt, or an exported
    #: model .onnx such as the packaged `talkface-default.onnx`
    init: str | None = None
    #: "log-mel": the causal streaming network (`FaceNet`); "speech-encoder": a head over the frozen
    #: speech encoder's features (`EncoderFaceNet`), for files; the `net` keys follow the choice
    front_end: str = LOG_MEL
    net: NetConfig | EncoderNetConfig = field(default_factory=NetConfig)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read a YAML config; relative paths are taken from the current directory."""
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, ValueError, yaml.YAMLError) as e:  # (ValueError: not UTF-8)
            raise TalkfaceError(f"{path}: cannot read config ({e})") from None
        if not isinstance(raw, dict):
            raise TalkfaceError(f"{path}: a config is a YAML mapping (key: value lines), not {type(raw).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = {str(k) for k in raw} - known
        if unknown:
            raise TalkfaceError(f"{path}: unknown config keys: {', '.join(sorted(unknown))}")
        net = raw.pop("net", {}) or {}
        front_end = raw.get("front_end", LOG_MEL)
        if front_end not in (LOG_MEL, ENCODER):
            raise TalkfaceError(f"{path}: front_end must be {LOG_MEL!r} or {ENCODER!r}, got {front_end!r}")
        kind = EncoderNetConfig if front_end == ENCODER else NetConfig
        if not isinstance(net, dict):
            raise TalkfaceError(f"{path}: net must be a mapping of {', '.join(f.name for f in fields(kind))}")
        net = {k: tuple(v) if isinstance(v, list) else v for k, v in net.items()}
        try:
            _check_values(cls, raw)
            _check_values(kind, net)
            config = cls(**raw, net=kind(**net))
        except (TypeError, ValueError) as e:
            raise TalkfaceError(f"{path}: {e}") from None
        if config.crop <= config.net.lookahead:
            raise TalkfaceError(f"{path}: crop ({config.crop}) must be longer than the net's lookahead")
        try:
            _device(config.device)
        except TalkfaceError as e:
            raise TalkfaceError(f"{path}: {e}") from None
        return config


#: The least each whole-number setting may be (the others: 1).
_LEAST = {"warmup": 0, "seed": 0, "threads": 0, "emotion_dim": 0, "blocks": 0, "lookahead": 0}
#: The most each whole-number setting may be where more fails inside torch rather than in the config: a seed
#: (torch's generator takes 64 bits), and sizes whose tensors no machine holds (batches × crop frames × channels).
_MOST = {"seed": 2**64 - 1, "batch": 4096, "crop": 60_000, "channels": 4096, "dilations": 4096, "blocks": 256,
         "kernel": 255, "lookahead": 1000, "emotion_dim": 1024}  # fmt: skip
#: A number in exponent form without a point (`1e-3`), which YAML 1.2 reads as a number and PyYAML as text.
_YAML12_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


def _check_values(kind: type, values: dict) -> None:
    """ValueError (or TypeError) for a value of the wrong kind: a whole number where one belongs
    (at least `_LEAST`), a finite number of at least 0 (lr above 0) for the others, text for paths."""
    defaults = {f.name: f.default for f in fields(kind)}
    for name, value in values.items():
        default = defaults.get(name)
        if isinstance(default, bool) or name not in defaults:
            continue
        if isinstance(default, int) or name == "dilations":
            numbers = value if name == "dilations" else (value,)
            if (
                not isinstance(numbers, tuple)
                or not numbers
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in numbers)
            ):
                raise TypeError(f"{name} must be {'whole numbers' if name == 'dilations' else 'a whole number'}, "
                                f"got {value!r}")  # fmt: skip
            if min(numbers) < _LEAST.get(name, 1):
                raise ValueError(f"{name} must be at least {_LEAST.get(name, 1)}, got {value!r}")
            if max(numbers) > _MOST.get(name, max(numbers)):
                raise ValueError(f"{name} must be at most {_MOST[name]}, got {value!r}")
        elif isinstance(default, float):
            if isinstance(value, str) and _YAML12_FLOAT.fullmatch(value):  # YAML 1.1 reads `1e-3` as text
                values[name] = value = float(value)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of at least 0, got {value!r}")
            if name == "lr" and value == 0:
                raise ValueError("lr must be above 0")
        elif name in ("out", "device", "front_end", "init", "blendshapes"):
            if not (isinstance(value, str) or (value is None and default is None)):
                raise TypeError(f"{name} must be text, got {value!r}")
            if name != "device" and value is not None and "\0" in value:  # (os calls raise ValueError)
                raise ValueError(f"{name} holds a NUL character, which no file name may")
        elif name in ("corpus", "takes", "vertex_caches"):
            folders = [value] if isinstance(value, str) and name == "corpus" else value
            if not (isinstance(folders, list) and all(isinstance(v, str) for v in folders)):
                raise TypeError(f"{name} must be a list of folders{' (or one)' if name == 'corpus' else ''}, "
                                f"got {value!r}")  # fmt: skip
            if any("\0" in folder for folder in folders):
                raise ValueError(f"{name} holds a NUL character, which no file name may")


def _losses(model: FaceNet | EncoderFaceNet, batch: tuple[np.ndarray, ...], device: torch.device,
            config: TrainConfig) -> dict:  # fmt: skip
    features, emotion, targets, visemes = (torch.from_numpy(a).to(device) for a in batch)
    weights, logits = model(features, emotion)
    look = model.config.lookahead
    # the output for frame t comes `look` frames later
    weights, logits = weights[:, look:], logits[:, look:]
    targets, visemes = targets[:, : targets.shape[1] - look], visemes[:, : visemes.shape[1] - look]
    # frames of the articulations a viewer must see (closures, lip-to-teeth, tongue) count more
    critical = CRITICAL.to(device)
    emphasis = 1.0 + config.critical_weight * torch.isin(visemes, critical).float()
    emphasis = emphasis + config.rest_weight * (visemes == SILENT).float()  # the face at rest in pauses
    l1 = ((weights - targets).abs().mean(dim=2) * emphasis).sum() / emphasis.sum()
    velocity = F.l1_loss(weights.diff(dim=1), targets.diff(dim=1))
    labelled = visemes != dataset.NO_VISEME  # takes and vertex caches have no viseme labels
    # the viseme head decides where closures are enforced (`stream._Articulations`): weighting its
    # critical classes trades a little precision elsewhere for hearing more of them
    classes = torch.ones(logits.shape[-1], device=device)
    classes[critical] = config.critical_viseme_weight
    ce = F.cross_entropy(logits[labelled], visemes[labelled], weight=classes) if labelled.any() else logits.sum() * 0.0
    total = l1 + config.velocity_weight * velocity + config.viseme_weight * ce
    mouth_mae = (weights - targets)[..., torch.from_numpy(MOUTH).to(device)].abs().mean()
    return {"loss": total, "l1": l1, "velocity": velocity, "ce": ce, "mouth_mae": mouth_mae}


def _device(name: str) -> torch.device:
    """The torch device `name` names ("auto": CUDA where there is one); TalkfaceError for a name torch
    does not know or a device this machine lacks (`cuda` without CUDA)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError, ValueError) as e:  # (AssertionError: torch built without CUDA)
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise TalkfaceError(f"device {name!r} cannot be used here ({reason})") from None
    return device


def _validate(model: FaceNet | EncoderFaceNet, draw: Callable, device: torch.device, config: TrainConfig) -> dict:
    """Mean losses on fixed crops of the held-out voice (no augmentation beyond the corpus's own)."""
    model.eval()
    rng = np.random.default_rng(12345)
    totals: dict[str, float] = {}
    with torch.no_grad():
        for _ in range(8):
            b = draw(rng, augment=False)
            for k, v in _losses(model, b, device, config).items():
                totals[k] = totals.get(k, 0.0) + float(v) / 8
    model.train()
    return totals


def _real_speech(model: FaceNet | EncoderFaceNet, clips: list[evaluation.Clip]) -> dict[str, float]:
    """Closed lips at /p b m/ and an open mouth at open vowels on real speech (`talkface evaluate`'s
    clips), through the exported model and the runtime, as users will get them."""
    with tempfile.TemporaryDirectory() as tmp:
        path = export(copy.deepcopy(model), Path(tmp) / "model.onnx")  # export moves its model to the CPU
        animator = Animator(evaluation.FPS, "neural", str(path))
        scores = evaluation.score_engine(lambda audio: animator.animate(audio, sample_rate=SAMPLE_RATE), clips)
    return {"real_closed": scores["closed_on_bilabials"][0], "real_open": scores["open_on_open_vowels"][0]}


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train, checkpointing to `out/checkpoint.pt`; export `out/model.onnx` at the end.

    The run folder is locked meanwhile: a second run in it is refused at once, where both ran,
    each writing its rows into the other's log.csv and replacing its checkpoint and model."""
    with folder_lock(config.out, "another talkface train is writing to this run folder"):
        return _train(config, resume, progress)


def _check_emotion_dim(config: TrainConfig, *parts: dataset.Frames) -> None:
    """TalkfaceError where the corpus's emotion vectors are not the width of the net's emotion input."""
    for frames in parts:
        if frames.emotion.shape[1] != config.net.emotion_dim:
            raise TalkfaceError(f"the corpus's emotion vectors have {frames.emotion.shape[1]} values, the net's "
                                f"emotion_dim is {config.net.emotion_dim}: set net: {{emotion_dim: "
                                f"{frames.emotion.shape[1]}}}")  # fmt: skip


def _train(config: TrainConfig, resume: bool, progress: bool) -> Path:
    """`train`'s work, with the run folder locked."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    corpora = [Path(c) for c in ([config.corpus] if isinstance(config.corpus, str) else config.corpus)]
    shards = [p for c in corpora for p in sorted(c.glob("train-*.npz"))]
    val_shards = [p for c in corpora for p in sorted(c.glob("val-*.npz"))]
    if config.threads:
        torch.set_num_threads(config.threads)
    device = _device(config.device)
    torch.manual_seed(config.seed)
    if config.front_end == ENCODER:
        if config.takes or config.vertex_caches:
            raise TalkfaceError("takes and vertex caches train only the log-mel network for now (front_end: log-mel)")
        encoded = dataset.EncoderFrames.load(shards), dataset.EncoderFrames.load(val_shards)
        _check_emotion_dim(config, encoded[0].frames, encoded[1].frames)
        seconds = encoded[0].frames.seconds()
        model: FaceNet | EncoderFaceNet = EncoderFaceNet(config.net, FEATURE_DIM).to(device)  # type: ignore[arg-type]

        def draw(rng: np.random.Generator, augment: bool = True, frames: int = 0) -> tuple[np.ndarray, ...]:
            return encoded[frames].batch(rng, config.batch, config.crop)
    else:
        train_frames = dataset.Frames.load(shards)
        pairs = [take for folder in config.takes for take in dataset.live_link_takes(folder)]
        if config.vertex_caches and not config.blendshapes:
            raise TalkfaceError("vertex_caches need a blendshapes .npz to be solved into")
        for folder in config.vertex_caches:
            pairs += dataset.vertex_caches(folder, str(config.blendshapes), config.vertex_cache_fps)
        if pairs:
            train_frames = dataset.Frames.join([train_frames, dataset.Frames.from_pairs(pairs, config.net.emotion_dim)])
        splits = train_frames, dataset.Frames.load(val_shards)
        _check_emotion_dim(config, *splits)
        seconds = train_frames.seconds()
        model = FaceNet(config.net).to(device)  # type: ignore[arg-type]
        mel = train_frames.mel.astype(np.float32)
        model.mel_mean.copy_(torch.from_numpy(mel.mean(0)))
        model.mel_std.copy_(torch.from_numpy(mel.std(0) + 1e-3))
        del mel

        def draw(rng: np.random.Generator, augment: bool = True, frames: int = 0) -> tuple[np.ndarray, ...]:
            return dataset.batch(splits[frames], rng, config.batch, config.crop, augment)

    if config.init:
        load_weights(model, initial_weights(config.init, model, device), config.init)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    def schedule(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        return 0.5 * (1 + math.cos(math.pi * (step - config.warmup) / max(1, config.steps - config.warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    checkpoint, log_path = out / "checkpoint.pt", out / "log.csv"
    step, elapsed = 0, 0.0
    if resume and checkpoint.exists():
        state = checkpoint_state(checkpoint, device)
        load_weights(model, state["model"], checkpoint)
        try:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            step = int(state["step"])
        except (ValueError, KeyError, TypeError):
            raise TalkfaceError(f"{checkpoint}: not a checkpoint of this run's network and optimizer") from None
        elapsed = log_until(log_path, step)  # (log.csv's seconds go on from the checkpoint's)
    elif log_path.exists():
        log_path.unlink()

    def save() -> None:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "step": step, "config": asdict(config)}  # fmt: skip
        with atomic_path(checkpoint) as tmp:
            torch.save(state, tmp)

    columns = ["step", "loss", "l1", "velocity", "ce", "mouth_mae", "val_loss", "val_mouth_mae", "real_closed",
               "real_open", "seconds"]  # fmt: skip
    clips = evaluation.real_speech()
    new_log = not log_path.exists()
    started = time.time() - elapsed
    with (
        open(log_path, "a", newline="") as log_file,
        tqdm(total=config.steps, initial=step, disable=not progress, unit="step") as bar,
    ):
        log = csv.writer(log_file)
        if new_log:
            log.writerow(columns)
        model.train()
        while step < config.steps:
            rng = np.random.default_rng([config.seed, step])  # per step, so a resumed run draws the same batches
            losses = _losses(model, draw(rng), device, config)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            bar.update()
            last = step == config.steps
            evaluating = step % config.eval_every == 0 or last  # (also where it is no multiple of log_every)
            if step % config.log_every == 0 or evaluating:
                row = {k: v.item() for k, v in losses.items()}
                if evaluating:
                    val = _validate(model, functools.partial(draw, frames=1), device, config)
                    row |= {"val_loss": val["loss"], "val_mouth_mae": val["mouth_mae"]} | _real_speech(model, clips)
                    save()
                row |= {"step": step, "seconds": time.time() - started}
                log.writerow([f"{row[c]:.5g}" if c in row else "" for c in columns])
                log_file.flush()
                bar.set_postfix(loss=f"{row['loss']:.4f}", mouth=f"{row['mouth_mae']:.4f}")
    save()
    extra = {"trained_steps": step, "train_seconds_of_audio": seconds,
             "device": str(device), "config": Path(config.out).name}  # fmt: skip
    return export(model, out / "model.onnx", extra)
