"""Every scheduler and state machine ends, keeps its times in order and its counts bounded, for any
seed, rate, frame rate, duration and speech pattern (property-based, with a wall-clock guard)."""

import contextlib
import math
import signal

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from synthetic import phrases

from talkface.articulation import Articulations
from talkface.coarticulation import RELEASE
from talkface.model import CRITICAL_VISEMES, ROUNDED_VISEMES, ROUNDING_RELEASE
from talkface.phonemes import VISEMES
from talkface.post import LifeConfig
from talkface.post.clip_prosody import analyse
from talkface.post.emotion import Patterns
from talkface.post.life import Life
from talkface.post.prosody import Cues, Listener
from talkface.post.settings import vector

FPS_CHOICES = [24.0, 25.0, 29.97, 30.0, 60.0, 120.0]
RATES = st.one_of(st.sampled_from([2.0, 60.0]), st.floats(2.0, 60.0))
SEEDS = st.integers(0, 2**32 - 1)
# speech and pause runs in seconds, repeated to fill the duration: from rapid flicker to long monologues
PATTERN = st.lists(st.tuples(st.booleans(), st.floats(0.01, 30.0)), min_size=1, max_size=8)
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextlib.contextmanager
def bounded(seconds: float):
    """Fail (instead of hanging the suite) if the block runs longer than `seconds` of wall clock."""

    def expire(*_):
        raise TimeoutError(f"still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def activity(pattern: list[tuple[bool, float]], n: int, fps: float) -> np.ndarray:
    """Per frame, whether the pattern (repeated) is speaking."""
    edges = np.cumsum([d for _, d in pattern])
    on = np.array([a for a, _ in pattern])
    phase = (np.arange(n) / fps) % edges[-1]
    return on[np.searchsorted(edges, phase, side="right").clip(0, len(on) - 1)]


def run_life(life: Life, speaking: np.ndarray, fps: float, seed: int, block: int = 1) -> dict[str, list]:
    """Step `life` over the frames in blocks of up to `block` (random sizes); check every step's
    invariants; the blink, nod and saccade starts seen."""
    rng = np.random.default_rng(seed)
    n = len(speaking)
    ahead = speaking[np.minimum(np.arange(n) + 2, n - 1)]
    pitch = rng.normal(0, 2, n)
    stressed = speaking & (rng.random(n) < 0.15)
    seen: dict[str, list] = {"blinks": [], "nods": [], "saccades": []}
    first = 0
    while first < n:
        stop = min(n, first + int(rng.integers(1, block + 1)))
        accents = [(i - first, i / fps, float(rng.random())) for i in np.flatnonzero(stressed[first:stop]) + first]
        layers = life.step(first, Cues(speaking[first:stop], ahead[first:stop], pitch[first:stop], accents))
        assert np.all((layers.blinks >= 0) & (layers.blinks <= 1))
        assert np.all((layers.breath >= 0) & (layers.breath <= 1))
        assert np.all(np.abs(layers.gaze) < 25 * math.pi / 180) and np.all(np.abs(layers.head) < 25 * math.pi / 180)
        # nothing piles up: a handful of blinks and nods in flight, a few extra blinks waiting
        assert len(life.blinks) <= 6 and len(life.nods) <= 3 and len(life.pending) <= 4
        assert life.next_blink > life.last_blink
        seen["blinks"] += layers.blink_times
        seen["nods"] += layers.nod_times
        seen["saccades"] += layers.saccade_times
        first = stop
    return seen


def check_times(seen: dict[str, list], seconds: float) -> None:
    for kind in ("blinks", "nods", "saccades"):
        times = np.array(seen[kind])
        assert np.all(np.diff(times) >= 0), f"{kind} out of order"
    # blinks: 0.6 s apart on the schedule, a double blink's second 0.28 s after its first
    assert np.all(np.diff(seen["blinks"]) >= 0.28 - 1e-9)
    assert len(seen["blinks"]) <= seconds / 0.28 + 2
    assert np.all(np.diff(seen["nods"]) >= 0.4 - 1e-9)
    assert len(seen["saccades"]) <= seconds / 0.2 + 3


def test_blinks_at_the_highest_rate_do_not_hang():
    """The scheduler once spun forever when a drawn interval fell under the 0.6 s gap."""
    with bounded(20):
        for seed in range(6):
            life = Life(LifeConfig(blink_rate=60), 30.0, seed)
            seen = run_life(life, activity([(True, 2.0), (False, 0.5)], 30 * 15, 30.0), 30.0, seed, block=40)
            # about one a second (gamma intervals of mean 1 s, floored at 0.6 s), never stuck
            assert 8 <= len(seen["blinks"]) <= 30


@PROPERTY
@given(seed=SEEDS, rate=RATES, fps=st.sampled_from(FPS_CHOICES), minutes=st.floats(0.05, 6.0), pattern=PATTERN,
       block=st.sampled_from([1, 7, 100, 10**6]))  # fmt: skip
def test_life_ends_in_order_and_bounded(seed, rate, fps, minutes, pattern, block):
    n = int(minutes * 60 * fps)
    life = Life(LifeConfig(blink_rate=rate), fps, seed)
    with bounded(30):
        seen = run_life(life, activity(pattern, n, fps), fps, seed, block)
    check_times(seen, minutes * 60)
    if minutes > 2:  # the eyes do blink: at the lowest rate a minute has ~2 scheduled blinks
        assert len(seen["blinks"]) >= 1


def test_an_hour_of_stepping_stays_bounded():
    fps, seconds = 24.0, 3600
    life = Life(LifeConfig(blink_rate=60), fps, 11)
    with bounded(60):
        seen = run_life(life, activity([(True, 3.0), (False, 0.7), (True, 0.2), (False, 4)], int(seconds * fps), fps),
                        fps, 11, block=50)  # fmt: skip
    check_times(seen, seconds)
    assert 0.5 * 3600 / 1.0 <= len(seen["blinks"]) <= 3600 / 0.6 + 200


@PROPERTY
@given(seed=SEEDS, rate=RATES, fps=st.sampled_from(FPS_CHOICES), seconds=st.floats(0.5, 240.0),
       pause=st.tuples(st.floats(0.05, 0.5), st.floats(0.5, 5.0)))  # fmt: skip
def test_whole_clip_life_ends_in_order_and_bounded(seed, rate, fps, seconds, pause):
    phones = phrases(seconds, seed=seed % 1000, pause=pause)
    cues = analyse(seconds, phones).cues(fps, round(seconds * fps))
    with bounded(30):
        layers = Life(LifeConfig(blink_rate=rate), fps, seed, zero_lag=True, breath_ahead=True).step(0, cues)
    blinks, saccades = np.array(layers.blink_times), np.array(layers.saccade_times)
    assert np.all(np.diff(blinks) >= 0.25) and len(blinks) <= seconds / 0.25 + 2
    assert np.all(np.diff(saccades) > 0) and len(saccades) <= seconds / 0.2 + 3
    assert np.all(np.isfinite(layers.head)) and np.all(np.abs(layers.head) < 25 * math.pi / 180)
    assert layers.blinks.min() >= 0 and layers.blinks.max() <= 1


@PROPERTY
@given(seed=SEEDS, fps=st.sampled_from(FPS_CHOICES), minutes=st.floats(0.05, 10.0))
def test_emotion_patterns_keep_a_bounded_schedule(seed, fps, minutes):
    """Panting, winces and trembling: the wince schedule only ever holds the next two seconds."""
    patterns = Patterns(seed, fps)
    w = vector({"pain": 1.0, "outofbreath": 1.0, "grief": 1.0})[None]
    with bounded(30):
        for i in range(0, int(minutes * 60 * fps), 7):  # blocks of 7 frames
            out = patterns.step((i + np.arange(7)) / fps, np.repeat(w, 7, axis=0))
            assert np.all(np.isfinite(out)) and len(patterns.winces) <= 4
            assert np.all(np.diff(patterns.winces) > 0)


@PROPERTY
@given(rate=st.sampled_from([100.0]), seed=SEEDS, frames=st.integers(1, 3000), flicker=st.floats(0.0, 1.0))
def test_closure_and_rounding_holds_release_and_stay_in_range(rate, seed, frames, flicker):
    """Whatever the viseme head hears, a held articulation is let go within its hold and release."""
    rng = np.random.default_rng(seed)
    best = np.zeros(frames, int)
    for i in range(1, frames):  # runs of one class, switching with probability `flicker`
        best[i] = rng.integers(len(VISEMES)) if rng.random() < flicker else best[i - 1]
    visemes = np.eye(len(VISEMES))[best]
    weights = rng.uniform(0, 1, (frames, 52))
    art = Articulations(rate)
    with bounded(30):
        whole = np.concatenate([art.apply(weights[i : i + 37], visemes[i : i + 37]) for i in range(0, frames, 37)])
    assert whole.shape == (frames,) and np.all((weights >= 0) & (weights <= 1))
    assert art.hold <= art.min_hold
    # a pose is released within its hold and easing after the head last heard its class twice running
    held = [VISEMES.index(v) for v in (*CRITICAL_VISEMES, *ROUNDED_VISEMES)]
    last = max((i for i in range(1, frames) if best[i] == best[i - 1] and best[i] in held), default=-1)
    if frames - last > art.min_hold + math.ceil(max(RELEASE, ROUNDING_RELEASE) * rate) + 2:
        assert art.phone is None and art.rounding is None


def feed_prosody(levels: np.ndarray, f0s: np.ndarray, chunks: list[int]) -> tuple[list, int]:
    """Run measured grid frames through a `Listener` in chunks of the given sizes (repeated):
    the stressed syllables found, and the most grid frames it held at once."""
    prosody, accents, held, start, k = Listener(100.0), [], 0, 0, 0
    while start < len(levels):
        stop = min(len(levels), start + chunks[k % len(chunks)])
        prosody.take(levels[start:stop], f0s[start:stop])
        accents += prosody.advance(stop - 1, lambda a, b: np.zeros(b - a, np.float32))  # all measured
        held = max(held, len(prosody.rel))
        start, k = stop, k + 1
    return accents, held


@PROPERTY
@given(seed=SEEDS, minutes=st.floats(0.01, 20.0), chunks=st.lists(st.integers(1, 400), min_size=1, max_size=5))
def test_prosody_is_the_same_in_any_chunks_and_holds_little(seed, minutes, chunks):
    """Syllable peaks do not depend on how the audio was cut, come 120 ms apart, and a long stream
    keeps only a few hundred grid frames (it once kept them all and rescanned them every frame)."""
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * 100)
    speaking = activity([(True, 2.5), (False, 0.8)], n, 100.0)
    levels = np.where(speaking, -20 + 6 * np.sin(np.arange(n) / 3.0), -70.0) + rng.normal(0, 2, n)
    f0s = np.where(speaking & (rng.random(n) < 0.7), rng.uniform(90, 250, n), 0.0)
    with bounded(30):
        whole, _ = feed_prosody(levels, f0s, [n])
        pieces, held = feed_prosody(levels, f0s, chunks)
    assert [j for j, _ in pieces] == [j for j, _ in whole]
    np.testing.assert_allclose([s for _, s in pieces], [s for _, s in whole], atol=1e-9)
    assert np.all(np.diff([j for j, _ in whole]) >= 12)
    assert all(0 < s < 1 for _, s in whole)
    assert held <= 2 * 400 + 200
    if minutes > 0.5:
        assert len(whole) >= minutes * 60  # a syllable a second at least, in speech 3/4 of the time
