"""The neural audio-to-face model at run time: ONNX through onnxruntime, no torch.

A model is an ``.onnx`` file with a ``.json`` beside it (written by `talkface.train.export_onnx`)
that gives its frame rate, look-ahead, receptive field and SHA-256; a file that does not match
its checksum is refused. Long audio is processed in windows that overlap by the receptive field,
so the result is identical to one pass over the whole file, in bounded memory.
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib.resources import files
from pathlib import Path

import numpy as np

from .animation import Animation
from .coarticulation import enforce
from .errors import TalkfaceError
from .features import N_MELS, log_mel, num_frames
from .phonemes import VISEMES, TimedPhone
from .rig import ARKIT_NAMES

#: The model that ships inside the package.
DEFAULT_MODEL = "talkface-default.onnx"
_WINDOW = 6000  # output frames per pass (60 s)
_SILENCE = float(np.log(1e-5))  # the log-mel value of digital silence


def default_model_path() -> Path:
    return Path(str(files("talkface") / "assets" / DEFAULT_MODEL))


class FaceModel:
    """A loaded audio-to-face model: 16 kHz audio in, ARKit weights at the model's frame rate out."""

    def __init__(self, path: str | Path | None = None, threads: int = 1) -> None:
        import onnxruntime as ort

        self.path = Path(path) if path is not None else default_model_path()
        meta_path = self.path.with_suffix(".json")
        if not self.path.is_file() or not meta_path.is_file():
            raise TalkfaceError(f"{self.path}: no such model (it needs its .json beside it)")
        try:
            self.meta = json.loads(meta_path.read_text())
            digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        except (OSError, ValueError) as e:
            raise TalkfaceError(f"{meta_path}: unreadable model metadata ({e})") from None
        if self.meta.get("format") != "talkface-model/1" or digest != self.meta.get("sha256"):
            raise TalkfaceError(f"{self.path}: corrupt or mismatched model file (checksum differs)")
        if self.meta["n_mels"] != N_MELS or self.meta["names"] != list(ARKIT_NAMES):
            raise TalkfaceError(f"{self.path}: model was made for other features or channels")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for invalid graphs
            raise TalkfaceError(f"{self.path}: not a valid ONNX model ({e})") from None
        self.frame_rate = float(self.meta["frame_rate"])
        self.lookahead = int(self.meta["lookahead"])
        self.receptive_field = int(self.meta["receptive_field"])
        self.emotion_dim = int(self.meta["emotion_dim"])

    @property
    def latency(self) -> float:
        """Algorithmic look-ahead in seconds (the model sees this much future audio)."""
        return self.lookahead / self.frame_rate

    def _emotion(self, emotion: np.ndarray | None) -> np.ndarray:
        if emotion is None:
            return np.zeros((1, self.emotion_dim), np.float32)
        vec = np.asarray(emotion, np.float32).reshape(1, -1)
        if vec.shape[1] != self.emotion_dim:
            raise TalkfaceError(f"emotion vector needs {self.emotion_dim} values, got {vec.shape[1]}")
        return vec

    def run_features(self, mel: np.ndarray, emotion: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs (weights [T, 52], viseme logits [T, V]) for log-mel frames [T + lookahead, N_MELS].

        Output ``t`` belongs to input frame ``t``; the last `lookahead` input frames are the future
        it may look at.
        """
        weights, visemes = self.session.run(
            None, {"mel": mel[None].astype(np.float32), "emotion": self._emotion(emotion)}
        )
        look = self.lookahead
        return weights[0, look:], visemes[0, look:]

    def predict(self, audio: np.ndarray, emotion: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Weights [frames, 52] and viseme logits [frames, V] at `frame_rate` for 16 kHz mono audio."""
        frames = num_frames(audio.size)
        context, look = self.receptive_field, self.lookahead
        weights, visemes = [], []
        for start in range(0, frames, _WINDOW):
            stop = min(frames, start + _WINDOW)
            first = max(0, start - context)
            mel = log_mel(audio, first, min(frames, stop + look))
            # silence beyond the end of the audio, so the last frames have their look-ahead
            mel = np.concatenate([mel, np.full((stop + look - first - mel.shape[0], N_MELS), _SILENCE, np.float32)])
            w, v = self.run_features(mel, emotion)
            weights.append(w[start - first :])
            visemes.append(v[start - first :])
        return np.concatenate(weights), np.concatenate(visemes)

    def animate(self, audio: np.ndarray, fps: float, emotion: np.ndarray | None = None) -> Animation:
        """ARKit animation at `fps` for 16 kHz mono audio.

        Regression alone leaves closures soft; where the viseme head hears /p b m/, /f v/ or
        /th dh/, the phone-driven path's rule (`coarticulation.enforce`) makes them complete.
        """
        weights, visemes = self.predict(audio, emotion)
        enforce(weights, critical_phones(visemes, self.frame_rate), self.frame_rate)
        return Animation(np.clip(weights, 0.0, 1.0), self.frame_rate).resample(fps)


#: Viseme classes whose articulation must be seen, and a phone that stands for each.
_CRITICAL = {"PP": "p", "FF": "f", "TH": "th"}
_MIN_RUN = 2  # frames (20 ms): shorter detections are treated as noise


def critical_phones(viseme_logits: np.ndarray, frame_rate: float) -> list[TimedPhone]:
    """Timed phones for the runs of frames whose most likely viseme is a critical one."""
    best = viseme_logits.argmax(axis=1)
    edges = np.flatnonzero(np.diff(best)) + 1
    starts, ends = np.concatenate([[0], edges]), np.concatenate([edges, [best.size]])
    phones = []
    for a, b in zip(starts, ends, strict=True):
        phone = _CRITICAL.get(VISEMES[best[a]])
        if phone and b - a >= _MIN_RUN:
            phones.append(TimedPhone(a / frame_rate, b / frame_rate, phone))
    return phones


@functools.cache
def load_default() -> FaceModel:
    """The packaged model, loaded once per process."""
    return FaceModel()
