"""`Style`: everything post-processing needs besides the speech, and its use on a whole clip."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..animation import Animation
from ..audio import SAMPLE_RATE
from ..errors import TalkfaceError, shown
from ..phonemes import TimedPhone
from ..rig import ARKIT_NAMES, POSE_NAMES
from .clip_prosody import analyse
from .driver import WHOLE_CLIP, Post
from .emotion import BUSY_AROUND, auto, mouth_motion
from .prosody import Cues
from .settings import EmotionSettings, EmotionTrack, FaceParams, LifeConfig, check_emotions, parse_emotions
from .smoothing import window_max

#: Seconds of prosody measured past the end of the speech: all of the last frame's period at 1 fps or more.
_BEYOND = 1.0

#: What `Style.emotion` takes: "auto", weights by name, a keyframe track, or None (neutral).
EmotionSpec = str | Mapping[str, float] | EmotionTrack | None


@dataclass(frozen=True)
class Style:
    """Everything post-processing needs besides the speech: the emotion, its post-processing,
    liveliness, face parameters and the random seed. The default is neutral and alive.

    `emotion` "auto" reads it from the text (VADER lexicon) scaled by the voice's arousal; a
    string like "joy=0.7,sadness=0.2" or a mapping sets it for the whole clip; an `EmotionTrack`
    changes it over time.
    """

    emotion: EmotionSpec = None
    emotion_settings: EmotionSettings = field(default_factory=EmotionSettings)
    face: FaceParams = field(default_factory=FaceParams)
    life: LifeConfig = field(default_factory=LifeConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.emotion, str) and self.emotion.strip().lower() == "auto":  # as the command line takes it
            object.__setattr__(self, "emotion", "auto")
        elif isinstance(self.emotion, str):
            object.__setattr__(self, "emotion", parse_emotions(self.emotion))
        elif isinstance(self.emotion, Mapping):
            object.__setattr__(self, "emotion", check_emotions(self.emotion))
        elif not isinstance(self.emotion, str | EmotionTrack | None):
            raise TalkfaceError(f'emotion must be "auto", "name=weight,...", a mapping, an EmotionTrack or None, '
                                f"not {type(self.emotion).__name__}")  # fmt: skip
        for name, kind in (("emotion_settings", EmotionSettings), ("face", FaceParams), ("life", LifeConfig)):
            if not isinstance(getattr(self, name), kind):
                raise TalkfaceError(f"{name} must be of type {kind.__name__}, not {type(getattr(self, name)).__name__}")
        # (what the CLI's --seed takes; numpy's generators refuse negative seeds)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer) or self.seed < 0:
            raise TalkfaceError(f"seed must be a whole number of at least 0, got {shown(self.seed)}")
        object.__setattr__(self, "seed", int(self.seed))

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> Style:
        """The style that `talkface animate`'s style options ask for, by name without the dashes,
        parsed exactly as on the command line (one parser for the CLI, the viewer and the server):
        ``{"emotion": "joy=0.8", "face": "jawStrength=1.2", "no-blink": True, "head-strength": 0.5}``.
        Flags take true or false; the others a string or a number (``face``, ``multiply`` and
        ``offset`` also a list); options left out take the command line's defaults. TalkfaceError
        for anything bad."""
        from ..cli_style import style_from_values  # the options are defined once, as click options

        return style_from_values(options)

    def apply(
        self,
        anim: Animation,
        phones: Sequence[TimedPhone] | None = None,
        audio: np.ndarray | None = None,
        text: str | None = None,
    ) -> Animation:
        """The finished animation of a whole clip's speech curves `anim`: the stream's
        post-processing run over all of its frames in one block, seeing the whole clip
        (`WHOLE_CLIP`), timed by its phones and/or 16 kHz audio when known (else by the mouth's
        motion). The result has the 52 ARKit shapes, plus the head and eye angles when gaze or
        head motion is on or `anim` had them; the same seed and input give the same output."""
        n, fps = anim.num_frames, anim.fps
        speech = anim.with_channels(ARKIT_NAMES).weights
        prosody = analyse(_span(n / fps, phones, audio), phones, audio) if phones or audio is not None else None
        if prosody is not None:
            cues = prosody.cues(fps, n)
        else:  # speech is where the mouth moves
            k = round(BUSY_AROUND * fps)
            cues = Cues.from_activity(window_max(mouth_motion(speech), np.zeros(0), k, k)[0] > 0.5, fps)
        style = self
        if self.emotion == "auto":
            style = replace(self, emotion=auto(text, prosody.arousal() if prosody is not None else 0.5))
        post = Post(style, fps, WHOLE_CLIP, anim.names)
        return post.process(speech, cues, anim.with_channels(POSE_NAMES).weights)


def _span(frames_span: float, phones: Sequence[TimedPhone] | None, audio: np.ndarray | None) -> float:
    """Seconds of a clip's prosody to measure: its frames' span, but not more than `_BEYOND` past the
    speech (its phones and 16 kHz audio), which at a frame rate near 0 would be days of grid frames."""
    speech = max([p.end for p in phones or ()] + [len(audio) / SAMPLE_RATE if audio is not None else 0.0])
    return min(frames_span, speech + _BEYOND)
