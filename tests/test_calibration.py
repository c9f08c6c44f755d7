"""A model's viseme calibration (`viseme_bias` in its JSON) and the measures it trades."""

import json
import shutil

import numpy as np
import pytest

from talkface import Animator, TalkfaceError
from talkface.align import read_htk_labels
from talkface.animation import Animation
from talkface.metrics import mouth_scores
from talkface.model import FaceModel, default_model_path
from talkface.phonemes import TimedPhone
from talkface.rig import ARKIT_NAMES


def _calibrated(tmp_path, bias) -> str:
    """A copy of the packaged live model whose JSON carries `bias`."""
    source = default_model_path()
    onnx = tmp_path / source.name
    shutil.copy(source, onnx)
    meta = json.loads(source.with_suffix(".json").read_text())
    meta["viseme_bias"] = bias
    onnx.with_suffix(".json").write_text(json.dumps(meta))
    return str(onnx)


def test_a_bilabial_bias_closes_more_lips_and_shuts_them_elsewhere_too(tmp_path, arctic_wav):
    phones = read_htk_labels(arctic_wav.with_name("arctic_a0009_phone.lab"))
    plain = mouth_scores(Animator(30, model=str(default_model_path())).animate(arctic_wav), phones)
    biased = mouth_scores(Animator(30, model=_calibrated(tmp_path, {"PP": 6.0})).animate(arctic_wav), phones)
    assert biased.closed_on_bilabials >= plain.closed_on_bilabials
    assert biased.closed_elsewhere > plain.closed_elsewhere  # the price the calibration weighs


def test_a_bias_the_model_cannot_use_is_refused(tmp_path):
    for bad in ({"XX": 1.0}, {"PP": float("inf")}, {"PP": "1"}, {"PP": True}, [1.0]):
        with pytest.raises(TalkfaceError, match="viseme_bias"):
            FaceModel(_calibrated(tmp_path, bad))


def test_price_measures_count_shut_lips_off_the_bilabials_and_rounding_off_the_rounded():
    phones = [TimedPhone(0.1 * i, 0.1 * (i + 1), p) for i, p in enumerate(["m", "iy", "f", "s", "uw", "ae"])]
    shut = Animation(np.zeros((19, len(ARKIT_NAMES)), np.float32), 30.0, ARKIT_NAMES)  # lips shut throughout
    scores = mouth_scores(shut, phones)
    assert scores.closed_on_bilabials == 1.0 and scores.closed_elsewhere == 1.0  # /f/ is not counted
    assert scores.counts["other_speech"] == 4 and scores.rounded_elsewhere == 0.0
    pursed = shut.weights.copy()
    pursed[:, ARKIT_NAMES.index("mouthPucker")] = 1.0
    assert mouth_scores(Animation(pursed, 30.0, ARKIT_NAMES), phones).rounded_elsewhere == 1.0
