"""Liveliness: blink, gaze and head statistics on a minute of speech, prosody, switches, seeds."""

import math

import numpy as np
import pytest
from conftest import DATA
from synthetic import phrases

from talkface import TalkfaceError
from talkface.align import read_htk_labels
from talkface.audio import load_audio
from talkface.coarticulation import animate_phones
from talkface.phonemes import TimedPhone
from talkface.post import LifeConfig, Style
from talkface.post.clip_prosody import analyse
from talkface.post.life import Layers, Life
from talkface.post.prosody import GRID
from talkface.rig import ARKIT_NAMES, POSE_NAMES

FPS = 30
MINUTE = phrases(60.0, seed=3)
BASE = animate_phones(MINUTE, FPS, 60.0)
PROSODY = analyse(60.0, MINUTE)


def generate(config: LifeConfig, seed: int = 0) -> Layers:
    """The minute's liveliness as `Style.apply` draws it: the whole clip in one block."""
    return Life(config, FPS, seed, zero_lag=True, breath_ahead=True).step(0, PROSODY.cues(FPS, BASE.num_frames))


def closures(lid: np.ndarray, fps: float) -> list[tuple[int, int]]:
    """(first frame, frames) of each run with the lid more than half closed."""
    closed = np.concatenate([[False], lid > 0.5, [False]])
    edges = np.flatnonzero(np.diff(closed.astype(int)))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


@pytest.fixture(scope="module")
def minute():
    return [Style(seed=s).apply(BASE, MINUTE) for s in range(6)]


def test_a_minute_has_10_to_30_blinks_of_realistic_length(minute):
    counts = [len(closures(a["eyeBlinkLeft"], FPS)) for a in minute]
    assert all(10 <= c <= 30 for c in counts), counts
    at60 = Style(seed=1).apply(animate_phones(MINUTE, 60, 60.0), MINUTE)
    runs = closures(at60["eyeBlinkLeft"], 60)
    # a blink is over half closed for a fraction of its 100–400 ms
    assert all(1 <= n <= 0.3 * 60 for _, n in runs)
    lid = at60["eyeBlinkLeft"]
    full = [a for a, n in runs if lid[a : a + n].max() > 0.8]
    assert len(full) >= 0.9 * len(runs)  # nearly all blinks close the eye


def test_blink_intervals_are_irregular_and_eyes_differ_slightly(minute):
    layers = generate(LifeConfig())
    gaps = np.diff(layers.blink_times)
    assert gaps.min() >= 0.25 and 1.5 < np.median(gaps) < 5.0
    assert gaps.std() / gaps.mean() > 0.3  # not a metronome
    left, right = minute[0]["eyeBlinkLeft"], minute[0]["eyeBlinkRight"]
    assert not np.allclose(left, right) and np.corrcoef(left, right)[0, 1] > 0.8


def test_more_blinks_at_phrase_ends():
    ends = [a for a, _ in PROSODY.pauses(0.25)]
    near, total = 0, 0
    for seed in range(10):
        times = np.array(generate(LifeConfig(), seed).blink_times)
        near += sum(np.any((times > a) & (times < a + 0.4)) for a in ends)
        total += len(times)
    window_share = len(ends) * 0.4 / 60.0  # share of the minute within 0.4 s after a phrase end
    assert near / total > 2 * window_share


def test_gaze_fixates_and_shifts(minute):
    for anim in minute:
        yaw, pitch = anim["leftEyeYaw"], anim["leftEyePitch"]
        speed = np.hypot(np.diff(yaw), np.diff(pitch)) * FPS / (math.pi / 180)  # deg/s
        assert np.mean(speed < 20) > 0.75  # the eyes rest in fixations most of the time
        shifts = np.sum((speed[1:] > 20) & (speed[:-1] <= 20))
        assert 15 <= shifts <= 200  # and move between them many times a minute
        assert np.abs(np.degrees(yaw)).max() < 20 and np.abs(np.degrees(pitch)).max() < 15
        assert np.array_equal(anim["rightEyeYaw"], yaw)
    layers = generate(LifeConfig())
    assert len(layers.saccade_times) >= 30


def test_look_shapes_follow_the_eye_angles(minute):
    anim = minute[0]
    yaw = anim["leftEyeYaw"]
    left, right = yaw > math.radians(3), yaw < -math.radians(3)
    assert left.any() and right.any()
    assert (anim["eyeLookOutLeft"][left] > 0.05).all() and (anim["eyeLookInRight"][left] > 0.05).all()
    assert (anim["eyeLookInLeft"][right] > 0.05).all() and (anim["eyeLookOutRight"][right] > 0.05).all()


def test_head_moves_within_natural_range(minute):
    for anim in minute:
        for name, lo, hi in (("headYaw", 0.5, 6), ("headPitch", 0.5, 5), ("headRoll", 0.3, 4)):
            deg = np.degrees(anim[name])
            assert lo < deg.std() < hi, (name, deg.std())
            assert np.abs(deg).max() < 15


def test_head_nods_on_stressed_syllables():
    strong = [t for t, s in PROSODY.accents if s >= 0.75]
    weak = [t for t, s in PROSODY.accents if s <= 0.3]
    assert len(strong) > 10 and len(weak) > 10
    dips = []
    for seed in range(5):
        pitch = generate(LifeConfig(gaze=False), seed).head[:, 1]
        change = [pitch[round((t + 0.05) * FPS)] - pitch[max(0, round((t - 0.25) * FPS))] for t in strong]
        control = [pitch[round((t + 0.05) * FPS)] - pitch[max(0, round((t - 0.25) * FPS))] for t in weak]
        dips.append(np.mean(change) - np.mean(control))
    assert np.degrees(np.mean(dips)) < -1.0  # the head drops on the stressed syllables


def test_breath_before_a_phrase_after_a_pause():
    phones = [TimedPhone(0, 0.4, "sil"), TimedPhone(0.4, 0.7, "aa"), TimedPhone(0.7, 2.7, "sil"),
              TimedPhone(2.7, 3.0, "aa"), TimedPhone(3.0, 3.5, "sil")]  # fmt: skip
    base = animate_phones(phones, FPS)
    on = LifeConfig(blink=False, gaze=False, head=False)
    breathing = Style(life=on).apply(base, phones)
    still = Style(life=LifeConfig.off()).apply(base, phones)
    inhale = round(2.4 * FPS)  # just before the second phrase at 2.7 s
    assert breathing["noseSneerLeft"][inhale] > 0.04 and breathing["jawOpen"][inhale] > base["jawOpen"][inhale]
    assert np.array_equal(still.weights, base.weights)


def test_switches_turn_each_part_off(minute):
    off = Style(life=LifeConfig(blink=False, gaze=False, head=False, breathing=False)).apply(BASE, MINUTE)
    assert off.names == ARKIT_NAMES and np.array_equal(off.weights, BASE.weights)
    no_blink = Style(life=LifeConfig(blink=False)).apply(BASE, MINUTE)
    assert no_blink["eyeBlinkLeft"].max() < 0.45  # only the lids following a downward look
    assert np.array_equal(no_blink["leftEyeYaw"], minute[0]["leftEyeYaw"])  # gaze unchanged
    no_gaze = Style(life=LifeConfig(gaze=False)).apply(BASE, MINUTE)
    assert not no_gaze["leftEyeYaw"].any() and not no_gaze["eyeLookOutLeft"].any()
    no_head = Style(life=LifeConfig(head=False)).apply(BASE, MINUTE)
    assert not no_head["headYaw"].any() and no_head["leftEyeYaw"].any()
    assert minute[0].names == (*ARKIT_NAMES, *POSE_NAMES)


def test_same_seed_same_motion_other_seed_other_motion(minute):
    again = Style(seed=0).apply(BASE, MINUTE)
    assert np.array_equal(again.weights, minute[0].weights)
    assert not np.array_equal(minute[0].weights, minute[1].weights)


def test_blink_rate_and_head_strength():
    def blinks(rate):
        return np.mean([len(generate(LifeConfig(blink_rate=rate), seed).blink_times) for seed in range(4)])

    assert blinks(40) > blinks(10) + 15
    calm = generate(LifeConfig(head_strength=0.5)).head
    normal = generate(LifeConfig()).head
    assert np.allclose(calm, 0.5 * normal, atol=1e-6) and normal.std() > 0


def test_config_ranges():
    with pytest.raises(TalkfaceError, match="blink rate"):
        LifeConfig(blink_rate=100)
    with pytest.raises(TalkfaceError, match="head strength"):
        LifeConfig(head_strength=-1)
    assert LifeConfig(blink_rate=40).blink_rate == 40


def test_prosody_of_real_speech_finds_the_stressed_syllables():
    pcm = load_audio(DATA / "arctic_a0009.wav")
    hand = read_htk_labels(DATA / "arctic_a0009_phone.lab")
    p = analyse(len(pcm) / 16000, hand, pcm)
    strong = {round(t, 1) for t, s in p.accents if s >= 0.6}
    # "He TURNED SHARPly, and FACED GREGson across the table": nuclei of turned, sharp, faced, greg
    assert {0.4, 0.7, 1.4, 1.7} <= strong
    assert 3.5 < p.syllable_rate < 6 and np.isfinite(p.pitch).mean() > 0.4
    assert not p.active[: round(0.1 * GRID)].any() and p.active[round(1.5 * GRID)]


def test_arousal_rises_with_lively_pitch_and_loudness():
    t = np.arange(4 * 16000) / 16000
    syllables = 0.5 - 0.5 * np.cos(2 * np.pi * 4 * t)  # four "syllables" a second

    def voice(f0: np.ndarray, loudness: np.ndarray) -> np.ndarray:
        phase = 2 * np.pi * np.cumsum(f0) / 16000
        return (loudness * syllables * sum(np.sin(k * phase) / k for k in range(1, 6))).astype(np.float32) * 0.3

    flat = voice(np.full_like(t, 120.0), np.ones_like(t))
    swing = 0.5 + 0.5 * np.sin(2 * np.pi * 0.9 * t)
    lively = voice(160 * 2 ** (0.5 * np.sin(2 * np.pi * 0.7 * t)), 0.2 + 0.8 * swing)
    a_flat = analyse(4.0, None, flat).arousal()
    a_lively = analyse(4.0, None, lively).arousal()
    assert a_lively > a_flat + 0.3
