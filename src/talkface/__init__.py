"""talkface: speech to ARKit facial animation, offline and real time on a CPU."""

from .animation import Animation
from .animator import Animator
from .audio import load_audio
from .errors import TalkfaceError
from .phonemes import TimedPhone
from .post import EmotionSettings, FaceParams, LifeConfig, Style

__all__ = [
    "Animation",
    "Animator",
    "EmotionSettings",
    "FaceParams",
    "LifeConfig",
    "Style",
    "TalkfaceError",
    "TimedPhone",
    "load_audio",
]
