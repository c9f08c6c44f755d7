"""Streaming: audio in as it arrives, finished animation frames out, the same frames as offline.

    pcm chunks ─▶ 16 kHz ─▶ log-mel (100 Hz) ─▶ conv net, cached per layer ─▶ lip closures
              ─▶ resample to fps ─▶ Post (emotion, liveliness, face parameters) ─▶ frames

A frame is final once the audio it depends on has arrived. For the frame at time T that is the
audio up to T + `latency`:

- 80 ms: the model's look-ahead (8 feature frames);
- 12.5 ms: half the 25 ms analysis window of the last of those feature frames;
- at most 7.5 ms for the interpolation to the output rate (6.7 ms at 30 and 60 fps): a frame
  whose time lies within 2.5 ms after a 100 Hz frame takes that frame as it is (`SNAP`) rather
  than wait for the next one.

That is 99.2 ms at 30 and 60 fps, at most 100 ms at any rate; nothing else waits. Lip closures
are enforced causally (a closure holds from the second frame the viseme head hears it, for at
least 20 ms, and is released over 30 ms; an output frame next to a whole closure shows it whole),
rounded vowels get a floor of lip rounding, and the post-processing looks at most 80 ms ahead
(see `post.prosody.Listener`; with a speech-encoder model, whose frames wait for their window
anyway, 250 ms, so that its face rests at once in a long silence).
`Animator.animate` without a transcript runs this same code over the whole clip (offline is
streaming with the whole clip in one chunk), so the two agree to float rounding however the
audio is cut.

A speech-encoder model (`talkface-offline`, what `Animator.animate` uses for files) takes the
place of log-mel and the conv net: the stream's audio is encoded window by window as it arrives
(`SpeechEncoder.advance`) and its head runs where its reach is covered. Everything after it is the
same; only its frames wait for their window (up to 18 s), so live streams use the log-mel model.
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
from collections.abc import Callable, Mapping

import numpy as np
import soxr

from .animation import Animation, checked_fps
from .articulation import Articulations
from .audio import MAX_RATE, SAMPLE_RATE, to_mono
from .engine import Engine
from .errors import TalkfaceError, checked_number
from .features import HOP, WIN, num_frames, windows
from .post import FaceParams, Style
from .post.driver import Post, process
from .post.prosody import Listener, listen
from .post.settings import EmotionTrack, check_emotions, parse_emotions
from .post.smoothing import Blocks
from .rig import ARKIT_NAMES

PIECE = 30 * SAMPLE_RATE  # longest audio handled in one step (bounded memory for long files)
SNAP = 0.25  # of a 100 Hz frame: an output frame this close after one takes it without interpolating


def _positions(frames: np.ndarray | int, fps: float, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Output frames' places on the model's frame grid (fractional), and the model frame each needs last
    (for an array of frame numbers, or one)."""
    pos = frames / fps * rate
    lo = np.floor(pos + 1e-9)  # (1e-9: float noise of k / fps)
    return pos, lo + (pos - lo >= SNAP)


def _alone(method: Callable) -> Callable:
    """A `Stream` method that refuses to run while another thread is inside one (their chunks would
    interleave in no defined order): TalkfaceError rather than a silently garbled stream."""

    @functools.wraps(method)
    def alone(self: Stream, *args: object, **kwargs: object) -> object:
        if not self._busy.acquire(blocking=False):
            raise TalkfaceError("the stream is being fed from another thread; feed a stream from one thread at a time")
        try:
            return method(self, *args, **kwargs)
        finally:
            self._busy.release()

    return alone


class Stream:
    """A streaming session (from `Animator.stream`): `push` audio chunks, get the frames that are
    final; `flush` at the end for the rest. Frames come in order, numbered from 0 at 1/fps."""

    def __init__(self, engine: Engine, fps: float, style: Style, sample_rate: int = SAMPLE_RATE) -> None:
        self.engine, self.fps = engine, checked_fps(fps, math.inf)
        self._busy = threading.RLock()  # (`push` calls `write`)
        self.sample_rate = _rate(sample_rate)
        self._resampler = self._make_resampler()
        self._model = engine.state()
        self._articulations = Articulations(engine.rate, engine.model.viseme_bias)
        self._post = Post(style, self.fps)
        # a speech-encoder model's frames wait 2 s for their window: its listener may look 250 ms ahead
        self._listener = Listener(self.fps, rest_ahead=engine.encoder is not None)
        self._audio = np.zeros(0, np.float32)  # 16 kHz samples from _audio_start on
        self._audio_start = 0
        self._received = 0  # 16 kHz samples so far
        self._features_done = 0  # feature frames computed
        self._given = 0  # samples handed to a speech-encoder model
        self._speech = np.zeros((0, len(ARKIT_NAMES)), np.float32)  # 100 Hz frames from _speech_start on
        self._whole = np.zeros(0, bool)  # which of them hold a closure whole
        self._speech_start = 0
        self._model_frames = 0
        self.frames_out = 0
        self.ending = False
        self.closed = False

    @property
    def latency(self) -> float:
        """Algorithmic latency in seconds: audio needed past a frame's time before it is final."""
        rate = self.engine.rate
        pos, last = _positions(np.arange(1000), self.fps, rate)
        gap = max(0.0, float((last - pos).max())) / rate
        return self.engine.delay + gap

    def _make_resampler(self) -> soxr.ResampleStream | None:
        if self.sample_rate == SAMPLE_RATE:
            return None
        return soxr.ResampleStream(self.sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")

    @_alone
    def set_emotion(self, emotion: str | dict[str, float] | EmotionTrack | None) -> None:
        """Change the emotion from the next frame on ("joy=0.7", {"joy": 0.7}, None for neutral, or keyframes
        in the stream's time); it eases in over the style's transition time."""
        if isinstance(emotion, EmotionTrack):
            self._post.set_emotion(emotion)
            return
        if not isinstance(emotion, str | Mapping | None):  # (a list or a number was an AttributeError)
            raise TalkfaceError(f'emotion must be "name=weight,...", a mapping, an EmotionTrack or None, '
                                f"not {type(emotion).__name__}")  # fmt: skip
        weights = parse_emotions(emotion) if isinstance(emotion, str) else check_emotions(emotion or {})
        self._post.set_emotion(weights)

    @_alone
    def set_face(self, face: FaceParams) -> None:
        """Change the face parameters from the next frame on."""
        if not isinstance(face, FaceParams):  # (a dict was taken, and broke every later push with AttributeError)
            raise TalkfaceError(f"face must be of type FaceParams, not {type(face).__name__}")
        self._post.set_face(face)

    @_alone
    def write(self, pcm: np.ndarray, sample_rate: int | None = None) -> None:
        """Take in a chunk of audio without running the model (`push` does both; a server batches
        many streams' `write`s into one `advance`)."""
        if self.ending:
            raise TalkfaceError("the stream has been flushed; start a new one")
        if sample_rate is not None and _rate(sample_rate) != self.sample_rate:
            raise TalkfaceError(f"the stream is at {self.sample_rate} Hz; a chunk at {sample_rate} Hz cannot join it")
        audio = to_mono(pcm, "audio chunk")
        if self._resampler is not None:
            audio = self._resampler.resample_chunk(audio, last=False)
        self._append(audio)

    def _append(self, audio: np.ndarray) -> None:
        self._audio = np.concatenate([self._audio, audio.astype(np.float32, copy=False)])
        self._received += audio.size

    @_alone
    def push(self, pcm: np.ndarray, sample_rate: int | None = None) -> Animation:
        """Add a chunk (any length; float in [-1, 1] or integer PCM, mono or [samples, channels])
        and return the frames that it made final (often none or one)."""
        try:
            pcm = np.asarray(pcm)
        except ValueError:  # a list of rows of unequal length
            raise TalkfaceError("audio chunk: a list of samples or of [samples, channels] rows of one length") from None
        if pcm.ndim not in (1, 2):
            raise TalkfaceError("audio must be 1-D or [samples, channels]")
        step = max(1, PIECE * self.sample_rate // SAMPLE_RATE)
        parts = []
        for start in range(0, max(1, pcm.shape[0]), step):
            self.write(pcm[start : start + step], sample_rate)
            parts.append(advance(self.engine, [self])[0])
        return Animation.join(parts)

    @_alone
    def flush(self) -> Animation:
        """End the stream: the last frames, with silence after the audio as offline."""
        if self.ending:
            return Animation.zeros(0, self.fps, self._post_names())
        if self._resampler is not None:
            self._append(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        parts = []
        while self.unheard > PIECE:  # long unprocessed audio, in pieces
            parts.append(advance(self.engine, [self])[0])
        self.ending = True
        parts.append(advance(self.engine, [self])[0])
        self.closed = True
        return Animation.join(parts)

    @property
    def unheard(self) -> int:
        """16 kHz samples received that `advance` has yet to analyse: it takes at most `PIECE` a call
        (bounded time and memory), so a long chunk leaves the rest for the calls after."""
        return max(0, ((self._received - WIN // 2) // HOP + 1 - self._features_done) * HOP)

    def _post_names(self) -> tuple[str, ...]:
        """The channels of this stream's frames."""
        return self._post.names

    # --- the steps `advance` runs ---

    def _windows(self) -> np.ndarray:
        """The analysis windows of the feature frames that became final (all, when ending)."""
        if self.ending:
            stop = num_frames(self._received)
        else:
            stop = max(self._features_done, (self._received - WIN // 2) // HOP + 1)
            stop = min(stop, self._features_done + PIECE // HOP)
        base = self._audio_start // HOP
        frames = windows(self._audio, self._features_done - base, stop - base)
        self._features_done = stop
        return frames

    def _new_audio(self) -> np.ndarray | None:
        """The 16 kHz audio received since the last call, for a speech-encoder model (else None)."""
        if self.engine.encoder is None:
            return None
        audio = self._samples(self._given, self._received)
        self._given = self._received
        return audio

    def _samples(self, start: int, stop: int) -> np.ndarray:
        """16 kHz audio at absolute sample indices [start, stop), zeros outside what is kept."""
        out = np.zeros(stop - start, np.float32)
        a, b = max(start, self._audio_start), min(stop, self._audio_start + self._audio.size)
        if b > a:
            out[a - start : b - start] = self._audio[a - self._audio_start : b - self._audio_start]
        return out

    def _finished(self, speech: np.ndarray) -> None:
        """Count the output frames post-processed, and forget what no later frame needs."""
        if speech.shape[0]:
            self.frames_out += speech.shape[0]
            self._trim()

    def _trim(self) -> None:
        """Forget audio and 100 Hz frames that no future frame needs."""
        keep = min(self._model_frames, math.floor(self.frames_out / self.fps * self.engine.rate) - 1)
        if keep > self._speech_start:
            self._speech = self._speech[keep - self._speech_start :]
            self._whole = self._whole[keep - self._speech_start :]
            self._speech_start = keep
        need = min((self._features_done - 2) * HOP, self._listener.next * HOP - 2 * WIN)
        need = max(self._audio_start, need - need % HOP)
        if need > self._audio_start:
            self._audio = self._audio[need - self._audio_start :]
            self._audio_start = need


def advance(engine: Engine, streams: list[Stream]) -> list[Animation]:
    """Run every stream's pending audio through the model as one batch; the frames each made final."""
    if not streams:
        return []
    windows = [s._windows() for s in streams]
    outs = engine.run([s._model for s in streams], windows, [s._new_audio() for s in streams],
                      [s.ending for s in streams])  # fmt: skip
    speech = _resample_all(engine, streams, outs)
    cues = listen([(s._listener, s.frames_out, x.shape[0], s._samples) for s, x in zip(streams, speech, strict=True)])
    made = process([s._post for s in streams], speech, cues)
    for s, x in zip(streams, speech, strict=True):
        s._finished(x)
    return made


def _resample_all(engine: Engine, streams: list[Stream], outs: list[np.ndarray]) -> list[np.ndarray]:
    """Closures and rounding on each stream's new model frames; the output frames [k, 52] that they
    complete (before post), per stream."""
    arkit = len(ARKIT_NAMES)
    model = np.concatenate(outs) if len(outs) > 1 else outs[0]
    weights = model[:, :arkit].copy()
    heard = (model[:, arkit:] + streams[0]._articulations.bias).argmax(axis=1).tolist()  # (one engine: one bias)
    edges = np.cumsum([0] + [o.shape[0] for o in outs]).tolist()
    spans = list(itertools.pairwise(edges))
    whole = np.zeros(len(heard), bool)
    for s, (a, b) in zip(streams, spans, strict=True):
        if b > a:
            whole[a:b] = s._articulations.follow(weights[a:b], heard[a:b])
    weights = weights.clip(0.0, 1.0)
    for s, (a, b) in zip(streams, spans, strict=True):
        if b > a:
            s._speech = np.concatenate([s._speech, weights[a:b]])
            s._whole = np.concatenate([s._whole, whole[a:b]])
            s._model_frames += b - a
    rate = engine.rate
    fps = np.array([s.fps for s in streams])
    made = np.array([s._model_frames for s in streams])
    done = np.array([s.frames_out for s in streams])
    count = done.copy()  # the frames whose model frames are all there
    going = ~np.array([s.ending for s in streams])
    # and that the clip will hold however it ends: it ends with at least a model frame for each feature
    # frame computed so far (at under 6.25 fps a frame's model frames can be there before that is sure)
    sure = np.round(np.array([max(s._features_done, s._model_frames) for s in streams]) / rate * fps)
    while (more := going & (_positions(count, fps, rate)[1] < made) & (count < sure)).any():
        count += more
    for i, s in enumerate(streams):
        if s.ending:
            n = s._model_frames
            count[i] = max(1, round(n / rate * s.fps)) if n else 0
    new = np.flatnonzero(count > done).tolist()  # (most 20 ms chunks at 30 fps make no frame)
    out = [np.zeros((0, arkit), np.float32)] * len(streams)
    if not new:
        return out
    sizes = (count - done)[new]
    starts = np.repeat(done[new], sizes)
    ks = np.arange(len(starts)) - np.repeat(np.cumsum(sizes) - sizes, sizes) + starts
    n = np.repeat(made[new], sizes)
    pos, last = _positions(ks, np.repeat(fps[new], sizes), rate)
    pos = pos.clip(0, n - 1)
    lo = np.floor(pos + 1e-9).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    held = [streams[i]._speech for i in new]
    shift = np.cumsum([0] + [len(h) for h in held[:-1]]) - np.array([streams[i]._speech_start for i in new])
    lo_at, hi_at = lo + np.repeat(shift, sizes), hi + np.repeat(shift, sizes)
    speech = np.concatenate(held)
    closed = np.concatenate([streams[i]._whole for i in new])
    whole_lo, whole_hi = closed[lo_at], closed[hi_at]
    # between a frame that holds a closure whole and one that does not, show the closure rather
    # than a blend, so that fewer brief closures are lost between two output frames
    frac = np.where(whole_lo > whole_hi, 0.0, np.where(whole_hi > whole_lo, 1.0, pos - lo))
    frac = np.where(last == lo, 0.0, frac)
    frac = frac[:, None].astype(np.float32)
    frames = speech[lo_at] * (1 - frac) + speech[hi_at] * frac
    for i, part in zip(new, Blocks(sizes).split(frames), strict=True):
        out[i] = part
    return out


def _rate(sample_rate: int) -> int:
    """A stream's sample rate in Hz, taken as `load_audio` takes one (16000.0 and numpy's numbers too)."""
    return int(checked_number(sample_rate, "sample rate", 1000, MAX_RATE, whole=True))
