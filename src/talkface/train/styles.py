"""Random emotional styles for the synthetic training corpus."""

from __future__ import annotations

import numpy as np

from ..post import EMOTIONS, EmotionSettings, EmotionTrack, LifeConfig, Style


def random_style(rng: np.random.Generator, duration: float = 4.0) -> Style:
    """A random emotion for a clip of `duration` s (no liveliness), for corpus variation.

    A quarter of the styles are neutral; the rest hold one or two emotions at a random
    strength, and half of those change to another emotion part-way through, so a model
    trained on them sees lips that stay right under every emotion and its transitions.
    """
    if rng.random() < 0.25:
        track, settings = EmotionTrack.constant({}), EmotionSettings(transition=0.0)
    else:

        def state() -> dict[str, float]:
            names = rng.choice(len(EMOTIONS), size=int(rng.integers(1, 3)), replace=False)
            return {EMOTIONS[i]: float(rng.uniform(0.3, 1.0)) for i in names}

        keys = [{"time": 0.0, "emotions": state()}]
        if rng.random() < 0.5 and duration > 1.0:
            keys.append({"time": float(rng.uniform(0.3, 0.7) * duration), "emotions": state()})
        track = EmotionTrack.from_keyframes(keys)
        settings = EmotionSettings(transition=float(rng.uniform(0.1, 0.6)), max_emotions=3)
    return Style(track, settings, life=LifeConfig.off(), seed=int(rng.integers(1 << 31)))
