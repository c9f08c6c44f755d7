"""`talkface batch`: a whole dialogue library, one animation file per line, on every core or on a Ray cluster.

A manifest lists the lines: a CSV or JSON Lines file with an ``audio`` column and optional
`COLUMNS`, or a folder of speech files, each with its transcript in a same-name ``.txt`` beside it
if it has one. Paths in a manifest are relative to its folder; columns a line leaves out take the
run's `Settings`.

One worker function, `animate_line`, animates a line (`Animator.clip`, as `talkface animate` and
the server do) and writes its output atomically. It runs in a process pool (`jobs`) or as Ray
tasks (`ray`); each worker process loads the model once. A line's seed comes from the manifest or
from the line's output name, never from the worker, so the outputs are the same whatever runs them.

The report (``report.jsonl`` in the output folder) gets each line's record as soon as the line is
done, appended and flushed, so a killed run keeps it. A record holds a hash of everything the
output depends on (the audio's bytes, the transcript, the settings, the talkface version and
models); a re-run skips the lines whose output exists and whose hash is unchanged (`force` redoes
them), and at its end rewrites the report with one record per manifest line. Ctrl-C lets the lines
in progress finish, then stops; a second Ctrl-C stops at once. As every output is written
atomically, even SIGKILL leaves no half-written file, and the next run clears the temporary files
such a kill leaves.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import functools
import hashlib
import io
import json
import logging
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from importlib.metadata import version
from importlib.resources import files
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np

from . import export
from .animator import ENGINES, Animator
from .errors import TalkfaceError
from .export.provenance import clip_provenance
from .files import opened, read_text, temp_target, write_text
from .post import FaceParams, Style, load_track, parse_assignments

log = logging.getLogger(__name__)

#: Manifest columns: the audio file, then what a line may set for itself.
COLUMNS = ("audio", "text", "text_file", "lang", "emotion", "emotion_track", "face", "seed", "fps", "format", "output")
#: Speech files a folder manifest takes.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")
#: The report's name in the output folder.
REPORT = "report.jsonl"
_MANIFEST_LIMIT = 1 << 28  # 256 MB: millions of lines
_PATH_COLUMNS = ("text_file", "emotion_track")  # relative to the manifest's folder, like `audio`
_LOG_EVERY = 10.0  # seconds between progress lines when standard error is not a terminal


class ManifestError(TalkfaceError):
    """A manifest that cannot be read as one at all (the CLI's usage error); a bad row is only that line's error."""


@dataclass(frozen=True)
class Line:
    """One manifest line: its audio (as the manifest gives it, and as an absolute path), its
    output file (inside the output folder) and format, and the other columns it sets, as given;
    `error` says what is wrong with a bad row, which is reported and not animated."""

    number: int  # the line of the manifest file (for a folder: the file's place in name order)
    source: str
    audio: str
    output: str
    fmt: str
    options: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None


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
        _number(self.fps, "fps", 1, 1000)


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


# --- manifests ---


def read_manifest(source: str | os.PathLike, fmt: str | None = None) -> list[Line]:
    """The lines of a manifest: a ``.csv`` or ``.jsonl`` file, or a folder of speech files.

    `fmt` is the output format of lines that give none (default: by the output's extension, else
    CSV). A line without an ``output`` is written beside where its audio lies relative to the
    manifest, with the format's suffix. ManifestError if the manifest cannot be read as one at
    all; a bad row becomes a `Line` with its `error`.
    """
    path = Path(source)
    if fmt is not None and fmt not in export.FORMATS:
        raise TalkfaceError(f"unknown format {fmt!r}; choose one of: {', '.join(export.FORMATS)}")
    if path.is_dir():
        rows, base = _folder_rows(path), path
    else:
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".jsonl", ".ndjson"):
            raise ManifestError(f"{source}: a manifest is a .csv or .jsonl file, or a folder of speech files")
        try:
            text = read_text(path, "manifest", limit=_MANIFEST_LIMIT)
        except TalkfaceError as e:
            raise ManifestError(str(e)) from None
        rows, base = (_csv_rows if suffix == ".csv" else _jsonl_rows)(path, text), path.parent
    taken: dict[str, int] = {}
    lines = [_line(number, values, base.absolute(), fmt, taken) for number, values in rows]
    if not lines:
        raise ManifestError(f"{source}: no lines in it")
    return lines


def _csv_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [name.strip().lower() for name in reader.fieldnames or []]
        if not header:
            return
        if "audio" not in header:
            raise ManifestError(f"{path}: no 'audio' column in the header line (e.g. 'audio,text,output')")
        _unused(path, header)
        reader.fieldnames = header
        for row in reader:
            extra = row.pop(None, None)  # type: ignore[call-overload]
            error = f"{len(header) + len(extra)} fields, more than the header's {len(header)}" if extra else None
            yield reader.line_num, error or row
    except csv.Error as e:
        raise ManifestError(f"{path}: not a readable CSV manifest (line {reader.line_num}: {e})") from None


def _jsonl_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    first = True
    for number, raw in enumerate(text.split("\n"), 1):
        if not raw.strip():
            continue
        try:
            values = json.loads(raw)
        except (ValueError, RecursionError):
            values = None
        if not isinstance(values, dict):
            if first:
                example = '{"audio": "a.wav"}'
                raise ManifestError(
                    f"{path}: line {number} is not a JSON object; JSON Lines has one per line, e.g. {example}"
                )
            yield number, "not a JSON object"
            continue
        values = {str(k).strip().lower(): v for k, v in values.items()}
        if first:
            _unused(path, values)
        first = False
        yield number, values


def _folder_rows(folder: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    found = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.suffix.lower() in AUDIO_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.is_file()
    )
    for number, name in enumerate(found, 1):
        transcript = Path(name).with_suffix(".txt")
        yield (
            number,
            {"audio": name, **({"text_file": transcript.as_posix()} if (folder / transcript).is_file() else {})},
        )


def _unused(path: Path, names: Iterable[str]) -> None:
    unused = [name for name in names if name not in COLUMNS]
    if unused:
        log.warning("%s: columns not used: %s (known: %s)", path, ", ".join(unused), ", ".join(COLUMNS))


def _line(number: int, values: dict[str, Any] | str, base: Path, fmt: str | None, taken: dict[str, int]) -> Line:
    """A manifest row as a `Line`; the row's `error` when it is bad (`taken`: outputs of earlier lines)."""
    if isinstance(values, str):
        return Line(number, "", "", "", "", error=values)
    given = {k: v.strip() if isinstance(v, str) else v for k, v in values.items() if k in COLUMNS}
    given = {k: v for k, v in given.items() if v not in (None, "")}
    source = given.pop("audio", "")
    if not isinstance(source, str):
        return Line(number, "", "", "", "", error=f"audio must be a file path, not {source!r}")
    try:
        if not source:
            raise TalkfaceError("no audio file given")
        for name in ("text", "text_file", "lang", "emotion_track", "format", "output"):
            if name in given and not isinstance(given[name], str):
                raise TalkfaceError(f"{name} must be a string, not {given[name]!r}")
        line_fmt = given.pop("format", fmt)
        output = given.pop("output", None)
        if output is not None:
            output = _inside(output)
            line_fmt = export.format_for(output, line_fmt)
        else:
            line_fmt = export.format_for("", line_fmt or "csv")
            where = Path(source)
            where = where if not where.is_absolute() and ".." not in where.parts else Path(where.name)
            output = where.with_suffix(export.SUFFIXES[line_fmt]).as_posix()
        if output == REPORT:
            raise TalkfaceError(f"output {REPORT} is the report's name")
        if output in taken:
            raise TalkfaceError(f"output {output} is also line {taken[output]}'s")
    except TalkfaceError as e:
        return Line(number, source, "", "", "", error=str(e))
    taken[output] = number
    for name in _PATH_COLUMNS:
        if name in given:
            given[name] = str(base / given[name])
    return Line(number, source, str(base / source), output, line_fmt, given)


def _inside(output: str) -> str:
    """An ``output`` column as a relative path inside the output folder; TalkfaceError if it leaves it."""
    path = Path(output)
    if path.is_absolute() or ".." in path.parts or not path.name:
        raise TalkfaceError(f"output must be a file name inside the output folder, not {output!r}")
    return path.as_posix()


# --- one line: the worker function ---

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
        digest = _digest(task, style, fps, text, lang)
        target = Path(task.out_dir) / line.output
        if digest == task.previous and target.is_file():
            return done("skipped", seconds=round(time.perf_counter() - started, 4), hash=digest)
        with _warnings() as warnings:
            animator = _animator(task.settings).restyled(style)
            clip = animator.clip(line.audio, text, fps, lang=lang)
            metadata = clip_provenance(clip, animator, line.audio) | clip.metadata
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
    seed = _number(given["seed"], "seed", 0, 2**63 - 1, whole=True) if "seed" in given else None
    style = replace(style, seed=int(seed) if seed is not None else _seed(style.seed, line.output))
    fps = _number(given["fps"], "fps", 1, 1000) if "fps" in given else settings.fps
    if "text" in given and "text_file" in given:
        raise TalkfaceError("give either text or text_file, not both")
    text = read_text(given["text_file"], "transcript") if "text_file" in given else given.get("text")
    return style, fps, text, given.get("lang", settings.lang)


def _number(value: object, name: str, lo: float, hi: float, whole: bool = False) -> float:
    """A number from a manifest cell (a number or its text) within [lo, hi]; TalkfaceError otherwise."""
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        number = int(value) if whole else float(value)
    except (ValueError, OverflowError):
        raise TalkfaceError(f"{name} must be a {'whole ' if whole else ''}number, not {value!r}") from None
    if not (math.isfinite(number) and lo <= number <= hi):
        raise TalkfaceError(f"{name} must be from {lo:g} to {hi:g}, not {value!r}")
    return number


def _seed(base: int, output: str) -> int:
    """A line's own seed, from the run's and the line's output name: the same wherever it runs."""
    return int.from_bytes(hashlib.sha256(f"{base}/{output}".encode()).digest()[:8], "big") >> 1


def _digest(task: Task, style: Style, fps: float, text: str | None, lang: str | None) -> str:
    """SHA-256 of everything a line's output depends on: the audio's bytes, the transcript, the line's
    settings and the run's (`Task.key`)."""
    line = task.line
    what = {"run": task.key, "output": line.output, "format": line.fmt, "sound_file": line.source, "fps": fps,
            "text": text, "lang": lang, "style": _plain(style)}  # fmt: skip
    digest = hashlib.sha256(json.dumps(what, sort_keys=True).encode())
    with opened(line.audio, "audio") as f:
        if not os.fstat(f.fileno()).st_size:
            raise TalkfaceError(f"{line.audio}: audio is empty (a file of 0 bytes)")
        digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()


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
            _ = animator.file_engine  # loaded here, so that every restyled copy shares it
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


# --- running many: a process pool, or Ray ---


class _Worker:
    """A pool process and the task it is working on."""

    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child,), name="talkface-batch", daemon=True)
        with _sigint_ignored():  # inherited: a Ctrl-C while it starts up is the parent's too
            self.process.start()
        child.close()
        self.task: Task | None = None

    def result(self) -> LineResult:
        """The answer to its task, or the task failed if the process died on it."""
        task, self.task = self.task, None
        assert task is not None
        try:
            if self.conn.poll():
                return self.conn.recv()
        except (EOFError, OSError):
            pass
        self.process.join(5)
        died = f"the worker process died on this line (exit status {self.process.exitcode})"
        return LineResult(task.line.number, task.line.source, task.line.output, "failed", error=died)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored meanwhile (in the main thread, where signals arrive)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _serve(conn: Connection) -> None:
    """A pool process: animate the tasks it is sent until told to stop (None) or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while True:
        try:
            task = conn.recv()
            if task is None:
                return
            conn.send(animate_line(task))
        except (EOFError, OSError):  # the parent is gone
            return


def _pooled(tasks: Iterator[Task], jobs: int, stop: threading.Event) -> Iterator[LineResult]:
    """Results of `tasks` from up to `jobs` worker processes, as they finish. A process that dies
    fails only its own line (none, if it was idle) and is replaced. Once `stop` is set no task is started."""
    ctx = multiprocessing.get_context("spawn")  # a clean process, no fork of this one's threads
    workers: list[_Worker] = []
    try:
        while True:
            while not stop.is_set():
                worker = next((w for w in workers if w.task is None), None)
                if worker is None and len(workers) == jobs:
                    break
                task = next(tasks, None)
                if task is None:
                    break
                if worker is not None and not worker.process.is_alive():  # it died while idle
                    workers.remove(worker)
                    worker.conn.close()
                    worker = None
                if worker is None:
                    worker = _Worker(ctx)
                    workers.append(worker)
                with contextlib.suppress(OSError):  # it died just now: the line fails below, as on any death
                    worker.conn.send(task)
                worker.task = task
            busy = [w for w in workers if w.task is not None]
            if not busy:
                return
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
            for worker in busy:
                if worker.conn in ready or worker.process.sentinel in ready:
                    result = worker.result()
                    if not worker.process.is_alive():
                        workers.remove(worker)
                        worker.conn.close()
                    yield result
    finally:
        for worker in workers:
            if worker.task is None:
                with contextlib.suppress(OSError):
                    worker.conn.send(None)
            else:
                worker.process.kill()
        for worker in workers:
            worker.process.join(5)
            if worker.process.is_alive():
                worker.process.kill()
            worker.conn.close()


def _on_ray(tasks: Iterator[Task], address: str, stop: threading.Event) -> Iterator[LineResult]:
    """Results of `tasks` run as Ray tasks (the same `animate_line`), as they finish: on the Ray
    instance this process is connected to, else on the cluster at `address` ("auto": the one this
    machine is part of; "ray://HOST:10001": through Ray Client; "local": a new one on this machine)."""
    try:
        import ray
    except ImportError:
        raise TalkfaceError("--ray needs the batch extra: pip install 'talkface[batch]'") from None
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(
                address=address,
                logging_level=logging.WARNING,
                **({"include_dashboard": False} if address == "local" else {}),
            )
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise TalkfaceError(f"cannot use the Ray cluster at {address}: {e}") from None
    remote = ray.remote(num_cpus=1)(animate_line)
    room = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))  # a queue per core keeps them all busy
    running: dict[Any, Task] = {}
    try:
        while True:
            while not stop.is_set() and len(running) < room and (task := next(tasks, None)) is not None:
                running[remote.remote(task)] = task
            if not running:
                return
            ready, _ = ray.wait(list(running), num_returns=1)
            task = running.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayError as e:
                error = f"Ray could not run this line: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                result = LineResult(task.line.number, task.line.source, task.line.output, "failed", error=error)
            yield result
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


@contextlib.contextmanager
def _interruptible() -> Iterator[threading.Event]:
    """An event set by the first Ctrl-C (the lines in progress finish, no more start); the second
    raises KeyboardInterrupt as usual. Only in the main thread, where signals arrive."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def interrupted(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log.warning("stopping once the lines in progress are done (Ctrl-C again to stop at once)")

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


# --- the report ---


class _Report:
    """The output folder's report: the last record of each output from earlier runs, and this run's
    records appended as they come. Holds a lock on the folder, so two runs never write it at once."""

    def __init__(self, out: Path) -> None:
        self.path = out / REPORT
        self.lock = os.open(out, os.O_RDONLY)
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.lock)
            raise TalkfaceError(f"{out}: another talkface batch is writing to this folder") from None
        self.records: dict[str, dict[str, Any]] = {}
        self.bad: dict[int, dict[str, Any]] = {}
        try:
            text = read_text(self.path, "report", limit=_MANIFEST_LIMIT) if self.path.exists() else ""
            self.file: IO[str] = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in `close`)
        except (TalkfaceError, OSError):
            os.close(self.lock)
            raise
        for raw in text.splitlines():
            with contextlib.suppress(ValueError):  # a record cut short by a kill
                record = json.loads(raw)
                if isinstance(record, dict) and isinstance(record.get("output"), str):
                    self.records[record["output"]] = record
        if text and not text.endswith("\n"):
            self.file.write("\n")  # after a record cut short

    def previous(self, output: str) -> str | None:
        """The hash of the line that wrote `output` last, if it was done."""
        record = self.records.get(output, {})
        return record.get("hash") if record.get("status") == "ok" else None

    def add(self, result: LineResult) -> None:
        if result.status == "skipped":
            return
        record = asdict(result)
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if result.output:
            self.records[result.output] = record
        else:
            self.bad[result.line] = record

    def close(self, lines: Sequence[Line]) -> None:
        """Rewrite the report with one record per manifest line that has one, in manifest order; unlock."""
        self.file.close()
        try:
            kept = []
            for line in lines:
                record = self.bad.get(line.number) if line.error else self.records.get(line.output)
                if record is not None:
                    kept.append({**record, "line": line.number, "audio": line.source})
            write_text(self.path, [json.dumps(record) + "\n" for record in kept])
        finally:
            os.close(self.lock)


def _clear_temps(out: Path, lines: Sequence[Line]) -> None:
    """Remove the temporary files a killed run left beside this run's outputs (and the report)."""
    names: dict[Path, set[str]] = {out: {REPORT}}
    for line in lines:
        if not line.error:
            target = out / line.output
            names.setdefault(target.parent, set()).add(target.name)
    for folder, wanted in names.items():
        with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(folder) as entries:
            for entry in entries:
                if temp_target(entry.name) in wanted:
                    Path(entry.path).unlink(missing_ok=True)


def _run_key(settings: Settings) -> str:
    """The fingerprint of what every line's output depends on besides the line: talkface's
    version, its packaged models and the run's engine and model."""
    from .model import FaceModel

    assets = files("talkface") / "assets"
    packaged = {p.name: json.loads(p.read_text()).get("sha256") for p in assets.iterdir() if p.name.endswith(".json")}
    model = FaceModel(settings.model).meta.get("sha256") if settings.model else None
    key = {"talkface": version("talkface"), "packaged": packaged, "engine": settings.engine, "model": model,
           "strict_text": settings.strict_text}  # fmt: skip
    return json.dumps(key, sort_keys=True)


# --- the API ---


def run(
    manifest: str | os.PathLike | Sequence[Line],
    out_dir: str | os.PathLike,
    settings: Settings | None = None,
    *,
    fmt: str | None = None,
    jobs: int | None = None,
    ray: str | None = None,
    force: bool = False,
) -> Iterator[LineResult]:
    """Animate every line of `manifest` (a path, see `read_manifest` and its `fmt`, or its lines)
    into `out_dir`, yielding each line's result as it is done (bad rows first).

    Runs on `jobs` worker processes (default: one per core), or with `ray` on a Ray cluster (an
    address, see `_on_ray`). Lines done before whose output and inputs are unchanged are skipped
    unless `force`. Ctrl-C (in the main thread) stops after the lines in progress and then raises
    KeyboardInterrupt. TalkfaceError before any work for bad settings or an unusable folder.

    >>> for result in run("lines.csv", "out/", jobs=4):
    ...     print(result.line, result.status, result.error or "")
    """
    lines = read_manifest(manifest, fmt) if isinstance(manifest, str | os.PathLike) else list(manifest)
    settings = settings or Settings()
    jobs = jobs or len(os.sched_getaffinity(0))
    key = _run_key(settings)
    out = Path(out_dir).absolute()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TalkfaceError(f"{out_dir}: cannot make the output folder ({e.strerror or e})") from None
    report = _Report(out)
    try:
        _clear_temps(out, lines)
        with _interruptible() as stop:
            for line in lines:
                if line.error:
                    result = LineResult(line.number, line.source, line.output, "failed", error=line.error)
                    report.add(result)
                    yield result
            tasks = (
                Task(line, settings, key, str(out), None if force else report.previous(line.output))
                for line in lines
                if not line.error
            )
            with contextlib.closing(_on_ray(tasks, ray, stop) if ray else _pooled(tasks, jobs, stop)) as results:
                for result in results:
                    report.add(result)
                    yield result
            if stop.is_set():
                raise KeyboardInterrupt
    finally:
        report.close(lines)


@dataclass
class Summary:
    """Counts and throughput of a run, kept up as its results come (`add`)."""

    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0
    audio_s: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def add(self, result: LineResult) -> None:
        if result.status == "ok":
            self.done += 1
            self.audio_s += result.duration_s or 0.0
        elif result.status == "failed":
            self.failed += 1
        else:
            self.skipped += 1

    def text(self) -> str:
        """One line, e.g. "500 lines: 480 done, 12 failed, 8 skipped; 0.61 h of audio in 41.2 s: 11.9 lines/s,
        53 h of audio per hour"."""
        wall = max(time.monotonic() - self.started, 1e-9)
        seen = self.done + self.failed + self.skipped
        counts = f"{self.done} done, {self.failed} failed, {self.skipped} skipped"
        rest = "" if seen == self.total else f", {self.total - seen} left"
        speed = f"{(self.done + self.failed) / wall:.1f} lines/s, {self.audio_s / wall:.0f} h of audio per hour"
        return f"{self.total} lines: {counts}{rest}; {self.audio_s / 3600:.2f} h of audio in {wall:.1f} s: {speed}"


class Progress:
    """Progress on standard error: a bar with throughput and ETA on a terminal (tqdm), else a line
    every ten seconds; a failed line is always one line of its own."""

    def __init__(self, summary: Summary, stream: IO[str] | None = None) -> None:
        from tqdm import tqdm

        self.summary = summary
        self.stream = stream or sys.stderr
        self.bar = (
            tqdm(total=summary.total, unit="line", file=self.stream, dynamic_ncols=True)
            if self.stream.isatty()
            else None
        )
        self.logged = time.monotonic()

    def update(self, result: LineResult) -> None:
        """Count `result` in (the summary too) and show it."""
        self.summary.add(result)
        if result.status == "failed":
            message = f"line {result.line} ({result.audio or 'no audio'}): {result.error}"
            if self.bar is not None:
                self.bar.write(message, file=self.stream)
            else:
                print(message, file=self.stream, flush=True)
        if self.bar is not None:
            self.bar.update()
            self.bar.set_postfix(
                failed=self.summary.failed, audio=f"{self.summary.audio_s / 3600:.2f} h", refresh=False
            )
        elif time.monotonic() - self.logged >= _LOG_EVERY:
            self.logged = time.monotonic()
            print(f"batch: {self.summary.text()}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
