"""One line of a batch: the run's `Settings`, the `Task` a worker gets, and `animate_line`, the one
worker function the process pool and Ray tasks run alike.

Each worker process loads the model once (`_animator`). A line's seed comes from the manifest or
from the line's output name, never from the worker, so the outputs are the same whatever runs them.
A line's hash (`_digest`, with the run's `_run_key`) covers everything its output depends on, so
a re-run skips the lines whose hash is unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import export
from ..animation import MAX_FPS
from ..animator import ENGINES, Animator
from ..errors import TalkfaceError, checked_number
from ..export.provenance import clip_provenance
from ..files import opened, read_text
from ..post import FaceParams, Style, load_track, parse_assignments
from .manifest import Line


@dataclass(frozen=True)
class Settings:
    """What every line gets unless its manifest row says otherwise (the options of `talkface animate`).

    `style.seed` is a base: a line without a ``seed`` gets one derived from it and the line's
    output name. `lang` is the transcripts' language as `talkface say --lang` takes it (default English)."""

    fps: float = 30.0
    engine: str = "neural"
    model: str | None = None
    style: Style = field(default_factory=Style)
    strict_text: bool = False
    lang: str | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise TalkfaceError(f"unknown engine {self.engine!r}; choose one of: {', '.join(ENGINES)}")
        checked_number(self.fps, "fps", 1, MAX_FPS)


@dataclass(frozen=True)
class LineResult:
    """What became of one line; also its record in the report.

    `status` is "ok", "failed" (`error` says why) or "skipped" (done by an earlier run, and
    nothing it depends on has changed). `warning`: what went less than well (a transcript that
    hardly fits). `words`, `words_matched`: the transcript's words and how many fit the sound.
    `seconds`: the time it took."""

    line: int
    audio: str
    output: str
    status: str
    error: str | None = None
    warning: str | None = None
    duration_s: float | None = None
    words: int | None = None
    words_matched: int | None = None
    seconds: float = 0.0
    hash: str | None = None


class Task(NamedTuple):
    """A line to animate, sent to a worker: the line, the run's settings and their fingerprint,
    the output folder, and the line's hash from the last run that did it (None: redo it)."""

    line: Line
    settings: Settings
    key: str
    out_dir: str
    previous: str | None


_ANIMATORS: dict[tuple[str, str | None, bool], Animator] = {}


def animate_line(task: Task) -> LineResult:
    """Animate one line and write its output atomically, or say why not; never raises. The one
    worker function, run by the process pool and by Ray tasks alike."""
    started = time.perf_counter()
    line = task.line
    done = functools.partial(LineResult, line.number, line.source, line.output)
    digest = None
    try:
        style, fps, text, lang = _line_settings(line, task.settings)
        digest, audio_sha256 = _digest(task, style, fps, text, lang)
        target = Path(task.out_dir) / line.output
        sidecar = export.sidecar_path(target, line.fmt)  # (written with it: both there, or the line runs again)
        if digest == task.previous and target.is_file() and (sidecar is None or sidecar.is_file()):
            return done("skipped", seconds=round(time.perf_counter() - started, 4), hash=digest)
        with _warnings() as warnings:
            animator = _animator(task.settings)
            clip = animator.clip(line.audio, text, fps, lang=lang, style=style)
            metadata = clip_provenance(clip, animator, audio_sha256) | clip.metadata
            export.write(clip.animation, target, line.fmt, sound_file=line.source, metadata=metadata)
        aligned = clip.alignment
        return done(
            "ok",
            warning="; ".join(warnings) or None,
            duration_s=round(clip.animation.duration, 3),
            words=aligned.words if aligned else None,
            words_matched=aligned.matched if aligned else None,
            seconds=round(time.perf_counter() - started, 4),
            hash=digest,
        )
    except TalkfaceError as e:
        return done("failed", error=str(e), seconds=round(time.perf_counter() - started, 4), hash=digest)
    except Exception as e:  # a bug: this line fails, the worker and the rest go on
        error = f"internal error: {type(e).__name__}: {e}"
        return done("failed", error=error, seconds=round(time.perf_counter() - started, 4), hash=digest)


def _line_settings(line: Line, settings: Settings) -> tuple[Style, float, str | None, str | None]:
    """The style, frame rate, transcript and the transcript's language a line asks for."""
    given = line.options
    style = settings.style
    if "emotion" in given and "emotion_track" in given:
        raise TalkfaceError("give either emotion or emotion_track, not both")
    if "emotion" in given:
        emotion = given["emotion"]
        if not isinstance(emotion, str | dict):
            raise TalkfaceError(f'emotion must be like "joy=0.7" or {{"joy": 0.7}}, not {emotion!r}')
        style = replace(style, emotion=emotion.lower() if isinstance(emotion, str) else emotion)
    if "emotion_track" in given:
        style = replace(style, emotion=load_track(given["emotion_track"]))
    if "face" in given:
        face = given["face"]
        if not isinstance(face, str | dict):
            raise TalkfaceError(f'face must be like "jawStrength=0.8" or {{"jawStrength": 0.8}}, not {face!r}')
        values = parse_assignments(face, "face") if isinstance(face, str) else face
        style = replace(style, face=FaceParams.from_mapping(values, style.face.multipliers, style.face.offsets))
    seed = checked_number(given["seed"], "seed", 0, 2**63 - 1, whole=True) if "seed" in given else None
    style = replace(style, seed=int(seed) if seed is not None else _seed(style.seed, line.output))
    fps = checked_number(given["fps"], "fps", 1, MAX_FPS) if "fps" in given else settings.fps
    if "text" in given and "text_file" in given:
        raise TalkfaceError("give either text or text_file, not both")
    text = read_text(given["text_file"], "transcript") if "text_file" in given else given.get("text")
    return style, fps, text, given.get("lang", settings.lang)


def _seed(base: int, output: str) -> int:
    """A line's own seed, from the run's and the line's output name: the same wherever it runs."""
    return int.from_bytes(hashlib.sha256(f"{base}/{output}".encode()).digest()[:8], "big") >> 1


def _digest(task: Task, style: Style, fps: float, text: str | None, lang: str | None) -> tuple[str, str]:
    """SHA-256 of everything a line's output depends on (the audio's bytes, the transcript, the line's
    settings and the run's, `Task.key`), and of the audio's bytes alone (for its provenance): hex."""
    line = task.line
    what = {"run": task.key, "output": line.output, "format": line.fmt, "sound_file": line.source, "fps": fps,
            "text": text, "lang": lang, "style": _plain(style)}  # fmt: skip
    digest = hashlib.sha256(json.dumps(what, sort_keys=True).encode())
    with opened(line.audio, "audio") as f:
        if not os.fstat(f.fileno()).st_size:
            raise TalkfaceError(f"{line.audio}: audio is empty (a file of 0 bytes)")
        audio = hashlib.file_digest(f, "sha256")
    digest.update(audio.digest())
    return digest.hexdigest(), audio.hexdigest()


def _plain(value: object) -> object:
    """A style (dataclasses, mappings, arrays, numbers) as plain JSON values, for hashing."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray | list | tuple):
        return [_plain(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    return value.item() if isinstance(value, np.generic) else value


def _animator(settings: Settings) -> Animator:
    """This process's animator for the run's engine and model, loaded with its first line."""
    key = (settings.engine, settings.model, settings.strict_text)
    if key not in _ANIMATORS:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, "blas")  # one core per worker: many small matrix products, threads would only contend
        animator = Animator(engine=settings.engine, model=settings.model, strict_text=settings.strict_text)
        if settings.engine == "neural":
            _ = animator.file_engine  # loaded with the first line: every line after shares it
        _ANIMATORS[key] = animator
    return _ANIMATORS[key]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _warnings() -> Iterator[list[str]]:
    """The library's warnings while a line is animated, for its record instead of standard error."""
    logger, handler = logging.getLogger("talkface"), _Collect()
    propagate, logger.propagate = logger.propagate, False
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _run_key(settings: Settings) -> str:
    """The fingerprint of what every line's output depends on besides the line: talkface's
    version, its packaged models and the run's engine and model."""
    from ..model import FaceModel

    assets = files("talkface") / "assets"
    packaged = {p.name: json.loads(p.read_text()).get("sha256") for p in assets.iterdir() if p.name.endswith(".json")}
    model = FaceModel(settings.model).meta.get("sha256") if settings.model else None
    key = {"talkface": version("talkface"), "packaged": packaged, "engine": settings.engine, "model": model,
           "strict_text": settings.strict_text}  # fmt: skip
    return json.dumps(key, sort_keys=True)
