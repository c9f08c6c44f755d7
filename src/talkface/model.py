"""The neural audio-to-face model at run time: ONNX through onnxruntime, no torch.

A model is an ``.onnx`` file with a ``.json`` beside it (written by `talkface.train.export_onnx`)
that gives its input, frame rate, look-ahead, receptive field and SHA-256; a file that does not
match its checksum is refused. `talkface.stream` runs it, offline and live alike.

Two kinds of input, two packaged models:

- **log-mel** (`talkface-default.onnx`): causal convolutions over 100 Hz log-mel with 80 ms of
  look-ahead; what streams run (live, ≤ 100 ms latency).
- **speech encoder** (`talkface-offline.onnx`): a head over the frozen Whisper features of
  `talkface.encoder`, which hear real voices far better; the encoder reads seconds of audio either
  side of a frame, so files (and streams that can wait) run it.
"""

from __future__ import annotations

import functools
import math
from importlib.resources import files
from pathlib import Path

import numpy as np

from .errors import TalkfaceError, checked_number
from .features import N_MELS
from .onnx_file import open_checked
from .phonemes import VISEMES
from .rig import ARKIT_NAMES

#: The packaged models: for live streams, and for files.
DEFAULT_MODEL = "talkface-default.onnx"
OFFLINE_MODEL = "talkface-offline.onnx"
#: Model inputs: log-mel frames, or the packaged speech encoder's features.
LOG_MEL, ENCODER = "log-mel", "speech-encoder"


def default_model_path(name: str = DEFAULT_MODEL) -> Path:
    return Path(str(files("talkface") / "assets" / name))


class FaceModel:
    """A loaded audio-to-face model: 16 kHz audio in, ARKit weights at the model's frame rate out."""

    def __init__(self, path: str | Path | None = None, threads: int = 1) -> None:
        self.path = Path(path) if path is not None else default_model_path()
        self.meta, self.session = open_checked(self.path, "talkface-model/1", "model", threads)
        self.input = self.meta.get("input", LOG_MEL)
        if self.input == ENCODER:
            from .encoder import load_default as load_encoder

            made_for = load_encoder().meta["sha256"]
            if self.meta.get("encoder_sha256") != made_for or self.meta.get("names") != list(ARKIT_NAMES):
                raise TalkfaceError(f"{self.path}: model was made for another speech encoder or other channels")
        elif self.input != LOG_MEL or self.meta.get("n_mels") != N_MELS or self.meta.get("names") != list(ARKIT_NAMES):
            raise TalkfaceError(f"{self.path}: model was made for other features or channels")
        # numbers its .json gives (not covered by the checksum): a negative frame rate never ended a stream
        self.frame_rate = self._number("frame_rate", 1, 1000)
        self.lookahead = int(self._number("lookahead", 0, 1000, whole=True))
        self.receptive_field = int(self._number("receptive_field", 0, 100_000, whole=True))
        self.emotion_dim = int(self._number("emotion_dim", 0, 1000, whole=True))
        wanted = {i.name: i.shape[-1] for i in self.session.get_inputs()}.get("emotion", self.emotion_dim)
        if isinstance(wanted, int) and wanted != self.emotion_dim:
            raise TalkfaceError(f"{self.path}: emotion_dim is {self.emotion_dim}, the model takes {wanted}")
        self.viseme_bias = _viseme_bias(self.meta.get("viseme_bias", {}), self.path)

    def _number(self, key: str, lo: float, hi: float, whole: bool = False) -> float:
        """The number `key` of the model's metadata, within [lo, hi]; TalkfaceError if missing or not."""
        if key not in self.meta:
            raise TalkfaceError(f"{self.path}: its metadata gives no {key}")
        return checked_number(self.meta[key], f"{self.path}: {key}", lo, hi, whole)

    def _emotion(self, emotion: np.ndarray | None) -> np.ndarray:
        if emotion is None:
            return np.zeros((1, self.emotion_dim), np.float32)
        vec = np.asarray(emotion, np.float32).reshape(1, -1)
        if vec.shape[1] != self.emotion_dim:
            raise TalkfaceError(f"emotion vector needs {self.emotion_dim} values, got {vec.shape[1]}")
        return vec

    def run_features(self, features: np.ndarray, emotion: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs (weights [T, 52], viseme logits [T, V]) at the model's frame rate.

        A log-mel model takes frames [T + lookahead, N_MELS]: output ``t`` belongs to input frame
        ``t``, and the last `lookahead` input frames are the future it may look at. A speech-encoder
        model takes encoder frames [T / 2, dim] (20 ms each) and gives two 10 ms frames for each.
        """
        name = "features" if self.input == ENCODER else "mel"
        weights, visemes = self.session.run(
            None, {name: np.ascontiguousarray(features[None], np.float32), "emotion": self._emotion(emotion)}
        )
        look = self.lookahead if self.input == LOG_MEL else 0
        return weights[0, look:], visemes[0, look:]


def _viseme_bias(bias: object, path: Path) -> np.ndarray:
    """The model's calibration (its JSON's ``viseme_bias``, {viseme: logit offset}): added to the
    viseme logits before the rules below read them, so that a model's share of heard /p b m/ can be
    chosen on validation speech against the lips it shuts elsewhere (`scripts/calibrate_visemes.py`)."""
    out = np.zeros(len(VISEMES), np.float32)
    if not isinstance(bias, dict) or not all(
        k in VISEMES and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        for k, v in bias.items()
    ):
        raise TalkfaceError(f"{path}: viseme_bias must map viseme names ({', '.join(VISEMES)}) to finite numbers")
    for name, value in bias.items():
        out[VISEMES.index(name)] = value
    return out


#: Viseme classes whose articulation must be seen, and a phone that stands for each.
CRITICAL_VISEMES = {"PP": "p", "FF": "f", "TH": "th"}
#: Frames (20 ms) a critical viseme must last before its closure is enforced; shorter is noise.
MIN_CRITICAL_FRAMES = 2
#: Seconds an enforced articulation stays whole from the frame it is enforced, however briefly the
#: viseme head hears it: on real voices it often hears a /p b m/ for fewer frames than the lips
#: are closed, and with the 30 ms release a 20 ms closure fell between two 30 fps frames.
MIN_HOLD = 0.02
#: Rounded viseme classes, and the phone whose lip rounding stands for each (the least rounded).
ROUNDED_VISEMES = {"ou": "uh", "oh": "ow"}
#: Where the viseme head hears a rounded class for `MIN_CRITICAL_FRAMES`, pucker and funnel are at
#: least this share of that phone's: regression damps rounding peaks (on the held-out voice 61 % of
#: /uw uh w/ midpoints reached the rounding threshold, against 99.7 % of the targets).
ROUNDING_FLOOR = 0.5
#: Seconds over which that floor is released: lips unround more slowly than they part.
ROUNDING_RELEASE = 0.08


@functools.cache
def load_default(name: str = DEFAULT_MODEL) -> FaceModel:
    """A packaged model (`DEFAULT_MODEL` or `OFFLINE_MODEL`), loaded once per process."""
    return FaceModel(default_model_path(name))
