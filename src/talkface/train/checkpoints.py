"""What a training run starts from and resumes: an exported model's or a checkpoint's weights (each
file refused in one line if it is not one, or of another network), and the log cut back to the
checkpoint's step."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import torch

from ..errors import TalkfaceError
from ..files import atomic_path, opened


def initial_weights(path: str, model: torch.nn.Module, device: torch.device) -> dict[str, torch.Tensor]:
    """The state a run starts from: a checkpoint's, or an exported model's initializers (they keep the
    network's parameter names; constants the exporter added are left out)."""
    if Path(path).suffix != ".onnx":
        return checkpoint_state(path, device)["model"]
    import onnx
    from google.protobuf.message import DecodeError
    from onnx import numpy_helper

    with opened(path, "model") as f:
        try:
            graph = onnx.load_model_from_string(f.read()).graph  # (a talkface model keeps no external data)
        except (OSError, DecodeError) as e:
            raise TalkfaceError(f"{path}: cannot read model ({e})") from None
    own = model.state_dict()
    found = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer if i.name in own}
    missing = sorted(set(own) - set(found)) + sorted(k for k in found if found[k].shape != own[k].shape)
    if missing:
        raise TalkfaceError(f"{path}: not a model of this network (missing or other-shaped: {', '.join(missing[:5])})")
    return found


def checkpoint_state(path: str | Path, device: torch.device) -> dict:
    """A training checkpoint's state; TalkfaceError (one line) for a file that is not one."""
    with opened(path, "checkpoint") as f:  # (a folder, a device or a pipe: one line, never a hang)
        try:
            state = torch.load(f, map_location=device, weights_only=True)
        except Exception as e:  # (torch raises many kinds for a file that is not a checkpoint)
            raise TalkfaceError(f"{path}: not a talkface training checkpoint ({type(e).__name__})") from None
    if not (isinstance(state, dict) and {"model", "optimizer", "scheduler", "step"} <= state.keys()):
        raise TalkfaceError(f"{path}: not a talkface training checkpoint")
    return state


def load_weights(model: torch.nn.Module, weights: dict, path: str | Path) -> None:
    """`model.load_state_dict`, with a checkpoint of another network as one TalkfaceError line."""
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError):
        raise TalkfaceError(f"{path}: a checkpoint of another network (net settings other than the config's)") from None


def log_until(log_path: Path, step: int) -> float:
    """Keep of a resumed run's log.csv its header and the rows up to `step`, the checkpoint's: the steps
    after it (logged before the run stopped) are run and logged again. Returns the `seconds` of the last
    row kept (0 if none), from which the resumed run's clock goes on."""
    if not log_path.is_file():
        return 0.0
    with open(log_path, newline="", encoding="utf-8", errors="replace") as f:
        rows = list(csv.reader(f))
    kept = rows[:1] + [r for r in rows[1:] if r and r[0].isascii() and r[0].isdigit() and int(r[0]) <= step]
    if len(kept) < len(rows):
        with atomic_path(log_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as out:
            csv.writer(out).writerows(kept)
    column = kept[0].index("seconds") if kept and "seconds" in kept[0] else None
    try:
        seconds = float(kept[-1][column]) if column is not None and len(kept) > 1 else 0.0
    except (IndexError, ValueError):
        return 0.0
    return seconds if math.isfinite(seconds) and seconds >= 0 else 0.0
