import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from talkface import TalkfaceError
from talkface.coarticulation import animate_phones
from talkface.metrics import lip_aperture, mouth_scores, rounding
from talkface.phonemes import TimedPhone


def seq(*spec: tuple[str, float], lead: float = 0.3) -> list[TimedPhone]:
    """Phones with the given durations, framed by silence."""
    out, t = [TimedPhone(0, lead, "sil")], lead
    for phone, dur in spec:
        out.append(TimedPhone(t, t + dur, phone))
        t += dur
    return [*out, TimedPhone(t, t + 0.4, "sil")]


def value(anim, series, t):
    return float(series[round(t * anim.fps)])


@pytest.mark.parametrize("fps", [24, 25, 30, 50, 60])
@pytest.mark.parametrize("bilabial_dur", [0.015, 0.04, 0.09])
def test_lips_always_close_on_bilabials(fps, bilabial_dur):
    phones = seq(("aa", 0.12), ("b", bilabial_dur), ("aa", 0.1), ("m", bilabial_dur), ("iy", 0.1), ("p", bilabial_dur))
    anim = animate_phones(phones, fps)
    scores = mouth_scores(anim, phones)
    assert scores.closed_on_bilabials == 1.0
    assert scores.counts["bilabials"] == 3


def test_open_vowels_open_and_pauses_rest():
    phones = seq(("hh", 0.06), ("aa", 0.15), ("t", 0.05), ("ae", 0.12))
    anim = animate_phones(phones, 30)
    scores = mouth_scores(anim, phones)
    assert scores.open_on_open_vowels == 1.0 and scores.rest_in_pauses == 1.0


def test_rest_in_silence_is_exactly_neutral():
    anim = animate_phones(seq(("aa", 0.2), lead=1.0), 30)
    assert np.abs(anim.weights[: round(0.5 * 30)]).max() < 0.01


def test_anticipatory_rounding():
    # "stew" vs "stee": rounding of /uw/ already shows during /s t/
    stew = animate_phones(seq(("s", 0.1), ("t", 0.06), ("uw", 0.2)), 60)
    stee = animate_phones(seq(("s", 0.1), ("t", 0.06), ("iy", 0.2)), 60)
    t_mid = 0.3 + 0.1 + 0.03
    assert value(stew, rounding(stew), t_mid) > value(stee, rounding(stee), t_mid) + 0.2
    assert mouth_scores(stew, seq(("s", 0.1), ("t", 0.06), ("uw", 0.2))).rounded_on_rounded == 1.0


def test_jaw_and_lips_are_separate():
    # /t/ hardly uses the jaw: between open vowels the jaw stays well open
    at = animate_phones(seq(("aa", 0.15), ("t", 0.06), ("aa", 0.15)), 60)
    assert value(at, at["jawOpen"], 0.3 + 0.15 + 0.03) > 0.3
    # /p/ closes the lips even though the jaw is still partly open around it
    ap = animate_phones(seq(("aa", 0.15), ("p", 0.06), ("aa", 0.15)), 60)
    t = 0.3 + 0.15 + 0.03
    assert value(ap, ap["jawOpen"], t) > 0.1
    assert value(ap, lip_aperture(ap), t) < 0.05


def test_labiodental_and_dental_articulations():
    anim = animate_phones(seq(("aa", 0.12), ("f", 0.08), ("aa", 0.12), ("th", 0.08), ("aa", 0.1)), 30)
    f_mid, th_mid = 0.3 + 0.12 + 0.04, 0.3 + 0.32 + 0.04
    assert value(anim, anim["mouthRollLower"], f_mid) > 0.4
    assert value(anim, anim["tongueOut"], th_mid) > 0.4
    assert value(anim, anim["tongueOut"], f_mid) < 0.1


def test_onset_anticipates_speech_and_motion_is_smooth():
    phones = seq(("m", 0.08), ("aa", 0.2), lead=0.6)
    anim = animate_phones(phones, 60)
    press = anim["mouthPressLeft"]
    # lips start to press together before the sound begins, not at the first sample
    assert value(anim, press, 0.6 - 0.04) > 0.02
    assert value(anim, press, 0.6 - 0.3) < 0.01
    # no jumps: the largest frame-to-frame change of any channel stays small at 60 fps
    assert np.abs(np.diff(anim.weights, axis=0)).max() < 0.25


def test_covers_requested_duration_and_bounds():
    anim = animate_phones(seq(("aa", 0.2)), 25, duration=3.0)
    assert anim.num_frames == 75
    assert anim.weights.min() >= 0 and anim.weights.max() <= 1
    anim.validate()


def test_unknown_phone_is_rejected():
    with pytest.raises(TalkfaceError, match="unknown phones"):
        animate_phones([TimedPhone(0, 0.1, "xx")], 30)


# phone tables as hand-made ones come: overlapping, unsorted, some silences inside others
_PHONES = st.tuples(st.floats(0, 20), st.floats(0, 20), st.sampled_from(["sil", "sil", "aa", "m"]))


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(_PHONES, min_size=1, max_size=12), fps=st.floats(1, 240))
def test_the_animation_covers_every_phone_however_they_overlap(rows, fps):
    """A silence inside another merged to the inner one's end: [sil 0-10, sil 2-3] gave 3 s, not 10."""
    phones = [TimedPhone(a, a + d, p) for a, d, p in rows]
    end = max([p.end for p in phones if p.end > p.start], default=0.0)
    assert animate_phones(phones, fps).num_frames == max(1, math.ceil(end * fps - 1e-9))


@pytest.mark.parametrize(
    ("phones", "duration"),
    [
        ([TimedPhone(0, math.nan, "aa")], None),  # was a ValueError from numpy
        ([TimedPhone(math.nan, 1, "aa")], None),
        ([TimedPhone(0, math.inf, "aa")], None),  # was an OverflowError
        ([TimedPhone(0, 1e6, "aa")], None),  # a table in milliseconds: was a MemoryError of 5.8 GB
        ([TimedPhone(0, 1, "aa")], math.nan),
        ([TimedPhone(0, 1, "aa")], 1e9),
    ],
)
def test_phone_times_that_are_not_seconds_of_speech_are_one_error(phones, duration):
    with pytest.raises(TalkfaceError, match="must be finite"):
        animate_phones(phones, 30, duration)
