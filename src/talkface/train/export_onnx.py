"""Export a trained FaceNet to exactly what the light runtime (`talkface.model`) loads: ONNX + metadata."""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from ..encoder import FEATURE_DIM
from ..encoder import load_default as load_encoder
from ..features import FRAME_RATE, N_MELS
from ..files import atomic_path, write_text
from ..model import ENCODER
from ..phonemes import VISEMES
from ..rig import ARKIT_NAMES
from .net import EncoderFaceNet, EncoderNetConfig, FaceNet, NetConfig


def export(model: FaceNet | EncoderFaceNet, path: str | Path, extra: dict | None = None) -> Path:
    """Write `path` (.onnx) and its metadata `path.json` (input, architecture, frame rate, checksum)."""
    path = Path(path)
    model = model.eval().cpu()
    encoder = isinstance(model, EncoderFaceNet)
    name = "features" if encoder else "mel"
    example = (torch.zeros(1, 32, FEATURE_DIM) if encoder else torch.zeros(1, 64, N_MELS),
               torch.zeros(1, model.config.emotion_dim))  # fmt: skip
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            example,
            str(tmp),
            input_names=[name, "emotion"],
            output_names=["weights", "visemes"],
            dynamic_axes={name: {1: "frames"}, "weights": {1: "frames"}, "visemes": {1: "frames"}},
            opset_version=17,
            dynamo=False,
        )
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    inputs = {"input": ENCODER, "encoder_sha256": load_encoder().meta["sha256"]} if encoder else {"n_mels": N_MELS}
    meta = {
        "format": "talkface-model/1",
        "sha256": digest,
        "frame_rate": FRAME_RATE,
        **inputs,
        "lookahead": model.config.lookahead,
        "receptive_field": model.config.receptive_field,
        "emotion_dim": model.config.emotion_dim,
        "names": list(ARKIT_NAMES),
        "visemes": list(VISEMES),
        "net": asdict(model.config),
        **(extra or {}),
    }
    write_text(path.with_suffix(".json"), json.dumps(meta, indent=1))
    return path


def export_checkpoint(checkpoint: str | Path, path: str | Path) -> Path:
    """Export the model in a training checkpoint (e.g. to try a run before it has finished)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    net = {k: tuple(v) if isinstance(v, list) else v for k, v in state["config"]["net"].items()}
    if state["config"].get("front_end") == ENCODER:
        model: FaceNet | EncoderFaceNet = EncoderFaceNet(EncoderNetConfig(**net), FEATURE_DIM)
    else:
        model = FaceNet(NetConfig(**net))
    model.load_state_dict(state["model"])
    return export(model, path, {"trained_steps": int(state["step"])})
