"""A style is chosen per call: one `Animator` (its models loaded once) animates each clip, phone table,
TTS line or stream in the style asked, as an animator built with that style would."""

import numpy as np
import pytest

from talkface import Animator, Style, TalkfaceError, load_audio
from talkface.viewer.clip import load_clip
from talkface.viewer.server import ViewerServer

JOY = Style(emotion="joy=1", seed=3)
PLAIN = Style(seed=3)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load_audio("tests/data/arctic_a0009.wav")


def smile(weights: np.ndarray, names: list[str]) -> float:
    return float(weights[:, names.index("mouthSmileLeft")].mean())


def test_a_call_styles_its_clip_as_an_animator_of_that_style_would(speech):
    animator = Animator(style=PLAIN)
    joyful = animator.animate(speech, sample_rate=16000, style=JOY)
    plain = animator.animate(speech, sample_rate=16000)
    assert animator.style is PLAIN  # the call's style is the call's alone
    made_so = Animator(style=JOY).animate(speech, sample_rate=16000)
    np.testing.assert_allclose(joyful.weights, made_so.weights, atol=1e-6)
    assert smile(joyful.weights, joyful.names) > 0.3 > 0.1 > smile(plain.weights, plain.names)


def test_phones_tts_and_streams_take_a_style_per_call(speech):
    animator = Animator(style=PLAIN)
    phones = animator.phones(speech, sample_rate=16000)
    table = animator.animate_phones(phones, len(speech) / 16000, style=JOY)
    _, said = animator.say("Hello there, Bob", style=JOY)
    stream = animator.stream(style=JOY)
    live = stream.push(speech).weights
    live = np.concatenate([live, stream.flush().weights])
    for weights in (table.weights, said.weights, live):
        assert smile(weights, table.names) > 0.3
    _, plain = animator.say("Hello there, Bob")
    assert smile(plain.weights, plain.names) < 0.1


def test_a_style_that_is_no_style_is_refused_as_one_clear_error(speech):
    """A string or a dict of options was taken, and failed as an AttributeError deep in the first frame."""
    with pytest.raises(TalkfaceError, match="style must be a talkface"):
        Animator(style="joy=1")  # type: ignore[arg-type]
    animator = Animator()
    for call in (lambda: animator.animate(speech, sample_rate=16000, style={"emotion": "joy"}),
                 lambda: animator.animate(speech, "author of the danger trail", sample_rate=16000, style="joy"),
                 lambda: animator.animate_phones([], 1.0, style="joy"),
                 lambda: animator.stream(style="joy")):  # fmt: skip
        with pytest.raises(TalkfaceError, match="style must be a talkface"):
            call()


def test_the_viewer_restyles_with_the_animator_it_was_given():
    animator = Animator()
    server = ViewerServer(load_clip("tests/data/arctic_a0009.wav", animator=animator), port=0, animator=animator)
    try:
        clip = server.restyle({"emotion": "joy"})
        assert server.animator is animator and animator.style == Style()  # no second copy, no second model
        assert clip is not None and smile(clip.anim.weights, clip.anim.names) > 0.3
    finally:
        server.server_close()
