"""talkface: speech to ARKit facial animation, offline and real time on a CPU."""

from .animation import Animation
from .animator import Animator
from .audio import load_audio
from .errors import TalkfaceError
from .phonemes import TimedPhone

__all__ = ["Animation", "Animator", "TalkfaceError", "TimedPhone", "load_audio"]
