"""The packaged conv net run step by step in numpy, with a cache per layer, for streaming.

The ONNX graph recomputes a frame's whole receptive field (126 past frames) on every call, which
would cost a stream ~35× its real work at 40 ms per call. The network is causal dilated
convolutions (`talkface.train.net`), so each layer only needs its last ``2·dilation`` inputs to
make the next output: `StepNet` reads the weights out of the same ``.onnx`` file, keeps those
inputs per stream, and runs many streams' new frames as one matrix product per layer. The inputs
kept live in one ring buffer per layer for all streams (a stream owns a row of each), so a step
reads just the rows its taps need, for every stream in one indexing operation.

`StepNet.load` checks itself against onnxruntime on random input and returns None when the
file holds some other architecture; callers then fall back to windowed onnxruntime runs.
"""

from __future__ import annotations

import functools
import math
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .features import N_MELS

_FLOAT = 1  # ONNX TensorProto.FLOAT
_TOLERANCE = 1e-4


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int, bytes | int]]:
    """(field number, wire type, value) of each field of one protobuf message."""
    out: list[tuple[int, int, bytes | int]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, wire, value))
        elif wire == 2:
            size, pos = _varint(buf, pos)
            out.append((number, wire, buf[pos : pos + size]))
            pos += size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            out.append((number, wire, buf[pos : pos + size]))
            pos += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


def read_initializers(path: str | Path) -> dict[str, np.ndarray]:
    """The float weight tensors of an ONNX model by name (ModelProto.graph.initializer)."""
    tensors: dict[str, np.ndarray] = {}
    for number, _, graph in _fields(Path(path).read_bytes()):
        if number != 7 or not isinstance(graph, bytes):  # ModelProto.graph
            continue
        for g_number, _, tensor in _fields(graph):
            if g_number != 5 or not isinstance(tensor, bytes):  # GraphProto.initializer
                continue
            dims: list[int] = []
            dtype, name, raw = 0, "", b""
            for t_number, _, value in _fields(tensor):
                if t_number == 1:  # dims, packed or not
                    if isinstance(value, bytes):
                        p = 0
                        while p < len(value):
                            d, p = _varint(value, p)
                            dims.append(d)
                    else:
                        dims.append(value)
                elif t_number == 2 and isinstance(value, int):
                    dtype = value
                elif t_number == 8 and isinstance(value, bytes):
                    name = value.decode()
                elif t_number in (4, 9) and isinstance(value, bytes):  # float_data (packed) or raw_data
                    raw = value if t_number == 9 else raw + value
            if dtype == _FLOAT:
                tensors[name] = np.frombuffer(raw, "<f4").reshape(dims).astype(np.float32)
    return tensors


# erf in float32 precision (a rational approximation on [-4, 4], as in Eigen and XLA)
_ERF_A = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
          -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)  # fmt: skip
_ERF_B = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
          -1.42647390514189e-02)  # fmt: skip


def _erf(x: np.ndarray) -> np.ndarray:
    """erf of float32 `x`, computed in place in `x` (Horner's rule in place: no temporaries per term)."""
    np.clip(x, -4.0, 4.0, out=x)
    x2 = x * x
    p = np.full_like(x, _ERF_A[0])
    for a in _ERF_A[1:]:
        p *= x2
        p += np.float32(a)
    q = np.full_like(x, _ERF_B[0])
    for b in _ERF_B[1:]:
        q *= x2
        q += np.float32(b)
    x *= p
    x /= q
    return x


def gelu(x: np.ndarray) -> np.ndarray:
    """The exact (erf) GELU that torch's F.gelu computes."""
    erf = _erf(x * np.float32(1 / math.sqrt(2)))
    erf += np.float32(1.0)
    erf *= x
    erf *= np.float32(0.5)
    return erf


@functools.lru_cache(maxsize=256)  # (not one per step size ever seen: 3000 sizes × 6 blocks held 700 MB)
def _tap_rows(n: int, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a step of `n` new frames through a block of dilation `d`: the past inputs its taps read
    (offsets before the first new frame, which the ring holds), where each tap finds its input in
    those followed by the new ones ([n, 3]: t - 2d, t - d, t), and the new inputs later steps may read."""
    taps = np.arange(n)[:, None] + np.array([-2 * d, -d, 0])
    old = np.unique(taps[taps < 0])
    where = np.where(taps < 0, np.searchsorted(old, taps), old.size + taps)
    rows = old, where, np.arange(max(0, n - 2 * d), n)
    for r in rows:
        r.flags.writeable = False  # (shared by every step of that shape)
    return rows


@dataclass
class NetState:
    """One stream's memory: its row of the `StepNet`'s ring buffers (the last ``2·dilation`` inputs of
    each block, zeros at the start, as the network's causal padding; given back when the state is
    garbage), its emotion's contribution to the first layer, and the frames it has been fed."""

    slot: int
    bias: np.ndarray
    frames: int = field(default=0)


@dataclass(frozen=True)
class _Block:
    dilation: int
    conv: np.ndarray  # [3c, c]: the three taps (t - 2d, t - d, t) stacked
    conv_bias: np.ndarray
    mix: np.ndarray  # [c, c]
    mix_bias: np.ndarray


class StepNet:
    """FaceNet's forward pass, a few frames at a time, for many streams at once."""

    def __init__(self, weights: dict[str, np.ndarray], dilations: list[int]) -> None:
        w = weights
        self.mean, self.std = w["mel_mean"], w["mel_std"]
        self.inp, self.inp_bias = w["inp.weight"][:, :, 0].T.copy(), w["inp.bias"]
        self.emotion, self.emotion_bias = w["emotion.weight"].T.copy(), w["emotion.bias"]
        self.blocks = []
        for i, d in enumerate(dilations):
            conv = w[f"blocks.{i}.conv.weight"]
            if conv.shape[2] != 3:
                raise ValueError("only kernel size 3 is supported")
            self.blocks.append(
                _Block(
                    d,
                    np.concatenate([conv[:, :, j].T for j in range(3)]).astype(np.float32),
                    w[f"blocks.{i}.conv.bias"],
                    w[f"blocks.{i}.mix.weight"][:, :, 0].T.copy(),
                    w[f"blocks.{i}.mix.bias"],
                )
            )
        heads = np.concatenate([w["weights.weight"][:, :, 0], w["visemes.weight"][:, :, 0]]).T.copy()
        self.heads, self.heads_bias = heads, np.concatenate([w["weights.bias"], w["visemes.bias"]])
        self.num_weights = w["weights.bias"].size
        self.channels = self.inp.shape[1]
        # per block [slots, 2·dilation, channels]: input t of a stream at row t mod 2·dilation of its slot
        self.rings = [np.zeros((0, 2 * b.dilation, self.channels), np.float32) for b in self.blocks]
        self.free: list[int] = []

    @classmethod
    def load(cls, model: object) -> StepNet | None:
        """The step runner for a loaded `FaceModel`, or None if its file is not this architecture."""
        try:
            net = cls(read_initializers(model.path), list(model.meta["net"]["dilations"]))  # type: ignore[attr-defined]
        except (KeyError, ValueError, IndexError, TypeError):
            return None
        mel = np.random.default_rng(0).normal(-5, 3, (200, N_MELS)).astype(np.float32)
        emotion = np.linspace(0, 1, model.emotion_dim, dtype=np.float32)  # type: ignore[attr-defined]
        want_w, want_v = model.run_features(mel, emotion)  # type: ignore[attr-defined]
        look = model.lookahead  # type: ignore[attr-defined]
        state = net.state(emotion)
        got = np.concatenate([net.run([state], [mel[i : i + 50]])[0] for i in range(0, 200, 50)])[look:]
        ok = got.shape == (want_w.shape[0], want_w.shape[1] + want_v.shape[1])
        if not ok or not np.allclose(got, np.concatenate([want_w, want_v], 1), atol=_TOLERANCE):
            return None
        return net

    def state(self, emotion: np.ndarray | None = None) -> NetState:
        """A fresh stream (all-zero history) with an emotion vector (None: zeros)."""
        if not self.free:  # twice the slots (the old rows copied once)
            have = self.rings[0].shape[0]
            self.rings = [np.concatenate([r, np.zeros_like(r, shape=(max(have, 4), *r.shape[1:]))]) for r in self.rings]
            self.free = list(range(self.rings[0].shape[0] - 1, have - 1, -1))
        slot = self.free.pop()
        for ring in self.rings:
            ring[slot] = 0.0
        state = NetState(slot, self.emotion_bias_for(emotion))
        weakref.finalize(state, self.free.append, slot)
        return state

    def emotion_bias_for(self, emotion: np.ndarray | None) -> np.ndarray:
        """The first layer's bias for an emotion vector (the model's own emotion input)."""
        bias = self.inp_bias + self.emotion_bias
        if emotion is not None:
            bias = bias + np.asarray(emotion, np.float32).reshape(-1) @ self.emotion
        return bias.astype(np.float32)

    def run(self, states: list[NetState], mels: list[np.ndarray]) -> list[np.ndarray]:
        """Advance each stream by its new log-mel frames [n_i, N_MELS]; per stream, outputs
        [n_i, 52 + visemes]: sigmoid weights then viseme logits, for the same frames.

        Streams with the same number of new frames run together, a few array operations per
        layer whatever their number."""
        groups: dict[int, list[int]] = {}
        for i, m in enumerate(mels):
            groups.setdefault(m.shape[0], []).append(i)
        out: list[np.ndarray] = [np.zeros((0, self.heads.shape[1]), np.float32)] * len(mels)
        for n, members in groups.items():
            if n:
                result = self._run_group([states[i] for i in members], np.stack([mels[i] for i in members]))
                for j, i in enumerate(members):
                    out[i] = result[j]
        return out

    def _run_group(self, states: list[NetState], mel: np.ndarray) -> np.ndarray:
        """`mel` [streams, n, N_MELS] → outputs [streams, n, 52 + visemes]."""
        count, n, _ = mel.shape
        c = self.channels
        x = (mel - self.mean) / self.std @ self.inp + np.stack([s.bias for s in states])[:, None, :]
        slots = np.array([s.slot for s in states])[:, None]
        fed = np.array([s.frames for s in states])[:, None]  # each stream's time of its first new frame
        for ring, block in zip(self.rings, self.blocks, strict=True):
            d = block.dilation
            old, where, last = _tap_rows(n, d)
            both = np.concatenate([ring[slots, (fed + old) % (2 * d)], x], axis=1)  # [count, kept + n, c]
            y = gelu(both[:, where].reshape(count * n, 3 * c) @ block.conv + block.conv_bias)
            ring[slots, (fed + last) % (2 * d)] = x[:, last]
            x = x + (y @ block.mix + block.mix_bias).reshape(count, n, c)
        result = gelu(x.reshape(count * n, c)) @ self.heads + self.heads_bias
        result[:, : self.num_weights] = 1.0 / (1.0 + np.exp(-result[:, : self.num_weights]))
        for s in states:
            s.frames += n
        return result.reshape(count, n, -1)
