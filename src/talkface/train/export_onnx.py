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


#: Metadata that heads averaged by `export_mean` must share (what the runtime reads them by).
_SHARED = ("format", "frame_rate", "input", "encoder_sha256", "n_mels", "lookahead", "receptive_field", "emotion_dim",
           "names", "visemes")  # fmt: skip


def export_mean(heads: list[str | Path], path: str | Path) -> Path:
    """Write one model (`path`, .onnx and .json) whose outputs are the mean of exported models'
    outputs: weights averaged, viseme logits averaged. The heads must read the same input the same
    way; each is run on it side by side inside the one ONNX graph. The metadata keeps each head's
    own (as ``heads``); the mean has no calibration until `scripts/calibrate_visemes.py` gives it one."""
    import numpy as np
    import onnx
    from onnx import compose, helper, numpy_helper

    if len(heads) < 2:
        raise ValueError("averaging needs at least two models")
    metas = [json.loads(Path(h).with_suffix(".json").read_text()) for h in heads]
    for key in _SHARED:
        if len({json.dumps(m.get(key)) for m in metas}) > 1:
            raise ValueError(f"the models differ in {key!r}: they do not read the same input the same way")
    models = [onnx.load(str(h)) for h in heads]
    graphs = [compose.add_prefix(m, f"h{i}_") for i, m in enumerate(models)]  # (copies: `models` keep their names)
    first = models[0].graph
    inputs, outputs = [i.name for i in first.input], [o.name for o in first.output]
    nodes = [helper.make_node("Identity", [name], [f"h{i}_{name}"]) for i in range(len(heads)) for name in inputs]
    for g in graphs:
        nodes += g.graph.node
    for name in outputs:
        nodes += [helper.make_node("Sum", [f"h{i}_{name}" for i in range(len(heads))], [f"sum_{name}"]),
                  helper.make_node("Mul", [f"sum_{name}", "share"], [name])]  # fmt: skip
    share = numpy_helper.from_array(np.array(1 / len(heads), np.float32), "share")
    graph = helper.make_graph(nodes, "mean_of_heads", list(first.input), list(first.output),
                              initializer=[i for g in graphs for i in g.graph.initializer] + [share])  # fmt: skip
    model = helper.make_model(graph, opset_imports=graphs[0].opset_import)
    model.ir_version = graphs[0].ir_version
    onnx.checker.check_model(model)
    path = Path(path)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    own = [{k: v for k, v in m.items() if k not in (*_SHARED, "viseme_bias")} for m in metas]  # (its own calibration)
    meta = {**{k: metas[0][k] for k in _SHARED if k in metas[0]}, "sha256": digest, "heads": own}
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
