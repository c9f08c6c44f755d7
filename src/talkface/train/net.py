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
