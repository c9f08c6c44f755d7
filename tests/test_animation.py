import numpy as np
import pytest

from talkface import Animation, TalkfaceError


def ramp(frames: int = 31, fps: float = 30.0) -> Animation:
    w = np.zeros((frames, 52), np.float32)
    w[:, 17] = np.linspace(0, 1, frames)  # jawOpen rises linearly over the clip
    return Animation(w, fps)


@pytest.mark.parametrize("fps", [24, 25, 30, 50, 60, 120])
def test_resample_keeps_duration_and_shape_of_motion(fps):
    a = ramp()
    b = a.resample(fps)
    assert b.fps == fps and abs(b.duration - a.duration) <= 1 / fps
    # a linear ramp stays linear: value at time t is t / (last frame time)
    last_t = (a.num_frames - 1) / a.fps
    expected = np.clip(b.times / last_t, 0, 1)
    np.testing.assert_allclose(b["jawOpen"], expected, atol=1e-5)


def test_slice_and_join_round_trip():
    a = ramp(60)
    parts = [a.slice(0, 0.5), a.slice(0.5, 1.2), a.slice(1.2)]
    assert [p.num_frames for p in parts] == [15, 21, 24]
    np.testing.assert_array_equal(Animation.join(parts).weights, a.weights)


def test_join_rejects_mismatched_fps():
    with pytest.raises(TalkfaceError):
        Animation.join([ramp(fps=30), ramp(fps=60)])


def test_validate_catches_nan_and_out_of_range():
    w = np.zeros((3, 52), np.float32)
    w[1, 5] = np.nan
    with pytest.raises(TalkfaceError, match="non-finite"):
        Animation(w, 30).validate()
    w[1, 5] = 1.5
    with pytest.raises(TalkfaceError, match=r"\[0, 1\]"):
        Animation(w, 30).validate()


def test_angles_may_leave_unit_range_but_weights_may_not():
    names = ("jawOpen", "headYaw")
    a = Animation(np.array([[0.5, -0.4]], np.float32), 30, names)
    assert a.validate() is a


def test_shape_and_fps_are_checked():
    with pytest.raises(TalkfaceError):
        Animation(np.zeros((4, 51)), 30)
    with pytest.raises(TalkfaceError):
        Animation(np.zeros((4, 52)), 0)


def test_with_channels_adds_zeros_and_drops_extras():
    a = ramp(5)
    b = a.with_channels(("jawOpen", "headYaw"))
    assert b.names == ("jawOpen", "headYaw")
    np.testing.assert_array_equal(b["jawOpen"], a["jawOpen"])
    assert not b["headYaw"].any()


@pytest.mark.parametrize(
    "make",
    [
        lambda: Animation(np.zeros((2, 52)), "30"),  # (each of these was a TypeError, ValueError or IndexError)
        lambda: Animation(np.zeros((2, 52)), None),
        lambda: Animation(np.zeros((2, 52)), True),
        lambda: Animation(np.zeros((2, 3)), 30, None),
        lambda: Animation(np.zeros((2, 3)), 30, "abc"),  # (was three channels named a, b and c)
        lambda: Animation(np.zeros((2, 2)), 30, (["a"], ["b"])),
        lambda: Animation(np.zeros((2, 2)), 30, (1, 2)),
        lambda: Animation(np.full((2, 52), "a"), 30),
        lambda: Animation([[0.1] * 52, [0.1]], 30),
        lambda: Animation(np.zeros((2, 52), complex), 30),  # (its imaginary part was dropped)
        lambda: ramp().resample("60"),
        lambda: ramp().slice(float("nan")),
        lambda: ramp().slice("0"),
        lambda: ramp().at(float("nan")),
        lambda: ramp().resample_to(0.5),
    ],
)
def test_values_of_any_type_are_refused_as_talkface_errors(make):
    with pytest.raises(TalkfaceError):
        make()


def test_slice_to_infinity_is_to_the_end():
    a = ramp(60)
    assert a.slice(1.0, float("inf")).num_frames == 30  # (was an OverflowError)
    assert Animation(np.zeros((1, 52)), np.float32(24)).fps == 24.0
