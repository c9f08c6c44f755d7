"""What Audio2Face-3D's stream messages mean in talkface's terms, for its gRPC API (`grpc`): a stream
header's audio format and parameters as a stream's settings, input emotions with time codes as an
emotion track, and the blendshape names as A2F spells them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from nvidia_ace import audio_pb2
from nvidia_audio2face_3d import messages_pb2

from ..errors import TalkfaceError, checked_number, shown
from ..post import EmotionSettings, EmotionTrack, FaceParams
from ..post.settings import NEUTRAL, PARAMETERS, check_emotions, vector
from ..rig import ARKIT_NAMES, INDEX
from .settings import stream_settings

#: The type URL of the emotion aggregate, as NVIDIA's client unpacks it (the PyPI stubs' own name differs).
EMOTION_AGGREGATE_URL = "type.googleapis.com/nvidia_ace.emotion_aggregate.v1.EmotionAggregate"
#: The ARKit names as Audio2Face spells them (``EyeBlinkLeft``), in talkface's order.
A2F_NAMES: tuple[str, ...] = tuple(n[0].upper() + n[1:] for n in ARKIT_NAMES)
_STEP = 1e-3  # s: an emotion holds until this long before the next time code (then eases in, as in A2F)


def _channel(name: str) -> str | None:
    """talkface's name of a blendshape named as A2F (``JawOpen``) or ARKit (``jawOpen``) names it."""
    for candidate in (name, name[:1].lower() + name[1:]):
        if candidate in INDEX:
            return candidate
    return None


def emotion_weights(emotion: Any, what: str) -> dict[str, float]:
    """Checked emotion weights from an A2F emotion map ("neutral" is no emotion). Names are case-insensitive, and
    each may come once: a map is at most 11 names, however many ways ("JOY", "Joy"...) a client spells them (the
    input emotions are sent back as they came: 3584 spellings of three names made 70 KB of each)."""
    lowered: dict[str, float] = {}
    for name, value in emotion.items():
        key = name.lower()
        if key in lowered:
            raise TalkfaceError(f"{what}: the emotion {shown(key)} is named twice (names are case-insensitive)")
        lowered[key] = value
    try:
        return check_emotions({k: v for k, v in lowered.items() if k != NEUTRAL})
    except TalkfaceError as e:
        raise TalkfaceError(f"{what}: {e}") from None


def header_settings(header: messages_pb2.AudioWithEmotionStreamHeader, fps: float) -> tuple[dict[str, Any], list[str]]:
    """Validated stream settings (`settings.stream_settings`) from an A2F stream header, and the parameters
    it sets that talkface does not have (ignored); TalkfaceError for bad audio or values out of range."""
    if not header.HasField("audio_header"):
        raise TalkfaceError("the audio_stream_header has no audio_header")
    audio = header.audio_header
    if audio.audio_format != audio_pb2.AudioHeader.AUDIO_FORMAT_PCM:
        raise TalkfaceError(f"audio_format must be AUDIO_FORMAT_PCM, got {audio.audio_format}")
    if audio.channel_count != 1:
        raise TalkfaceError(f"audio must be mono: channel_count 1, got {audio.channel_count}")
    if audio.bits_per_sample != 16:
        raise TalkfaceError(f"audio must be 16-bit PCM: bits_per_sample 16, got {audio.bits_per_sample}")
    settings = stream_settings({"sample_rate": audio.samples_per_second}, fps)
    ignored: list[str] = []

    face = header.face_params
    known = {k: v for k, v in face.float_params.items() if k in PARAMETERS}
    ignored += [k for k in face.float_params if k not in PARAMETERS]
    ignored += [*face.integer_params, *face.float_array_params]
    shapes = header.blendshape_params
    tables: list[dict[str, float]] = [{}, {}]
    for table, given in zip(tables, (shapes.bs_weight_multipliers, shapes.bs_weight_offsets), strict=True):
        for name, value in given.items():
            channel = _channel(name)
            if channel is None:
                ignored.append(name)
            else:
                table[channel] = value
    if shapes.HasField("enable_clamping_bs_weight") and not shapes.enable_clamping_bs_weight:
        ignored.append("enable_clamping_bs_weight=false (talkface clamps to [clampMin, clampMax])")
    settings["face"] = FaceParams.from_mapping(known, *tables)

    post, emotion = header.emotion_post_processing_params, header.emotion_params
    values = {}
    for name, message, field in (("contrast", post, "emotion_contrast"), ("max_emotions", post, "max_emotions"),
                                 ("transition", emotion, "live_transition_time")):  # fmt: skip
        if message.HasField(field):
            values[name] = getattr(message, field)
    # no emotion from the audio (A2E) to mix with: the preferred emotion (the input) is mixed with neutral;
    # each strength is checked by its own name (their product hid one out of range, and named neither)
    strength = 1.0
    for field in ("emotion_strength", "preferred_emotion_strength"):
        if post.HasField(field) and (field == "emotion_strength" or post.enable_preferred_emotion):
            strength *= checked_number(getattr(post, field), field, 0.0, 1.0)
    settings["emotion_settings"] = EmotionSettings(**values, strength=strength)
    if post.HasField("live_blend_coef"):
        ignored.append("live_blend_coef (talkface eases by live_transition_time)")
    return settings, ignored


#: The most emotion time codes one stream may hold at once (those its frames have passed are let go, see
#: `Emotions.forget`), and the most emotions it may send in all (a time code sent again replaces its emotion).
MAX_EMOTION_KEYS, MAX_EMOTIONS_SENT = 4096, 4 * 4096


class Emotions:
    """A stream's input emotions: the beginning emotion, then each emotion from its time code on
    (eased in over the transition time), as a keyframe track in the stream's time."""

    def __init__(self, beginning: dict[str, float]) -> None:
        self.keys: dict[float, np.ndarray] = {0.0: vector(beginning)} if beginning else {}
        self.sent = 0

    def add(self, timed: Any) -> None:
        """Emotions with time codes (A2F's ``EmotionWithTimeCode``); a later one at the same time replaces.
        TalkfaceError past `MAX_EMOTION_KEYS` time codes held or `MAX_EMOTIONS_SENT` emotions in a stream."""
        self.sent += len(timed)
        if self.sent > MAX_EMOTIONS_SENT:
            raise TalkfaceError(f"more than {MAX_EMOTIONS_SENT} emotions in one stream")
        for i, item in enumerate(timed):
            t = item.time_code
            if not (math.isfinite(t) and t >= 0):
                raise TalkfaceError(f"emotion {i}: time_code must be a number of seconds from 0, got {t!r}")
            self.keys[t] = vector(emotion_weights(item.emotion, f"emotion {i} at {t:g} s"))
            if len(self.keys) > MAX_EMOTION_KEYS:
                raise TalkfaceError(f"more than {MAX_EMOTION_KEYS} emotion time codes ahead in one stream")

    def forget(self, now: float) -> None:
        """Let go of the time codes before `now` but the last of them: the track from `now` on is the same,
        and a long stream holds (and rebuilds, and sends its worker) only the keys still ahead of it."""
        past = [t for t in self.keys if t <= now]
        for t in sorted(past)[:-1]:
            del self.keys[t]

    def track(self) -> EmotionTrack | None:
        """The keyframe track: each emotion held until just before the next one's time."""
        if not self.keys:
            return None
        times = np.array(sorted(self.keys))
        rows = np.stack([self.keys[t] for t in times.tolist()])
        held = np.flatnonzero(times[1:] - _STEP > times[:-1])  # keys held until just before the next
        every = np.concatenate([times, times[held + 1] - _STEP])
        order = np.argsort(every, kind="stable")
        return EmotionTrack(every[order], np.concatenate([rows, rows[held]])[order])
