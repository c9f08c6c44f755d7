"""Face parameters: each one's visible effect, closures kept, bad values rejected; the pipeline on any input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic import phrases, sequence

from talkface import Animation, Animator, TalkfaceError
from talkface.coarticulation import animate_phones
from talkface.metrics import lip_aperture, mouth_scores
from talkface.phonemes import TimedPhone
from talkface.post import PARAMETERS, FaceParams, LifeConfig, Style, parse_assignments
from talkface.post.prosody import Listener
from talkface.rig import ARKIT_NAMES, POSE_NAMES

FPS = 30
WORDS = sequence(
    ("m", 0.07), ("aa", 0.15), ("th", 0.08), ("ah", 0.1), ("b", 0.06), ("ae", 0.15), ("p", 0.06), ("iy", 0.1),
    lead=1.0, tail=1.0,
)  # fmt: skip
SPEECH = animate_phones(WORDS, FPS)
STILL = LifeConfig.off()
ALIVE = LifeConfig()


def run(life=STILL, emotion=None, **params) -> Animation:
    """The words through the pipeline with these face parameters (Audio2Face names)."""
    return Style(emotion=emotion, face=FaceParams.from_mapping(params), life=life, seed=2).apply(SPEECH, WORDS)


def peak(anim, name, phone):
    p = next(p for p in WORDS if p.phone == phone)
    return float(anim[name][round(p.mid * FPS)])


def test_defaults_leave_the_speech_untouched():
    assert np.array_equal(run().weights, SPEECH.weights)


@pytest.mark.parametrize("strength", [0.5, 1.5])
def test_lower_face_strength_scales_the_mouth_and_keeps_closures(strength):
    anim = run(lowerFaceStrength=strength)
    assert peak(anim, "jawOpen", "aa") == pytest.approx(strength * peak(SPEECH, "jawOpen", "aa"), rel=1e-5)
    assert mouth_scores(anim, WORDS).closed_on_bilabials == 1.0
    assert anim["browInnerUp"].max() == 0  # the upper face is not the lower face


def test_upper_face_strength_scales_brows_not_mouth():
    sad = run(emotion={"sadness": 0.6})
    weak = run(emotion={"sadness": 0.6}, upperFaceStrength=0.5)
    assert weak["browInnerUp"].max() == pytest.approx(0.5 * sad["browInnerUp"].max(), rel=1e-5)
    assert np.array_equal(weak["jawOpen"], sad["jawOpen"])


def test_jaw_strength_scales_the_jaw_and_keeps_closures():
    anim = run(jawStrength=0.5)
    assert peak(anim, "jawOpen", "aa") == pytest.approx(0.5 * peak(SPEECH, "jawOpen", "aa"), rel=1e-5)
    assert peak(anim, "mouthLowerDownLeft", "aa") == pytest.approx(peak(SPEECH, "mouthLowerDownLeft", "aa"))
    assert mouth_scores(run(jawStrength=2.0), WORDS).closed_on_bilabials == 1.0


def test_tongue_strength_scales_the_tongue():
    assert peak(run(tongueStrength=0.5), "tongueOut", "th") == pytest.approx(0.5 * peak(SPEECH, "tongueOut", "th"))
    assert run(tongueStrength=0.0)["tongueOut"].max() == 0


def test_skin_strength_scales_all_skin_but_not_gaze_or_blinks():
    anim = run(life=LifeConfig(head=False, breathing=False), emotion={"joy": 0.8}, skinStrength=0.0)
    assert anim["jawOpen"].max() == 0 and anim["mouthSmileLeft"].max() == 0 and anim["cheekSquintLeft"].max() == 0
    assert anim["eyeBlinkLeft"].max() > 0.8 and anim["leftEyeYaw"].any()


def test_smoothing_softens_motion_per_region():
    def roughness(anim, names):
        return float(np.abs(np.diff(anim.with_channels(names).weights, axis=0)).max())

    # jittery brows and lids over the speech, as a neural model might give
    weights = SPEECH.weights.copy()
    upper = ["browInnerUp", "eyeSquintLeft", "cheekSquintLeft"]
    jitter = np.random.default_rng(0).uniform(0, 0.3, (SPEECH.num_frames, len(upper)))
    weights[:, [ARKIT_NAMES.index(n) for n in upper]] = jitter
    jittery = Animation(weights, FPS)
    lower = ["jawOpen", "mouthPressLeft", "mouthRollLower"]
    plain = Style(life=STILL).apply(jittery)
    smooth_upper = Style(face=FaceParams(upper_face_smoothing=0.05), life=STILL).apply(jittery)
    smooth_lower = Style(face=FaceParams(lower_face_smoothing=0.05), life=STILL).apply(jittery)
    assert roughness(smooth_upper, upper) < 0.3 * roughness(plain, upper)
    assert np.array_equal(smooth_upper.with_channels(lower).weights, plain.with_channels(lower).weights)
    assert roughness(smooth_lower, lower) < 0.6 * roughness(plain, lower)
    assert np.array_equal(smooth_lower.with_channels(upper).weights, plain.with_channels(upper).weights)


def test_blink_strength_and_offset():
    blinks = LifeConfig(gaze=False, head=False, breathing=False)
    full, half = run(life=blinks), run(life=blinks, blinkStrength=0.5)
    assert full["eyeBlinkLeft"].max() > 0.8
    assert half["eyeBlinkLeft"].max() == pytest.approx(0.5 * full["eyeBlinkLeft"].max(), rel=1e-4)
    heavy = run(blinkOffset=0.3)
    assert heavy["eyeBlinkLeft"].min() == pytest.approx(0.3)


def test_eyelid_open_offset_opens_or_closes_the_lids():
    assert run(eyelidOpenOffset=0.4)["eyeWideLeft"].min() == pytest.approx(0.4)
    assert run(eyelidOpenOffset=-1.0)["eyeBlinkRight"].min() == pytest.approx(1.0)


def test_lip_open_offset_parts_the_lips_at_rest_but_not_in_closures():
    parted = run(lipOpenOffset=0.1)
    rest = round(0.3 * FPS)
    assert lip_aperture(parted)[rest] == pytest.approx(0.1, abs=1e-3) and lip_aperture(SPEECH)[rest] == 0
    assert mouth_scores(parted, WORDS).closed_on_bilabials == 1.0
    pressed = run(lipOpenOffset=-0.2)
    assert lip_aperture(pressed).max() < lip_aperture(SPEECH).max() - 0.1


def test_saccade_strength_scales_gaze():
    gaze = LifeConfig(blink=False, head=False, breathing=False)
    normal, wide, still = run(life=gaze), run(life=gaze, saccadeStrength=2.0), run(life=gaze, saccadeStrength=0.0)
    assert np.allclose(wide["leftEyeYaw"], 2 * normal["leftEyeYaw"], atol=1e-6) and normal["leftEyeYaw"].any()
    assert not still["leftEyeYaw"].any() and not still["eyeLookOutLeft"].any()


def test_channel_multipliers_offsets_and_clamp():
    face = FaceParams(multipliers={"jawOpen": 0.5, "headYaw": 0.0}, offsets={"browInnerUp": 0.2})
    anim = Style(face=face, life=ALIVE).apply(SPEECH, WORDS)
    assert peak(anim, "jawOpen", "aa") == pytest.approx(0.5 * peak(SPEECH, "jawOpen", "aa"), rel=1e-5)
    assert anim["browInnerUp"].min() == pytest.approx(0.2) and not anim["headYaw"].any()
    capped = run(clampMax=0.3, lowerFaceStrength=2.0)
    assert capped.weights.max() == pytest.approx(0.3)
    floor = run(clampMin=0.05)
    assert floor.weights.min() == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"lowerFaceStrength": 2.5}, "out of range [0, 2]"),
        ({"lipOpenOffset": 0.3}, "out of range [-0.2, 0.2]"),
        ({"blinkStrength": -1}, "out of range"),
        ({"saccadeStrength": float("nan")}, "not a number"),
        ({"eyelidOpenOffset": "wide"}, "not a number"),
        ({"noseStrength": 1.0}, "unknown face parameter"),
        ({"clampMin": 0.6, "clampMax": 0.4}, "must be below"),
    ],
)
def test_bad_face_parameters_are_rejected(params, fragment):
    with pytest.raises(TalkfaceError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        FaceParams.from_mapping(params)


def test_bad_channel_tables_are_rejected():
    with pytest.raises(TalkfaceError, match="unknown channel 'jaw'"):
        FaceParams(multipliers={"jaw": 1.0})
    with pytest.raises(TalkfaceError, match="out of range"):
        FaceParams(offsets={"jawOpen": 2.0})
    with pytest.raises(TalkfaceError, match="NAME=VALUE"):
        parse_assignments("jawOpen", "--multiply")


def test_every_parameter_has_a_range_and_a_description():
    for name, (attr, lo, hi, what) in PARAMETERS.items():
        assert lo < hi and len(what) > 10 and hasattr(FaceParams(), attr), name


def test_snake_case_names_work_too():
    assert FaceParams.from_mapping({"lower_face_strength": 1.5}).lower_face_strength == 1.5


def test_pipeline_on_an_animation_alone_as_from_the_neural_model():
    phones = phrases(8.0, seed=4)
    speech = animate_phones(phones, FPS, 8.0)  # stands in for a model's output: curves, no phones or audio
    anim = Style(emotion={"joy": 0.7}, life=ALIVE, seed=1).apply(speech)
    assert anim.names == (*ARKIT_NAMES, *POSE_NAMES)
    assert anim["mouthSmileLeft"].mean() > 0.4 and anim["eyeBlinkLeft"].max() > 0.8 and anim["headYaw"].any()
    assert mouth_scores(anim, phones).closed_on_bilabials == 1.0
    anim.validate()


def test_existing_head_and_eye_channels_are_kept():
    read_back = SPEECH.with_channels((*ARKIT_NAMES, *POSE_NAMES))
    weights = read_back.weights.copy()
    weights[:, -9] = 0.1  # a captured head yaw
    out = Style(life=STILL).apply(Animation(weights, FPS, read_back.names))
    assert np.allclose(out["headYaw"], 0.1)


@pytest.mark.parametrize("frames", [0, 1, 2])
def test_tiny_animations_pass_through(frames):
    out = Style(emotion={"joy": 1.0}, life=ALIVE).apply(Animation.zeros(frames, FPS))
    assert out.num_frames == frames and out.names == (*ARKIT_NAMES, *POSE_NAMES)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), at=st.floats(0, 6), length=st.floats(-3, 0), phone=st.sampled_from(["aa", "m", "s"]))
def test_a_phone_the_face_drops_changes_nothing(seed, at, length, phone):
    """A phone of no length, or one that ends before it starts, is dropped by the face; the clip's
    prosody once counted it too, and a reversed one took the speech it overlapped for a pause."""
    words = phrases(6.0, seed=seed)
    animator = Animator(style=Style(seed=seed))
    odd = [*words, TimedPhone(at, at + length, phone)]
    np.testing.assert_array_equal(animator.animate_phones(odd).weights, animator.animate_phones(words).weights)


@pytest.mark.parametrize("fps", [1e-300, 1e-9, 1e-5])
def test_a_frame_rate_near_zero_animates_a_frame(fps):
    """The clip's prosody was measured over its frames' span, n / fps: at 1e-9 fps 745 GB (MemoryError)."""
    anim = Animator(fps=fps).animate_phones(WORDS)
    assert anim.num_frames == 1 and np.isfinite(anim.weights).all()


def _heard(audio: np.ndarray, rest_ahead: bool) -> np.ndarray:
    """`Cues.heard` at 100 frames a second of 16 kHz `audio` (silence after it), cued in one block."""

    def samples(start: int, stop: int) -> np.ndarray:
        out = np.zeros(stop - start, np.float32)
        a, b = max(start, 0), min(stop, len(audio))
        out[a - start : b - start] = audio[a:b]
        return out

    return Listener(100.0, rest_ahead=rest_ahead).cues(0, len(audio) // 160, samples).heard


def test_a_listener_that_may_look_ahead_rests_at_once_in_a_long_silence_not_in_a_stop_gap():
    """With `rest_ahead` (a speech-encoder model, whose frames wait for their window anyway) the face
    rests from the start of a silence of 250 ms or more, where the voice line alone holds it 80 ms
    longer; a stop's silent closure (80 ms) inside speech is heard through either way."""
    t = np.arange(16000) / 16000
    voice = (0.3 * np.sin(2 * np.pi * 150 * t) * (1 + 0.5 * np.sin(2 * np.pi * 450 * t))).astype(np.float32)
    gap, pause = np.zeros(1280, np.float32), np.zeros(16000, np.float32)  # 80 ms, 1 s
    audio = np.concatenate([pause, voice, gap, voice, pause])  # (the silence first: the background's level)
    cut = (3 * 16000 + 1280) // 160  # the frame where the last pause starts
    for rest_ahead in (False, True):
        heard = _heard(audio, rest_ahead)
        assert heard[110:cut].all()  # the speech and the stop gap inside it (frames 200-207)
    looking, plain = _heard(audio, True), _heard(audio, False)
    assert np.flatnonzero(~looking[cut:])[0] <= 3  # within 30 ms of the pause (the 40 ms window's half)
    assert np.flatnonzero(~plain[cut:])[0] >= 8
