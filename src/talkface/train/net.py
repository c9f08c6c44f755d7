"""The audio-to-face network: causal dilated convolutions over log-mel, with a fixed look-ahead.

Every convolution only looks back; the output for frame ``t`` is read ``lookahead`` frames later,
so the model sees that much future audio and nothing more. The same weights therefore run
offline and streaming. Inputs are log-mel frames and an emotion vector; outputs are the 52 ARKit
weights and viseme logits (an auxiliary head that also gives 2D viseme tracks).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..features import N_MELS
from ..phonemes import VISEMES
from ..rig import ARKIT_NAMES


@dataclass(frozen=True)
class NetConfig:
    """Architecture; stored with checkpoints and in the exported model's metadata."""

    channels: int = 128
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    kernel: int = 3
    lookahead: int = 8  # frames of 10 ms
    emotion_dim: int = 10

    @property
    def receptive_field(self) -> int:
        """Past frames that influence an output frame."""
        return sum((self.kernel - 1) * d for d in self.dilations)


class _Block(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation)
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(F.gelu(self.conv(F.pad(x, (self.pad, 0)))))


class FaceNet(nn.Module):
    """Log-mel [B, T, N_MELS] and emotion [B, E] → weights [B, T, 52] in [0, 1], viseme logits [B, T, V]."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.register_buffer("mel_mean", torch.zeros(N_MELS))
        self.register_buffer("mel_std", torch.ones(N_MELS))
        self.inp = nn.Conv1d(N_MELS, c, 1)
        self.emotion = nn.Linear(config.emotion_dim, c)
        self.blocks = nn.ModuleList(_Block(c, config.kernel, d) for d in config.dilations)
        self.weights = nn.Conv1d(c, len(ARKIT_NAMES), 1)
        self.visemes = nn.Conv1d(c, len(VISEMES), 1)

    def forward(self, mel: torch.Tensor, emotion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = ((mel - self.mel_mean) / self.mel_std).transpose(1, 2)
        x = self.inp(x) + self.emotion(emotion)[:, :, None]
        for block in self.blocks:
            x = block(x)
        x = F.gelu(x)
        return torch.sigmoid(self.weights(x)).transpose(1, 2), self.visemes(x).transpose(1, 2)


@dataclass(frozen=True)
class EncoderNetConfig:
    """A head over the speech encoder's features (`talkface.encoder`); stored like `NetConfig`."""

    channels: int = 256
    blocks: int = 2
    kernel: int = 5
    emotion_dim: int = 10

    #: Outputs belong to the frame they are made for (the head reads ahead by its receptive field,
    #: the encoder by its window), so none is read late as `NetConfig.lookahead` frames are.
    lookahead = 0

    @property
    def receptive_field(self) -> int:
        """Encoder frames either side of a frame that its outputs read (the head is not causal:
        the encoder itself reads seconds either side)."""
        return 1 + -(-self.blocks * (self.kernel // 2) // 2)


class EncoderFaceNet(nn.Module):
    """Encoder features [B, T, D] (20 ms frames) and emotion [B, E] → weights [B, 2T, 52] in [0, 1]
    and viseme logits [B, 2T, V] at 100 Hz: each encoder frame is repeated, then refined."""

    def __init__(self, config: EncoderNetConfig, feature_dim: int) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.inp = nn.Conv1d(feature_dim, c, 3, padding=1)
        self.emotion = nn.Linear(config.emotion_dim, c)
        pad = config.kernel // 2
        self.blocks = nn.ModuleList(nn.Conv1d(c, c, config.kernel, padding=pad) for _ in range(config.blocks))
        self.weights = nn.Conv1d(c, len(ARKIT_NAMES), 1)
        self.visemes = nn.Conv1d(c, len(VISEMES), 1)

    def forward(self, features: torch.Tensor, emotion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.gelu(self.inp(features.transpose(1, 2)) + self.emotion(emotion)[:, :, None])
        x = x.repeat_interleave(2, dim=2)
        for block in self.blocks:
            x = x + F.gelu(block(x))
        return torch.sigmoid(self.weights(x)).transpose(1, 2), self.visemes(x).transpose(1, 2)


class MeanOfHeads(nn.Module):
    """The mean of several `EncoderFaceNet` heads, written for inference (what `export_mean` exports).

    The same function, computed more cheaply: the heads' input convolutions are one matrix product
    (they read the same features), every convolution is a matrix product over its stacked taps
    (which onnxruntime's int8 matrix products can take), and each head's first block, which reads
    every encoder frame twice over, runs at 50 Hz as two phases (the taps that land on the same
    frame summed): 3 products in place of 5 for a kernel of 5."""

    def __init__(self, heads: list[EncoderFaceNet]) -> None:
        super().__init__()
        self.sizes = [h.config.channels for h in heads]
        self.kernels = [h.config.kernel for h in heads]
        with torch.no_grad():
            self.inp = nn.Parameter(torch.cat([_taps(h.inp.weight) for h in heads], 1))
            self.inp_bias = nn.Parameter(torch.cat([h.inp.bias + h.emotion.bias for h in heads]))
            self.emotion = nn.Parameter(torch.cat([h.emotion.weight.T for h in heads], 1))
            first = [_phases(h.blocks[0]) if h.blocks else None for h in heads]
            self.first = nn.ParameterList(nn.Parameter(w) for w, _ in filter(None, first))
            self.first_bias = nn.ParameterList(nn.Parameter(b) for _, b in filter(None, first))
            self.blocks = nn.ParameterList(nn.Parameter(_taps(b.weight)) for h in heads for b in h.blocks[1:])
            self.block_bias = nn.ParameterList(nn.Parameter(b.bias.clone()) for h in heads for b in h.blocks[1:])
            self.out = nn.ParameterList(
                nn.Parameter(torch.cat([h.weights.weight[:, :, 0], h.visemes.weight[:, :, 0]]).T) for h in heads
            )
            self.out_bias = nn.ParameterList(nn.Parameter(torch.cat([h.weights.bias, h.visemes.bias])) for h in heads)
        self.depths = [h.config.blocks for h in heads]

    def forward(self, features: torch.Tensor, emotion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.gelu(_stacked(features, -1, 1) @ self.inp + (emotion @ self.emotion + self.inp_bias)[:, None])
        weights, visemes, n = 0.0, 0.0, len(ARKIT_NAMES)
        first, block = 0, 0  # (heads without blocks have no first block)
        for i, (xh, kernel, depth) in enumerate(zip(x.split(self.sizes, -1), self.kernels, self.depths, strict=True)):
            b, t, c = xh.shape
            y = xh[:, :, None].expand(b, t, 2, c).reshape(b, 2 * t, c)  # each encoder frame twice
            if depth:
                lo, hi = _phase_offsets(kernel)
                phases = _stacked(xh, lo, hi) @ self.first[first] + self.first_bias[first]
                y = y + F.gelu(phases.reshape(b, 2 * t, c))
                first += 1
            for _ in range(depth - 1):
                pad = kernel // 2
                y = y + F.gelu(_stacked(y, -pad, pad) @ self.blocks[block] + self.block_bias[block])
                block += 1
            out = y @ self.out[i] + self.out_bias[i]
            weights = weights + torch.sigmoid(out[..., :n])
            visemes = visemes + out[..., n:]
        return weights / len(self.sizes), visemes / len(self.sizes)


def _taps(weight: torch.Tensor) -> torch.Tensor:
    """A Conv1d weight [out, in, k] as one matrix [k · in, out] over `_stacked` taps."""
    return weight.permute(2, 1, 0).reshape(-1, weight.shape[0]).clone()


def _stacked(x: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """[B, T, C] → [B, T, (hi − lo + 1) · C]: frames t + lo … t + hi side by side (zeros past the ends)."""
    t = x.shape[1]
    padded = F.pad(x, (0, 0, -lo, hi))
    return torch.cat([padded[:, j : j + t] for j in range(hi - lo + 1)], -1)


def _phase_offsets(kernel: int) -> tuple[int, int]:
    """Encoder frames (relative) that a kernel centred on a repeated frame reads: even and odd phase together."""
    pad = kernel // 2
    return (-pad) // 2, (pad + 1) // 2


def _phases(conv: nn.Conv1d) -> tuple[torch.Tensor, torch.Tensor]:
    """A convolution over frames each repeated twice, as one matrix over the unrepeated frames that
    gives both outputs of each frame ([taps · in, 2 · out]: even, then odd) and its bias."""
    out, inp, kernel = conv.weight.shape
    pad = kernel // 2
    lo, hi = _phase_offsets(kernel)
    phases = torch.zeros(2, out, inp, hi - lo + 1)
    for phase in (0, 1):
        for tap in range(kernel):
            phases[phase, :, :, (phase + tap - pad) // 2 - lo] += conv.weight[:, :, tap]
    return torch.cat([_taps(phases[0]), _taps(phases[1])], 1), torch.cat([conv.bias, conv.bias]).detach().clone()
