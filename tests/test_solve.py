import numpy as np
import pytest

from talkface import TalkfaceError
from talkface.head import Head
from talkface.rig import INDEX, LEFT_RIGHT_PAIRS
from talkface.train.solve import SolveWeights, solve

PAIRS = [(INDEX[a], INDEX[b]) for a, b in LEFT_RIGHT_PAIRS]


def speaking(frames: int = 90) -> np.ndarray:
    t = np.arange(frames) / 30
    w = np.zeros((frames, 52))
    w[:, INDEX["jawOpen"]] = 0.4 + 0.35 * np.sin(6 * t)
    w[:, INDEX["mouthSmileLeft"]] = w[:, INDEX["mouthSmileRight"]] = np.clip(np.sin(t), 0, 1)
    w[:, INDEX["eyeBlinkLeft"]] = w[:, INDEX["eyeBlinkRight"]] = (np.sin(5 * t) > 0.9) * 1.0
    w[:, INDEX["mouthPucker"]] = np.clip(-np.sin(2 * t), 0, 0.8)
    return w


def test_recovers_the_weights_that_made_the_mesh():
    head = Head.load()
    truth = speaking()
    est = solve(head.apply(truth), head.vertices, head.targets, PAIRS)
    assert est.shape == truth.shape and est.min() >= 0 and est.max() <= 1
    assert np.abs(est - truth).max() < 0.02


def test_bounds_and_regularisers_act():
    head = Head.load()
    truth = speaking(30)
    frames = head.apply(np.clip(truth * 1.5, 0, None))  # jaw asks for up to 1.1: beyond the shape's range
    assert solve(frames, head.vertices, head.targets).max() <= 1.0
    noisy = head.apply(truth) + np.random.default_rng(0).normal(0, 2e-4, (30, head.num_vertices, 3))
    rough = solve(noisy, head.vertices, head.targets, PAIRS, SolveWeights(0, 0, 0, 0))
    smooth = solve(noisy, head.vertices, head.targets, PAIRS, SolveWeights(temporal=1.0))
    assert np.abs(np.diff(smooth, axis=0)).sum() < np.abs(np.diff(rough, axis=0)).sum()
    sparse = solve(noisy, head.vertices, head.targets, PAIRS, SolveWeights(l1=0.05))
    assert (sparse > 0.01).sum() < (rough > 0.01).sum()
    # symmetry pulls mirrored shapes together
    lopsided = truth.copy()
    lopsided[:, INDEX["mouthSmileLeft"]] = 0
    sym = solve(head.apply(lopsided), head.vertices, head.targets, PAIRS, SolveWeights(symmetry=5.0))
    free = solve(head.apply(lopsided), head.vertices, head.targets, PAIRS, SolveWeights(symmetry=0.0))
    gap = lambda w: np.abs(w[:, INDEX["mouthSmileLeft"]] - w[:, INDEX["mouthSmileRight"]]).mean()  # noqa: E731
    assert gap(sym) < 0.5 * gap(free)


def test_mismatched_shapes_are_refused():
    head = Head.load()
    with pytest.raises(TalkfaceError, match="solve needs"):
        solve(head.apply(speaking(3))[:, :10], head.vertices, head.targets)


def test_positions_that_are_not_finite_numbers_are_refused():
    """A NaN in the neutral mesh gave NaN weights, which trained a NaN model."""
    head = Head.load()
    frames, neutral = head.apply(speaking(3)), head.vertices.copy()
    neutral[0, 0] = np.nan
    with pytest.raises(TalkfaceError, match="non-finite"):
        solve(frames, neutral, head.targets)
    with pytest.raises(TalkfaceError, match="must be numbers"):
        solve(np.full(frames.shape, "x"), head.vertices, head.targets)
