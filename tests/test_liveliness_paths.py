"""Liveliness is one implementation: the same audio and seed give the same blinks, saccades and nods
through `Animator.animate` (the file model, the whole clip at once), a stream fed in 20 ms chunks
(the live model) and the server's WebSocket stream."""

import asyncio

import numpy as np
import pytest
from serving import running
from test_serve import stream_file

from talkface import Animation, Animator, Style, load_audio

SEED = 5
CHUNK = 320  # 20 ms at 16 kHz


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """About 12 s of real speech with pauses (ARCTIC a0009 three times, the middle one quieter)."""
    clip = load_audio("tests/data/arctic_a0009.wav")
    gap = np.zeros(int(0.9 * 16000), np.float32)
    return np.concatenate([clip, gap, 0.5 * clip, gap, clip])


def events(weights: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """Frames where the left lid closes past half, and where the eyes start to move after resting."""
    col = {n: i for i, n in enumerate(names)}
    lid = weights[:, col["eyeBlinkLeft"]]
    gaze = weights[:, [col["leftEyeYaw"], col["leftEyePitch"]]]
    moving = np.concatenate([[False], np.abs(np.diff(gaze, axis=0)).max(axis=1) > 1e-6])
    return {
        "blinks": np.flatnonzero((lid[1:] > 0.5) & (lid[:-1] <= 0.5)) + 1,
        "saccades": np.flatnonzero(moving[1:] & ~moving[:-1]) + 1,
    }


def test_the_same_audio_and_seed_give_the_same_blinks_saccades_and_nods(speech):
    animator = Animator(style=Style(seed=SEED))
    offline = animator.animate(speech, sample_rate=16000)
    session = animator.stream()
    streamed = Animation.join([*(session.push(speech[i : i + CHUNK]) for i in range(0, len(speech), CHUNK)),
                               session.flush()])  # fmt: skip
    with running() as (url, _):  # (`stream_file` sends 20 ms chunks)
        got = asyncio.run(stream_file(url, speech, f"format=f32&output=binary&seed={SEED}"))
    served, names = got["weights"], got["ready"]["names"]
    assert streamed.num_frames == offline.num_frames == len(served) and list(offline.names) == names
    expected = events(offline.weights, names)
    assert len(expected["blinks"]) >= 2 and len(expected["saccades"]) >= 8
    for weights in (streamed.weights, served):
        got = events(weights, names)
        for kind in ("blinks", "saccades"):
            assert len(got[kind]) == len(expected[kind]), kind
            assert np.abs(got[kind] - expected[kind]).max() <= 1, kind  # within one frame
        # the head's pitch and roll carry the nods (and its wander, the voice's pitch, the gaze):
        # the same curves, so the same nods at the same times
        head = [names.index(n) for n in ("headYaw", "headPitch", "headRoll")]
        np.testing.assert_allclose(weights[:, head], offline.weights[:, head], atol=1e-5)
    other = Animator(style=Style(seed=SEED + 1)).animate(speech, sample_rate=16000)
    assert not np.array_equal(events(other.weights, names)["saccades"], expected["saccades"])
