"""Style settings refuse values out of any range with one clear error, whatever their type; a CSV of
under a second reads back at its rate (its timecodes cannot tell it: the sidecar keeps it)."""

import numpy as np
import pytest

from talkface import TalkfaceError, export
from talkface.animation import Animation
from talkface.post import EmotionSettings, FaceParams, LifeConfig, Style

BIG = 10**5000  # str() of it raises ValueError: Python's limit on int-to-text digits


@pytest.mark.parametrize(
    "make",
    [
        lambda: Style(emotion={"joy": BIG}),
        lambda: Style.from_options({"blink-rate": BIG}),
        lambda: Style.from_options({"face": [BIG]}),
        lambda: FaceParams(jaw_strength=BIG),
        lambda: FaceParams(multipliers={"jawOpen": BIG}),
        lambda: LifeConfig(blink_rate=BIG),
        lambda: LifeConfig(blink_rate=None),
        lambda: LifeConfig(head_strength="lots"),
        lambda: LifeConfig(blink="no"),  # (any text was taken as on)
        lambda: FaceParams(multipliers=None),  # (was an AttributeError)
        lambda: EmotionSettings(preferred=["joy"]),
        lambda: Style(emotion=3),  # (was taken, and failed deep inside the first frame)
        lambda: Style(emotion=["joy"]),
        lambda: Style(seed=-1),  # (numpy's generators refuse it, at the first frame)
        lambda: Style(seed="7"),
        lambda: Style(seed=1.5),
        lambda: Style(face="jawStrength=1.2"),
        lambda: Style(life=None),
        lambda: Style.from_options([]),  # (was AttributeError)
        lambda: Style.from_options("emotion=joy"),
    ],
)
def test_values_of_any_type_or_size_are_refused_as_talkface_errors(make):
    with pytest.raises(TalkfaceError):
        make()


def test_a_style_seed_of_numpy_integer_is_taken_as_a_python_int():
    assert Style(seed=np.int64(3)) == Style(seed=3)


def test_style_option_error_quotes_a_long_value_short():
    with pytest.raises(TalkfaceError) as e:
        Style.from_options({"no-blink": "x" * 100_000})
    assert len(str(e.value)) < 200


def test_csv_of_under_a_second_reads_back(tmp_path):
    anim = Animation(np.linspace(0, 1, 11 * 61).reshape(11, 61), 60.0, export.livelink_csv.READ_NAMES)
    path = tmp_path / "animation.csv"
    export.write(anim, path, metadata={"engine": "tts"})
    back = export.read(path)
    assert back.fps == 60.0 and back.num_frames == 11
    np.testing.assert_allclose(back.weights, anim.weights, atol=1e-6)


def test_numpy_numbers_are_taken_as_face_parameters():
    """np.float32 and np.int64 (a slider's value, an array's element) were refused as "not a number"."""
    given = FaceParams(jaw_strength=np.float32(1.5), clamp_max=np.int64(1), multipliers={"jawOpen": np.float32(0.5)})
    assert given == FaceParams(jaw_strength=1.5, multipliers={"jawOpen": 0.5})
    assert type(given.jaw_strength) is float and type(given.multipliers["jawOpen"]) is float


def test_settings_given_as_text_are_kept_as_the_numbers_they_were_checked_as():
    """LifeConfig and EmotionSettings checked "0.5" as a number but kept the text, which failed in the first frame."""
    life = LifeConfig(blink_rate="20", head_strength="0.5")
    settings = EmotionSettings(contrast="1.5", max_emotions=2.0, transition="0.5", preferred="joy=1")
    assert (life.blink_rate, life.head_strength) == (20.0, 0.5)
    assert (settings.contrast, settings.max_emotions, settings.preferred) == (1.5, 2, {"joy": 1.0})
    anim = Animation(np.full((30, 52), 0.2, np.float32), 30.0)
    assert Style(emotion="anger=1", emotion_settings=settings, life=life).apply(anim).num_frames == 30


def test_auto_emotion_is_taken_in_any_case_as_the_command_line_takes_it():
    assert Style(emotion=" AUTO ").emotion == "auto"  # (was "unknown emotion 'auto'")
