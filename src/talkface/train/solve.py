"""Mesh animation → blendshape weights: a bounded least-squares solve, as Audio2Face's.

For vertex frames X [T, V, 3], a neutral mesh n [V, 3] and shape offsets D [K, V, 3] it minimises

    Σ_t ‖D·w_t − (x_t − n)‖² + l2‖w_t‖² + l1·Σw_t + temporal‖w_t − w_{t−1}‖² + symmetry Σ(w_left − w_right)²

under 0 ≤ w ≤ 1, for all frames at once (accelerated projected gradient on the K×K Gram matrix,
so the cost per iteration does not grow with the vertex count). It turns vertex caches into
ARKit training targets and retargets a character's mesh animation onto ARKit weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import TalkfaceError


@dataclass(frozen=True)
class SolveWeights:
    """Strengths of the regularisers (Audio2Face's defaults are of this order)."""

    l1: float = 1e-4
    l2: float = 1e-4
    temporal: float = 1e-3
    symmetry: float = 1e-3


def solve(
    frames: np.ndarray,
    neutral: np.ndarray,
    shapes: np.ndarray,
    pairs: Sequence[tuple[int, int]] = (),
    weights: SolveWeights = SolveWeights(),
    iterations: int = 400,
) -> np.ndarray:
    """Weights [T, K] in [0, 1] that best rebuild `frames` [T, V, 3] from `neutral` [V, 3] + `shapes` [K, V, 3].

    `pairs` lists (left, right) shape indices that the symmetry term pulls together. Terms are
    scaled by the shapes' mean squared size, so their strengths do not depend on the mesh's units.
    """
    try:
        frames, neutral, shapes = (np.asarray(a, np.float64) for a in (frames, neutral, shapes))
    except (TypeError, ValueError):  # (text, or arrays of other arrays)
        raise TalkfaceError("solve: vertex positions must be numbers") from None
    if frames.ndim != 3 or frames.shape[1:] != neutral.shape or shapes.shape[1:] != neutral.shape:
        raise TalkfaceError(
            f"solve needs frames [T, V, 3], neutral [V, 3], shapes [K, V, 3]; got "
            f"{list(frames.shape)}, {list(neutral.shape)}, {list(shapes.shape)}"
        )
    if not (np.isfinite(frames).all() and np.isfinite(neutral).all() and np.isfinite(shapes).all()):
        raise TalkfaceError("solve: non-finite vertex positions")
    k = shapes.shape[0]
    basis = shapes.reshape(k, -1)
    scale = float(np.mean(np.sum(basis**2, axis=1))) or 1.0
    gram = basis @ basis.T / scale
    rhs = (frames.reshape(frames.shape[0], -1) - neutral.reshape(1, -1)) @ basis.T / scale
    sym = np.zeros((k, k))
    for left, right in pairs:
        sym[[left, right], [left, right]] += 1.0
        sym[left, right] -= 1.0
        sym[right, left] -= 1.0
    quad = gram + weights.l2 * np.eye(k) + weights.symmetry * sym
    step = 1.0 / (np.linalg.eigvalsh(quad).max() + 4.0 * weights.temporal)

    def gradient(w: np.ndarray) -> np.ndarray:
        g = w @ quad - rhs + weights.l1
        if weights.temporal and w.shape[0] > 1:
            d = np.diff(w, axis=0)  # gradient of Σ‖w_t − w_{t−1}‖²
            g[:-1] -= weights.temporal * d
            g[1:] += weights.temporal * d
        return g

    w = y = np.clip(np.linalg.solve(quad, rhs.T).T, 0.0, 1.0)
    momentum = 1.0
    for _ in range(iterations):
        w_next = np.clip(y - step * gradient(y), 0.0, 1.0)
        momentum_next = 0.5 * (1 + np.sqrt(1 + 4 * momentum**2))
        y = w_next + (momentum - 1) / momentum_next * (w_next - w)
        w, momentum = w_next, momentum_next
    return w.astype(np.float32)
