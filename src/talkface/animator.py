"""`Animator`: the one entry point, speech or text in, ARKit animation out."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .animation import Animation, checked_fps
from .audio import SAMPLE_RATE, AudioSource, audio_blocks, load_audio
from .coarticulation import animate_phones
from .errors import TalkfaceError
from .phonemes import SILENCE, TimedPhone
from .post import FaceParams, Style
from .rig import GROUPS, INDEX

if TYPE_CHECKING:
    from .align import Alignment
    from .engine import Engine
    from .model import FaceModel
    from .stream import Stream
    from .tts import Speech

#: Ways to animate audio that comes without a transcript.
ENGINES = ("neural", "phonetic")
#: Shapes of speech: where a transcript does not explain the sound, these come from the sound alone.
_MOUTH = [INDEX[n] for n in (*GROUPS["jaw"], *GROUPS["mouth"], *GROUPS["tongue"], "cheekPuff")]
_SEAM = 0.06  # seconds over which the mouth passes from the transcript's animation to the sound's
_CONTEXT = 1.0  # seconds of sound either side of a span the transcript does not explain, heard with it

log = logging.getLogger(__name__)


class Clip(NamedTuple):
    """One animated clip: the animation, the timed phones it was made from (None when the neural
    model made it from the sound alone) and the transcript's alignment (None without a transcript;
    its `unexplained` spans were animated from the sound, the whole clip where it was set aside)."""

    animation: Animation
    phones: list[TimedPhone] | None
    alignment: Alignment | None

    @property
    def set_aside(self) -> bool:
        """Whether the transcript was set aside (the whole clip was animated from the sound)."""
        return self.alignment is not None and _set_aside(self.alignment)

    @property
    def metadata(self) -> dict[str, int | float]:
        """How the transcript fitted, for output files and reports (empty without a transcript)."""
        if self.alignment is None:
            return {}
        return {
            "transcript_words": self.alignment.words,
            "words_matched": self.alignment.matched,
            "seconds_from_audio_alone": round(self.alignment.unexplained_seconds, 3),
        }


class Animator:
    """Turns speech (with or without a transcript) or text into ARKit blendshape animation.

    >>> anim = Animator().animate("speech.wav", text="Hello there")
    >>> speech, anim = Animator().say("Hello there")
    """

    def __init__(
        self,
        fps: float = 30.0,
        engine: str = "neural",
        model: str | None = None,
        *,
        style: Style | None = None,
        strict_text: bool = False,
        jobs: int = 1,
    ) -> None:
        """`engine` drives audio without a transcript: "neural" (the packaged model, or `model`,
        a path to another) or "phonetic" (pocketsphinx phone recognition, then coarticulation).
        `style` sets emotion, liveliness and face parameters (default: neutral, alive); each call may
        give one of its own, over the models this animator has loaded (one worker, many clips each
        styled its own way: `talkface batch`, the server's files, the viewer's panel). A transcript
        that cannot be aligned, or of which too few words fit the sound (`Alignment.set_aside`),
        is set aside (none of its words counts as matched) with a warning and the audio animated
        alone; with `strict_text` the first is an error and the second only a warning. With `jobs`
        > 1, a transcript of more than ten minutes of audio is aligned in up to that many processes
        (started with "spawn": a script that asks for them must guard its own work with
        ``if __name__ == "__main__":``)."""
        if engine not in ENGINES:
            raise TalkfaceError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
        self.fps = checked_fps(fps)
        self.engine = engine
        self.model_path = model
        self.style = _checked_style(style) or Style()
        self.strict_text = strict_text
        self.jobs = jobs

    @functools.cached_property
    def model(self) -> FaceModel:
        """The neural model for whole clips and files: `model` if one was given, else the packaged
        model over the speech encoder (`OFFLINE_MODEL`), loaded on first use."""
        from .model import OFFLINE_MODEL, FaceModel, load_default

        return load_default(OFFLINE_MODEL) if self.model_path is None else FaceModel(self.model_path)

    @functools.cached_property
    def stream_model(self) -> FaceModel:
        """The neural model for live streams: `model` if one was given, else the packaged log-mel
        model (80 ms of look-ahead), loaded on first use."""
        from .model import FaceModel, load_default

        return load_default() if self.model_path is None else FaceModel(self.model_path)

    @functools.cached_property
    def stream_engine(self) -> Engine:
        """The live model set up for streams (shared by all of this animator's streams)."""
        from .engine import Engine

        return Engine(self.stream_model)

    @functools.cached_property
    def file_engine(self) -> Engine:
        """The model for whole clips, set up like a stream's: a clip is one stream that ends."""
        from .engine import Engine

        return Engine(self.model)

    def stream(
        self,
        fps: float | None = None,
        emotion: str | Mapping[str, float] | None = None,
        face: FaceParams | None = None,
        sample_rate: int = SAMPLE_RATE,
        *,
        style: Style | None = None,
    ) -> Stream:
        """A streaming session for audio that arrives in chunks (the neural engine):
        ``session.push(chunk)`` returns the frames that became final, ``session.flush()`` the rest.
        `style` (default: the animator's), then `emotion` and `face` over it; both can change mid-stream."""

        if self.engine != "neural":
            raise TalkfaceError("streaming needs the neural engine (the phonetic one aligns whole files)")
        return self._session(self.stream_engine, fps, style, emotion, face, sample_rate)

    def _session(self, engine: Engine, fps: float | None, style: Style | None,
                 emotion: str | Mapping[str, float] | None = None, face: FaceParams | None = None,
                 sample_rate: int = SAMPLE_RATE) -> Stream:  # fmt: skip
        from .stream import Stream

        style = _checked_style(style) or self.style
        if emotion is not None:
            style = replace(style, emotion=emotion)
        if face is not None:
            style = replace(style, face=face)
        return Stream(engine, self.fps if fps is None else checked_fps(fps), style, sample_rate)

    def phones(
        self, audio: AudioSource, text: str | None = None, sample_rate: int | None = None, *, lang: str | None = None
    ) -> list[TimedPhone]:
        """Timed phones of speech: forced-aligned to `text` (in language `lang`, default English), or
        recognised when there is none."""
        from .align import recognize  # pocketsphinx loads only when audio is analysed

        pcm = load_audio(audio, sample_rate)
        return self.align(pcm, text, SAMPLE_RATE, lang=lang).phones if text is not None else recognize(pcm)

    def align(
        self, audio: AudioSource, text: str, sample_rate: int | None = None, *, lang: str | None = None
    ) -> Alignment:
        """`text` (in language `lang`, default English) aligned to speech: its timed phones and how many
        of its words fit the sound.

        When too few fit (`Alignment.doubtful`: probably not the transcript of this audio), logs one
        warning on the "talkface.animator" logger, e.g. "2 of 9 words matched the audio".
        """
        from .align import align_transcript

        alignment = align_transcript(load_audio(audio, sample_rate), text, lang=lang)
        if alignment.doubtful:
            log.warning("%s", _matched(alignment))
        return alignment

    def animate_phones(
        self,
        phones: Sequence[TimedPhone],
        duration: float | None = None,
        fps: float | None = None,
        *,
        audio: np.ndarray | None = None,
        text: str | None = None,
        style: Style | None = None,
    ) -> Animation:
        """Animation from timed phones (e.g. a TTS engine's or a hand-made table); the 16 kHz
        `audio` and the `text` they came from, when given, steer head motion and automatic emotion;
        `style` (default: the animator's) sets emotion, liveliness and face."""
        fps = self.fps if fps is None else checked_fps(fps)
        return (_checked_style(style) or self.style).apply(animate_phones(phones, fps, duration), phones, audio, text)

    def animate(
        self,
        audio: AudioSource,
        text: str | None = None,
        fps: float | None = None,
        sample_rate: int | None = None,
        *,
        lang: str | None = None,
        style: Style | None = None,
    ) -> Animation:
        """Animation for speech given as a file path or an array (an array needs `sample_rate`).

        With `text` (in language `lang`, an espeak-ng language as `say` takes it; default English)
        the transcript is aligned to the audio, which gives the most exact lip sync; without it (or
        when it does not fit the audio, see `strict_text`) the engine chosen at construction
        animates the sound alone. `style` (default: the animator's) sets emotion, liveliness and face.
        """
        return self.clip(audio, text, fps, sample_rate, lang=lang, style=style).animation

    def clip(
        self,
        audio: AudioSource,
        text: str | None = None,
        fps: float | None = None,
        sample_rate: int | None = None,
        *,
        lang: str | None = None,
        style: Style | None = None,
    ) -> Clip:
        """Like `animate`, also returning the phones and the transcript's alignment (how many of
        its words fit the sound): the one per-clip path of `animate`, `batch` and the server."""
        _checked_style(style)  # before any work (a transcript's alignment takes seconds)
        if text is None:
            return self._from_sound(audio, fps, sample_rate, style)
        pcm = load_audio(audio, sample_rate)
        alignment = self._fitting(pcm, text, lang)
        if _set_aside(alignment):
            return self._from_sound(pcm, fps, SAMPLE_RATE, style)._replace(alignment=alignment)
        anim = self.animate_phones(alignment.phones, len(pcm) / SAMPLE_RATE, fps, audio=pcm, text=text, style=style)
        if alignment.unexplained and not self.strict_text:
            anim = _patched(anim, self._heard(pcm, anim, alignment.unexplained, style), alignment.unexplained)
        return Clip(anim, alignment.phones, alignment)

    def _heard(
        self, pcm: np.ndarray, anim: Animation, spans: Sequence[tuple[float, float]], style: Style | None
    ) -> np.ndarray:
        """Weights for `anim`'s frames animated from the sound over `spans` (seconds), zero elsewhere.
        Only the spans are animated, each with `_CONTEXT` of sound either side, so that an hour with a
        few unexplained seconds costs the model seconds, not the hour."""
        weights = np.zeros_like(anim.weights)
        reach = _CONTEXT + _SEAM
        pieces: list[list[float]] = []
        for start, end in spans:  # merged where their context overlaps
            if pieces and start - reach <= pieces[-1][1]:
                pieces[-1][1] = end + reach
            else:
                pieces.append([start - reach, end + reach])
        for start, end in pieces:
            first = max(0, int(start * anim.fps))
            sound = pcm[round(first * SAMPLE_RATE / anim.fps) : round(end * SAMPLE_RATE)]
            part = self._from_sound(sound, anim.fps, SAMPLE_RATE, style).animation.weights[: len(weights) - first]
            weights[first : first + len(part)] = part
        return weights

    def _from_sound(self, audio: AudioSource, fps: float | None, sample_rate: int | None, style: Style | None) -> Clip:
        """The clip animated from its sound alone, by the engine chosen at construction."""
        if self.engine == "neural":  # offline is streaming with the whole clip in one chunk
            if isinstance(audio, np.ndarray):
                session = self._session(self.file_engine, fps, style)
                return Clip(Animation.join([session.push(load_audio(audio, sample_rate)), session.flush()]), None, None)
            rate, blocks = audio_blocks(audio)  # a file is read a minute at a time: an hour needs no 230 MB
            session = self._session(self.file_engine, fps, style, sample_rate=rate)
            return Clip(Animation.join([*(session.push(block) for block in blocks), session.flush()]), None, None)
        pcm = load_audio(audio, sample_rate)
        phones = self.phones(pcm, sample_rate=SAMPLE_RATE)
        return Clip(self.animate_phones(phones, len(pcm) / SAMPLE_RATE, fps, audio=pcm, style=style), phones, None)

    def _fitting(self, pcm: np.ndarray, text: str, lang: str | None) -> Alignment:
        """`text` aligned to 16 kHz speech, with a warning where some of it does not fit the audio.
        Where it does not fit at all, the alignment is set aside (see `strict_text`): its one
        unexplained span is the whole clip, for the sound alone to drive the face. An error when
        the audio holds no speech at all."""
        from .align import Alignment, AlignmentError, align_transcript, has_speech

        duration = len(pcm) / SAMPLE_RATE
        alone = f"{duration:.1f} s animated from the audio alone"
        whole = ((0.0, duration),)
        try:
            alignment = align_transcript(pcm, text, lang=lang, strict=self.strict_text, jobs=self.jobs)
        except AlignmentError as e:
            if self.strict_text:
                raise
            if not has_speech(pcm):
                raise TalkfaceError("the audio holds no speech to align the transcript to") from None
            log.warning("%s; %s", str(e).split(" (")[0], alone)
            return Alignment([TimedPhone(0.0, duration, SILENCE)], e.words, 0, whole)
        if not self.strict_text and alignment.set_aside:
            if not has_speech(pcm):
                raise TalkfaceError("the audio holds no speech to align the transcript to")
            fit = f" ({alignment.matched} fit here and there: the transcript is set aside)" if alignment.matched else ""
            alignment = replace(alignment, matched=0, unexplained=whole)  # none of its words is used
            log.warning("%s%s; %s", _matched(alignment), fit, alone)
            return alignment
        if alignment.unexplained and not self.strict_text:
            log.warning("%s; %.1f s animated from the audio alone", _matched(alignment), alignment.unexplained_seconds)
        elif alignment.doubtful:
            log.warning("%s", _matched(alignment))
        return alignment

    def say(
        self,
        text: str,
        voice: str | None = None,
        lang: str | None = None,
        fps: float | None = None,
        *,
        style: Style | None = None,
    ) -> tuple[Speech, Animation]:
        """Speak `text` with a TTS voice and animate it from the voice's own phoneme timings (styled
        by `style`, default: the animator's)."""
        from .text import normalize_text
        from .tts import load_voice  # a TTS engine loads only when speech is synthesised

        tts = load_voice(voice, lang)
        speech = tts.synthesize(normalize_text(text, tts.info.language))  # read as `align` reads it
        duration = len(speech.audio) / speech.sample_rate
        pcm = load_audio(speech.audio, speech.sample_rate)
        return speech, self.animate_phones(speech.phones, duration, fps, audio=pcm, text=text, style=style)


def _checked_style(style: object) -> Style | None:
    """`style` (a `Style` or None); TalkfaceError for anything else, which failed as an AttributeError deep in
    the first frame (a string or a dict of options: `Style.from_options` parses those)."""
    if style is not None and not isinstance(style, Style):
        raise TalkfaceError(f"style must be a talkface.Style or None, not {type(style).__name__} "
                            f"(Style.from_options parses the command line's options)")  # fmt: skip
    return style


def _set_aside(alignment: Alignment) -> bool:
    """Whether `_fitting` set the transcript aside: its one unexplained span is the whole clip."""
    spans = alignment.unexplained
    return len(spans) == 1 and spans[0][0] == 0.0 and spans[0][1] >= alignment.phones[-1].end - 1e-6


def _matched(alignment: Alignment) -> str:
    return f"{alignment.matched} of {alignment.words} words matched the audio"


def _patched(anim: Animation, heard: np.ndarray, spans: Sequence[tuple[float, float]]) -> Animation:
    """`anim` with its mouth, jaw and tongue taken from `heard` (weights of the same frames animated
    from the sound) over `spans` (seconds), cross-faded over `_SEAM` either side so that no seam shows."""
    t = anim.times
    inside = np.zeros(len(t))
    for start, end in spans:  # 1 inside a span, falling to 0 over _SEAM outside it
        outside = np.maximum(start - t, t - end) / _SEAM
        inside = np.maximum(inside, np.clip(1.0 - outside, 0.0, 1.0))
    mix = (0.5 - 0.5 * np.cos(np.pi * inside))[:, None]  # a smooth ramp, flat at both ends
    weights = anim.weights.copy()
    weights[:, _MOUTH] += mix * (heard[:, _MOUTH] - weights[:, _MOUTH])
    return Animation(weights, anim.fps, anim.names)
