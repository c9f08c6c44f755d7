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
from .net import EncoderFaceNet, EncoderNetConfig, FaceNet, MeanOfHeads, NetConfig


def export(model: FaceNet | EncoderFaceNet, path: str | Path, extra: dict | None = None) -> Path:
    """Write `path` (.onnx) and its metadata `path.json` (input, architecture, frame rate, checksum)."""
    path = Path(path)
    model = model.eval().cpu()
    encoder = isinstance(model, EncoderFaceNet)
    name = "features" if encoder else "mel"
    example = (torch.zeros(1, 32, FEATURE_DIM) if encoder else torch.zeros(1, 64, N_MELS),
               torch.zeros(1, model.config.emotion_dim))  # fmt: skip
    with atomic_path(path) as tmp:
        _write_onnx(model, example, name, tmp)
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


def export_mean(heads: list[str | Path], path: str | Path, int8: bool = True) -> Path:
    """Write one model (`path`, .onnx and .json) whose outputs are the mean of exported speech-encoder
    heads' outputs: weights averaged, viseme logits averaged. It runs as `MeanOfHeads`, the same
    function as one network; with `int8` its matrix products are onnxruntime's dynamic int8 (weights
    per output channel, as the speech encoder's), about 3 times as fast on a CPU. The metadata
    keeps each head's own (as ``heads``); the mean has no calibration until
    `scripts/calibrate_visemes.py` gives it one."""
    if len(heads) < 2:
        raise ValueError("averaging needs at least two models")
    metas = [json.loads(Path(h).with_suffix(".json").read_text()) for h in heads]
    for key in _SHARED:
        if len({json.dumps(m.get(key)) for m in metas}) > 1:
            raise ValueError(f"the models differ in {key!r}: they do not read the same input the same way")
    if metas[0].get("input") != ENCODER:
        raise ValueError("only heads over the speech encoder are averaged")
    mean = MeanOfHeads([_encoder_head(h, m) for h, m in zip(heads, metas, strict=True)])
    example = (torch.zeros(1, 32, FEATURE_DIM), torch.zeros(1, metas[0]["emotion_dim"]))
    path = Path(path)
    with atomic_path(path) as tmp:
        _write_onnx(mean, example, "features", tmp)
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            float32 = tmp.with_name(tmp.name + ".float32")
            try:
                tmp.replace(float32)
                quantize_dynamic(float32, tmp, op_types_to_quantize=["MatMul"], per_channel=True,
                                 weight_type=QuantType.QInt8)  # fmt: skip
            finally:
                float32.unlink(missing_ok=True)
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    own = [{k: v for k, v in m.items() if k not in (*_SHARED, "viseme_bias")} for m in metas]  # (its own calibration)
    storage = "dynamic int8 matrix products (onnxruntime), float32 elsewhere" if int8 else "float32"
    meta = {**{k: metas[0][k] for k in _SHARED if k in metas[0]}, "sha256": digest, "storage": storage, "heads": own}
    write_text(path.with_suffix(".json"), json.dumps(meta, indent=1))
    return path


def _encoder_head(path: str | Path, meta: dict) -> EncoderFaceNet:
    """The `EncoderFaceNet` that `export` wrote to `path` (its weights are the graph's named initializers)."""
    import onnx
    from google.protobuf.message import DecodeError
    from onnx import numpy_helper

    if not isinstance(meta.get("net"), dict):
        raise ValueError(f'{path}: its .json has no architecture ("net"): not a head that talkface exported')
    net = EncoderFaceNet(EncoderNetConfig(**meta["net"]), FEATURE_DIM)
    try:
        stored = {i.name: i for i in onnx.load(str(path)).graph.initializer}
    except DecodeError:
        raise ValueError(f"{path}: not an ONNX file") from None
    names = net.state_dict().keys()
    if not names <= stored.keys():
        raise ValueError(f"{path}: not a head that talkface exported (no {sorted(names - stored.keys())[0]})")
    net.load_state_dict({k: torch.from_numpy(numpy_helper.to_array(stored[k]).copy()) for k in names})
    return net.eval()


def _write_onnx(model: torch.nn.Module, example: tuple[torch.Tensor, torch.Tensor], name: str, path: Path) -> None:
    """Export `model` (input `name` [1, frames, dim] and emotion; outputs weights and visemes) to `path`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            example,
            str(path),
            input_names=[name, "emotion"],
            output_names=["weights", "visemes"],
            dynamic_axes={name: {1: "frames"}, "weights": {1: "frames"}, "visemes": {1: "frames"}},
            opset_version=17,
            dynamo=False,
        )


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
