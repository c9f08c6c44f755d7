"""Synthetic speech timings for tests: phrases of random phones separated by pauses."""

import numpy as np

from talkface.phonemes import ARPABET, SILENCE, TimedPhone


def phrases(seconds: float, seed: int = 0, pause: tuple[float, float] = (0.3, 0.9)) -> list[TimedPhone]:
    """Phrases of 1.5–4 s of random phones (50–150 ms each) with pauses between, for `seconds` s."""
    rng = np.random.default_rng(seed)
    inventory = [p for p in ARPABET if p != SILENCE]
    phones, t = [TimedPhone(0.0, 0.4, SILENCE)], 0.4
    while t < seconds:
        end = min(seconds, t + rng.uniform(1.5, 4.0))
        while t < end:
            d = rng.uniform(0.05, 0.15)
            phones.append(TimedPhone(t, t + d, str(rng.choice(inventory))))
            t += d
        p = rng.uniform(*pause)
        phones.append(TimedPhone(t, t + p, SILENCE))
        t += p
    return phones


def sequence(*spec: tuple[str, float], lead: float = 0.5, tail: float = 0.8) -> list[TimedPhone]:
    """Phones with the given durations, framed by silence."""
    out, t = [TimedPhone(0, lead, SILENCE)], lead
    for phone, dur in spec:
        out.append(TimedPhone(t, t + dur, phone))
        t += dur
    return [*out, TimedPhone(t, t + tail, SILENCE)]
