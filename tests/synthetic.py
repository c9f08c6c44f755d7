"""Synthetic speech for tests: timings of random phones separated by pauses, and random sentences to speak."""

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


#: Words for minutes of varied synthetic speech (espeak-ng), spoken as random sentences.
VOCABULARY = """time year people way day man thing woman life child world school state family student group
country problem hand part place case week company system program question work government number night
point home water room mother area money story fact month lot right study book eye job word business issue
side kind head house service friend father power hour game line end member law car city community name
president team minute idea kid body information back parent face level office door health person art war
history party result change morning reason research girl guy moment air teacher force education foot boy
age policy music market sense nation plan college interest death experience effect class control care
field development role effort rate heart leader light voice wife police mind price report decision son
view town road arm difference value building action model season society tax director position player
record paper space ground form event official matter center couple site project activity star table
need court oil situation cost industry figure street image phone data picture practice piece land product
doctor wall patient worker news test movie north love support technology step baby computer type bubble
bottle blue big bright brown black purple maple mumble pebble"""


def sentences(count: int, seed: int = 0) -> str:
    """`count` sentences of 4–11 random words of `VOCABULARY`, for minutes of varied TTS speech."""
    rng, words = np.random.default_rng(seed), VOCABULARY.split()
    return " ".join(" ".join(rng.choice(words, rng.integers(4, 12))).capitalize() + "." for _ in range(count))
