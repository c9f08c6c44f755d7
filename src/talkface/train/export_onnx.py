"""Export a trained FaceNet to exactly what the light runtime (`talkface.model`) loads: ONNX + metadata."""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from ..features import FRAME_RATE, N_MELS
from ..files import atomic_path, write_text
from ..phonemes import VISEMES
from ..rig import ARKIT_NAMES
from .net import FaceNet, NetConfig


def export(model: FaceNet, path: str | Path, extra: dict | None = None) -> Path:
    """Write `path` (.onnx) and its metadata `path.json` (architecture, frame rate, checksum)."""
    path = Path(path)
    model = model.eval().cpu()
    example = (torch.zeros(1, 64, N_MELS), torch.zeros(1, model.config.emotion_dim))
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            example,
            str(tmp),
            input_names=["mel", "emotion"],
            output_names=["weights", "visemes"],
            dynamic_axes={"mel": {1: "frames"}, "weights": {1: "frames"}, "visemes": {1: "frames"}},
            opset_version=17,
            dynamo=False,
        )
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    meta = {
        "format": "talkface-model/1",
        "sha256": digest,
        "frame_rate": FRAME_RATE,
        "n_mels": N_MELS,
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
    net = state["config"]["net"]
    model = FaceNet(NetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in net.items()}))
    model.load_state_dict(state["model"])
    return export(model, path, {"trained_steps": int(state["step"])})
