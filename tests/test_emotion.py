"""Emotions: their FACS signatures, blending that keeps lip sync, keyframes, post-processing, text."""

import json
import time

import numpy as np
import pytest
from synthetic import phrases, sequence

from talkface import Animation, TalkfaceError
from talkface.coarticulation import animate_phones
from talkface.metrics import CLOSED_BELOW, lip_aperture, mouth_scores
from talkface.post import EMOTIONS, EmotionSettings, EmotionTrack, LifeConfig, Style, load_track, parse_emotions
from talkface.post.emotion import auto, from_text, settle
from talkface.post.settings import vector
from talkface.train.styles import random_style

# "Bob bought a pepper, and a map." at a brisk pace, with short bilabials
WORDS = sequence(
    ("b", 0.06), ("aa", 0.14), ("b", 0.05), ("b", 0.05), ("ao", 0.15), ("t", 0.05), ("ah", 0.06),
    ("p", 0.05), ("eh", 0.1), ("p", 0.05), ("er", 0.1), ("ae", 0.1), ("n", 0.05), ("d", 0.04),
    ("ah", 0.06), ("m", 0.06), ("ae", 0.15), ("p", 0.07), ("uw", 0.15), ("m", 0.05), ("iy", 0.12),
)  # fmt: skip


def with_emotion(base, emotion, **settings):
    """`base` with an emotion (weights or a track) and no liveliness."""
    return Style(emotion=emotion, emotion_settings=EmotionSettings(**settings), life=LifeConfig.off()).apply(base)


def emotional(phones, weights, fps=30, **settings):
    base = animate_phones(phones, fps)
    return base, with_emotion(base, weights, **settings)


def mean_of(anim, *names):
    return float(np.mean([anim[n].mean() for n in names]))


@pytest.mark.parametrize("fps", [24, 30, 60])
@pytest.mark.parametrize("name", EMOTIONS)
def test_every_emotion_keeps_lip_closures_and_open_vowels(name, fps):
    base, anim = emotional(WORDS, {name: 1.0}, fps)
    before, after = mouth_scores(base, WORDS), mouth_scores(anim, WORDS)
    assert after.closed_on_bilabials == 1.0 and after.counts["bilabials"] == 8
    assert after.open_on_open_vowels == before.open_on_open_vowels
    assert after.rounded_on_rounded == before.rounded_on_rounded
    ap = lip_aperture(anim)
    for p in WORDS:
        if p.phone in "pbm":
            assert ap[round(p.mid * fps)] <= CLOSED_BELOW


def test_mixed_emotions_at_full_strength_keep_closures():
    _, anim = emotional(WORDS, {e: 1.0 for e in EMOTIONS}, max_emotions=10)
    assert mouth_scores(anim, WORDS).closed_on_bilabials == 1.0


SIGNATURES = {
    "joy": (["mouthSmileLeft", "mouthSmileRight", "cheekSquintLeft", "cheekSquintRight"], 0.4),
    "sadness": (["browInnerUp", "mouthFrownLeft", "mouthFrownRight"], 0.4),
    "anger": (["browDownLeft", "browDownRight", "noseSneerLeft"], 0.3),
    "fear": (["eyeWideLeft", "browInnerUp", "mouthStretchLeft"], 0.4),
    "amazement": (["browOuterUpLeft", "browOuterUpRight", "eyeWideLeft", "browInnerUp"], 0.5),
    "disgust": (["noseSneerLeft", "noseSneerRight", "cheekSquintLeft"], 0.35),
    "grief": (["browInnerUp", "mouthFrownLeft", "eyeSquintLeft"], 0.4),
    "pain": (["eyeSquintLeft", "noseSneerLeft", "cheekSquintLeft", "browDownLeft"], 0.45),
    "cheekiness": (["mouthSmileLeft", "browOuterUpRight"], 0.3),
    "outofbreath": (["browInnerUp"], 0.3),
}


@pytest.mark.parametrize("name", EMOTIONS)
def test_each_emotion_shows_its_facs_signature(name):
    base, anim = emotional(WORDS, {name: 1.0})
    shapes, at_least = SIGNATURES[name]
    assert mean_of(anim, *shapes) >= at_least
    assert mean_of(anim, *shapes) > mean_of(base, *shapes) + 0.25


def test_cheekiness_is_one_sided():
    _, anim = emotional(WORDS, {"cheekiness": 1.0})
    assert anim["mouthSmileLeft"].mean() > anim["mouthSmileRight"].mean() + 0.3


def test_lip_shapes_of_an_emotion_show_only_in_silence():
    phones = sequence(("aa", 0.2), ("t", 0.05), ("aa", 0.2), lead=1.5, tail=1.5)
    base, anim = emotional(phones, {"disgust": 1.0})
    t_pause, t_vowel = round(0.6 * 30), round(1.6 * 30)
    assert anim["mouthUpperUpLeft"][t_pause] > 0.3  # the sneer shows while silent
    assert anim["mouthUpperUpLeft"][t_vowel] == pytest.approx(base["mouthUpperUpLeft"][t_vowel])
    assert lip_aperture(anim)[t_vowel] == pytest.approx(lip_aperture(base)[t_vowel], abs=1e-6)


def test_out_of_breath_pants_and_pain_winces():
    phones = [*sequence(("aa", 0.2), lead=0.5, tail=6.0)]
    _, breath = emotional(phones, {"outofbreath": 1.0})
    jaw = breath["jawOpen"][round(1.5 * 30) :]
    assert jaw.max() - jaw.min() > 0.15  # the jaw opens and closes with each breath in the pause
    _, pain = emotional(phones, {"pain": 1.0})
    squint = pain["eyeSquintLeft"]
    assert squint.max() - squint.min() > 0.2  # winces come and go


def test_keyframe_track_changes_emotion_over_time(tmp_path):
    path = tmp_path / "track.json"
    keys = [{"time": 0.0, "emotions": {"joy": 1.0}}, {"time": 3.0, "emotions": {"sadness": 1.0}}]
    path.write_text(json.dumps(keys))
    track = load_track(path)
    base = animate_phones(phrases(6.0, seed=1), 30, 6.0)
    anim = with_emotion(base, track)
    early, late = slice(0, 30), slice(150, 180)
    assert anim["mouthSmileLeft"][early].mean() > 0.5 > anim["mouthSmileLeft"][late].mean()
    assert anim["mouthFrownLeft"][late].mean() > 0.3 > anim["mouthFrownLeft"][early].mean()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not a readable JSON"),
        ('{"time": 0}', "non-empty list"),
        ("[]", "non-empty list"),
        ('[{"time": 0}]', '"time" and "emotions"'),
        ('[{"time": "soon", "emotions": {}}]', "not a number"),
        ('[{"time": -1, "emotions": {}}]', "negative"),
        ('[{"time": 1, "emotions": {}}, {"time": 0.5, "emotions": {}}]', "must increase"),
        ('[{"time": 0, "emotions": {"happy": 1}}]', "unknown emotion 'happy'"),
        ('[{"time": 0, "emotions": {"joy": 1.5}}]', "out of range"),
        ('[{"time": 0, "emotions": ["joy"]}]', "must be an object"),
        ('[{"time": 1' + "0" * 400 + ', "emotions": {}}]', "is not a number"),  # JSON ints overflow float
        ('[{"time": 0, "emotions": {"joy": 1' + "0" * 400 + "}}]", "is not a number"),
        ('[{"time": 1' + "0" * 5000 + ', "emotions": {}}]', "over 4300 digits"),  # beyond int("...")'s limit
    ],
)
def test_malformed_keyframe_files_are_rejected(tmp_path, content, fragment):
    path = tmp_path / "track.json"
    path.write_text(content)
    with pytest.raises(TalkfaceError, match=fragment):
        load_track(path)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [("happy=1", "unknown emotion"), ("joy=2", "out of range"), ("joy=-0.1", "out of range"), ("joy=x", "number")],
)
def test_bad_emotion_specs_are_rejected(spec, fragment):
    with pytest.raises(TalkfaceError, match=fragment):
        parse_emotions(spec)


def test_emotion_spec_parsing():
    assert parse_emotions("joy=0.7, sadness=0.2") == {"joy": 0.7, "sadness": 0.2}
    assert parse_emotions("neutral") == {} and parse_emotions("Anger") == {"anger": 1.0}


def test_post_processing_settings():
    w = {"joy": 0.6, "sadness": 0.3, "fear": 0.2, "anger": 0.1}
    col = {e: i for i, e in enumerate(EMOTIONS)}

    def at_end(**kw):
        return settle(vector(w)[None].astype(np.float64), EmotionSettings(**kw))[-1]

    plain = at_end(max_emotions=10)
    assert plain[col["joy"]] == pytest.approx(0.6)
    # contrast spreads the weights apart, below 1 pulls them together
    assert at_end(contrast=2.0, max_emotions=10)[col["joy"]] > 0.9
    assert at_end(contrast=0.5, max_emotions=10)[col["pain"]] > 0.0
    # only the strongest N stay on
    assert np.count_nonzero(at_end(max_emotions=2)) == 2
    assert at_end(max_emotions=2)[col["fear"]] == 0
    # strength scales towards neutral
    assert at_end(strength=0.5, max_emotions=10)[col["joy"]] == pytest.approx(0.3)
    # the preferred emotion is mixed in by its strength
    mixed = at_end(preferred={"grief": 1.0}, preferred_strength=0.5, max_emotions=10)
    assert mixed[col["grief"]] == pytest.approx(0.5) and mixed[col["joy"]] == pytest.approx(0.3)


def test_transition_time_smooths_changes():
    track = EmotionTrack.from_keyframes(
        [{"time": 0.0, "emotions": {}}, {"time": 1.0, "emotions": {}}, {"time": 1.001, "emotions": {"joy": 1.0}}]
    )
    still = Animation.zeros(90, 30.0)
    smile = with_emotion(still, {"joy": 1.0}, transition=0.0)["mouthSmileLeft"][0]

    def joy(transition: float) -> np.ndarray:  # how far joy has come, from the smile it brings
        return with_emotion(still, track, transition=transition)["mouthSmileLeft"] / smile

    fast, slow = joy(0.0), joy(0.5)
    assert fast[35] == pytest.approx(1.0)
    assert 0.1 < slow[35] < 0.5 and slow[-1] > 0.9  # after ~0.17 s on the way, settled by 2 s


@pytest.mark.parametrize(
    "kwargs",
    [{"strength": 1.5}, {"contrast": 0.1}, {"max_emotions": 0}, {"max_emotions": 2.5}, {"transition": -1},
     {"preferred": {"bliss": 1.0}}, {"preferred_strength": 2}],
)  # fmt: skip
def test_bad_settings_are_rejected(kwargs):
    with pytest.raises(TalkfaceError):
        EmotionSettings(**kwargs)


def test_random_styles_vary_reproducibly_and_keep_lips_right():
    styles = [random_style(np.random.default_rng(i), duration=3.0) for i in range(40)]
    again = random_style(np.random.default_rng(7), duration=3.0)
    assert np.array_equal(again.emotion.weights, styles[7].emotion.weights)
    used = {EMOTIONS[j] for s in styles for j in np.flatnonzero(s.emotion.weights.max(axis=0))}
    assert len(used) >= 8 and any(not s.emotion.weights.any() for s in styles)
    base = animate_phones(WORDS, 30)
    for style in styles:
        anim = style.apply(base)
        assert mouth_scores(anim, WORDS).closed_on_bilabials == 1.0


def test_text_emotion_from_the_lexicon():
    assert from_text("What a lovely, wonderful day.").keys() == {"joy"}
    assert from_text("I am so sad, she died.").keys() == {"sadness"}
    assert from_text("I hate you!").keys() == {"anger"}
    assert from_text("The meeting is at noon.") == {}
    # a long text is scored a piece at a time (VADER's "but" rule is quadratic in its words), and adds up
    assert from_text("It was fine, but " + "good " * 100_000) == {"joy": 1.0}
    assert from_text("I am so sad, she died. " * 500) == {"sadness": 1.0}
    # arousal of the voice scales the intensity
    calm, excited = auto("What a lovely day.", 0.0), auto("What a lovely day.", 1.0)
    assert excited["joy"] > calm["joy"] > 0
    assert auto(None, 1.0) == {}


def test_text_of_emoji_is_read_in_linear_time():
    # VADER reads an emoji as several words: a piece of 2000 emoji was 12 000 words for its quadratic rule,
    # and a 1 MB transcript of them took 18 minutes (4000 emoji: 21 s)
    started = time.perf_counter()
    assert from_text("\U0001f638" * 4000) == {"joy": 1.0}  # "grinning cat face with smiling eyes"
    assert time.perf_counter() - started < 5
    assert from_text("\U0001f622 so sad") == from_text("crying face so sad")


def test_style_with_auto_emotion_reads_the_text():
    phones = phrases(3.0)
    base = animate_phones(phones, 30, 3.0)
    still = LifeConfig.off()
    happy = Style(emotion="auto", life=still).apply(base, phones, text="What a lovely, wonderful day!")
    plain = Style(emotion="auto", life=still).apply(base, phones, text="The meeting is at noon.")
    assert happy["mouthSmileLeft"].mean() > plain["mouthSmileLeft"].mean() + 0.2
    assert np.array_equal(plain.weights, base.weights)
