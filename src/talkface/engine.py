"""The neural model for many streams at once: each stream's place in it (`ModelState`), and `Engine`,
which feeds every stream's new audio through the model in one batch (log-mel and the cached conv
net, or the speech encoder window by window and its head)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from .audio import SAMPLE_RATE
from .convnet import NetState, StepNet
from .encoder import FEATURE_DIM, FRAME, EncoderState
from .features import N_MELS, SILENCE, WIN, log_mel_of
from .model import ENCODER, FaceModel
from .phonemes import VISEMES
from .rig import ARKIT_NAMES

OUTPUTS = len(ARKIT_NAMES) + len(VISEMES)  # a model frame: weights, then viseme logits


@dataclass
class ModelState:
    """One stream's place in the model: frames fed so far, and its memory."""

    net: NetState | None
    fed: int = 0
    context: np.ndarray = field(default_factory=lambda: np.zeros((0, N_MELS), np.float32))
    encoder: EncoderState = field(default_factory=EncoderState)  # a speech-encoder model's audio
    features: np.ndarray = field(default_factory=lambda: np.zeros((0, FEATURE_DIM), np.float32))  # from frame `first`
    first: int = 0
    heard: int = 0  # encoder frames whose model frames are made
    made: np.ndarray = field(default_factory=lambda: np.zeros((0, OUTPUTS), np.float32))  # not yet handed out
    handed: int = 0  # model frames handed out


class Engine:
    """The neural model for any number of streams; `run` advances them all in one batch."""

    def __init__(self, model: FaceModel) -> None:
        self.model = model
        self.rate = model.frame_rate
        self.encoder = None
        self.net = None
        if model.input == ENCODER:
            from .encoder import CONTEXT_SECONDS, WINDOW_SECONDS
            from .encoder import load_default as load_encoder

            self.encoder = load_encoder()
            self.reach = int(model.receptive_field)  # encoder frames either side that an output reads
            self.lookahead = 0
            # a frame waits at most for its window's far edge (`SpeechEncoder.advance`) and the head's reach
            self.delay = WINDOW_SECONDS - CONTEXT_SECONDS + self.reach * FRAME / SAMPLE_RATE
        else:
            self.net = StepNet.load(model)
            self.lookahead = model.lookahead
            self.delay = self.lookahead / self.rate + (WIN / 2) / SAMPLE_RATE

    def state(self) -> ModelState:
        return ModelState(self.net.state() if self.net is not None else None)

    def run(self, states: list[ModelState], windows: list[np.ndarray], audio: list[np.ndarray | None],
            ending: list[bool]) -> list[np.ndarray]:  # fmt: skip
        """Feed each stream its new analysis windows (`features.windows`) and, for a speech-encoder
        model, its new 16 kHz audio; per stream, the model frames [k, 52 + visemes] that became final
        (weights, then viseme logits). `ending`: the stream has no more audio."""
        if self.encoder is not None:
            return [self._encoded(*args) for args in zip(states, windows, audio, ending, strict=True)]
        every = log_mel_of(np.concatenate(windows))
        mel = [every[a:b] for a, b in itertools.pairwise(np.cumsum([0] + [len(w) for w in windows]).tolist())]
        look = self.lookahead
        mels = [  # the silence after the audio when a stream ends
            np.concatenate([m, np.full((look, N_MELS), SILENCE, np.float32)]) if end and s.fed + len(m) else m
            for s, m, end in zip(states, mel, ending, strict=True)
        ]
        if self.net is not None:
            raw = self.net.run([s.net for s in states], mels)  # type: ignore[misc]
        else:  # another architecture: recompute the receptive field through onnxruntime
            raw = [self._windowed(s, m) for s, m in zip(states, mels, strict=True)]
        out = []
        for s, m, r in zip(states, mels, raw, strict=True):
            skip = max(0, look - s.fed)  # the first outputs belong to frames before the start
            s.fed += m.shape[0]
            out.append(r[skip:])
        return out

    def _windowed(self, s: ModelState, mel: np.ndarray) -> np.ndarray:
        if not mel.shape[0]:
            return np.zeros((0, len(ARKIT_NAMES) + len(VISEMES)), np.float32)
        feats = np.concatenate([s.context, mel])
        first, look = s.fed - s.context.shape[0], self.lookahead  # first: the position of feats[0]
        w, v = self.model.run_features(feats)  # the outputs for positions first + look onwards
        s.context = feats[-self.model.receptive_field :]
        start = max(s.fed, first + look)  # positions before it are under `look`: dropped by `run`
        rows = np.concatenate([w, v], axis=1)[start - first - look :]
        return np.concatenate([np.zeros((start - s.fed, rows.shape[1]), np.float32), rows])

    def _encoded(self, s: ModelState, windows: np.ndarray, audio: np.ndarray | None, ending: bool) -> np.ndarray:
        """A speech-encoder model: encode the audio whose windows are complete, run the head where
        its reach is covered (everything when ending), and hand out as many model frames as the
        stream has feature frames (the head gives two per 20 ms encoder frame)."""
        assert self.encoder is not None and audio is not None
        s.fed += windows.shape[0]
        new = self.encoder.advance(s.encoder, audio, ending)
        s.features = np.concatenate([s.features, new])
        total = s.first + s.features.shape[0]
        upto = total if ending else total - self.reach
        if upto > s.heard:
            lo = max(s.first, s.heard - self.reach)
            w, v = self.model.run_features(s.features[lo - s.first :])
            rows = np.concatenate([w, v], axis=1)[2 * (s.heard - lo) : 2 * (upto - lo)]
            s.made = np.concatenate([s.made, rows])
            s.heard = upto
            keep = max(s.first, s.heard - self.reach)
            s.features, s.first = s.features[keep - s.first :], keep
        count = min(s.made.shape[0], s.fed - s.handed)
        out, s.made = s.made[:count], s.made[count:]
        s.handed += count
        return out
