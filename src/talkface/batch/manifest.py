"""A batch's manifest: its lines, read from a CSV or JSON Lines file or a folder of speech files.

A CSV or JSON Lines manifest has an ``audio`` column and optional `COLUMNS`; a folder's speech files
are its lines, each with its transcript in a same-name ``.txt`` beside it if it has one. Paths in a
manifest are relative to its folder. A manifest that cannot be read as one at all is a
`ManifestError`; a bad row is only that line's `Line.error`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from .. import export
from ..errors import TalkfaceError
from ..files import TEXT_LIMIT, file_key, read_text

log = logging.getLogger(__name__)

#: Manifest columns: the audio file, then what a line may set for itself.
COLUMNS = ("audio", "text", "text_file", "lang", "emotion", "emotion_track", "face", "seed", "fps", "format", "output")
#: Speech files a folder manifest takes.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")
#: The report's name in the output folder.
REPORT = "report.jsonl"
_MANIFEST_LIMIT = 1 << 28  # 256 MB: millions of lines
_PATH_COLUMNS = ("text_file", "emotion_track")  # relative to the manifest's folder, like `audio`


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
    manifest: str | None = None  # the manifest file it came from (never to be written over)


def check_outputs(lines: Sequence[Line], out: Path) -> list[Line]:
    """`lines` as they are, but a line whose output (or sidecar) in `out` is a file the run reads or
    writes fails with the reason: its own or any other line's audio, transcript or emotion track, the
    manifest, another line's output, or the report, through links too. A line must never write over
    what another reads (the emotion track many share), nor whatever order the lines run in."""
    read: dict[tuple, tuple[str, int]] = {}
    own: list[dict[tuple, str]] = []
    for line in lines:
        keys = {} if line.error else {file_key(p): p for p in _inputs(line)}
        own.append(keys)
        for key, path in keys.items():
            read.setdefault(key, (path, line.number))
    written: dict[tuple, int] = {file_key(out / REPORT): 0}
    outputs = {line.output: line.number for line in lines if not line.error}
    checked = []
    for line, inputs in zip(lines, own, strict=True):
        error = line.error or _overwrite(line, out, inputs, read, written) or _in_another_output(line, out, outputs)
        checked.append(line if error == line.error else replace(line, error=error))
    return checked


def _in_another_output(line: Line, out: Path, outputs: Mapping[str, int]) -> str | None:
    """Why `line`'s output cannot be written if it lies inside a folder that another line's output is
    (`guard` and `guard/01.csv`: whichever ran second failed), or None."""
    for folder in PurePosixPath(line.output).parents:
        if folder.as_posix() in outputs:
            number = outputs[folder.as_posix()]
            return f"{out / line.output}: is inside line {number}'s output {out / folder}; give each its own place"
    return None


def _inputs(line: Line) -> list[str]:
    return [p for p in (line.audio, *(line.options.get(k) for k in _PATH_COLUMNS), line.manifest) if p]


def _overwrite(
    line: Line, out: Path, own: dict[tuple, str], read: dict[tuple, tuple[str, int]], written: dict[tuple, int]
) -> str | None:
    """Why `line`'s outputs may not be written (see `check_outputs`), or None; its outputs are then `written`."""
    output = out / line.output
    sidecar = export.sidecar_path(output, line.fmt)
    keys: dict[tuple, int] = {}
    for path in (output, *([sidecar] if sidecar is not None else [])):
        key = file_key(path)
        if key in own:
            return f"{path}: is the input {own[key]}; refusing to write over it"
        if key in read:
            return f"{path}: is line {read[key][1]}'s input {read[key][0]}; refusing to write over it"
        if key in written or key in keys:
            whose = "the report" if written.get(key) == 0 else f"line {written.get(key, line.number)}'s output"
            return f"{path}: is also {whose}; give each line its own output file"
        keys[key] = line.number
    written.update(keys)
    return None


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
    manifest = None if path.is_dir() else str(path.absolute())
    lines = [replace(_line(number, values, base.absolute(), fmt, taken), manifest=manifest) for number, values in rows]
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
    for name in ("audio", *_PATH_COLUMNS, "output"):  # (the audio first: a later column's line can show it)
        if isinstance(given.get(name), str) and (why := _no_file_name(given[name])):
            source = given.get("audio") if name != "audio" and isinstance(given.get("audio"), str) else ""
            return Line(number, source, "", "", "", error=f"{name} {why}")
    source = given.pop("audio", "")
    if not isinstance(source, str):
        return Line(number, "", "", "", "", error=f"audio must be a file path, not {source!r}")
    try:
        if not source:
            raise TalkfaceError("no audio file given")
        for name in ("text", "text_file", "lang", "emotion_track", "format", "output"):
            if name in given and not isinstance(given[name], str):
                raise TalkfaceError(f"{name} must be a string, not {given[name]!r}")
        if len(given.get("text", "").encode()) > TEXT_LIMIT:  # as a text_file: a JSON line of 200 MB took GBs
            raise TalkfaceError(f"text is larger than {TEXT_LIMIT >> 20} MB; not a transcript talkface reads")
        line_fmt = given.pop("format", None)
        output = given.pop("output", None)
        if output is not None:  # the line's format, else its output's extension, else --format
            output = _inside(output)
            known = Path(output).suffix.lower() in export.EXTENSIONS
            line_fmt = export.format_for(output, line_fmt if line_fmt is not None or known else fmt)
        else:
            line_fmt = export.format_for("", line_fmt or fmt or "csv")
            where = Path(source)
            if where.is_absolute() and where.is_relative_to(base):  # (a generated manifest's absolute paths)
                where = where.relative_to(base)
            where = where if not where.is_absolute() and ".." not in where.parts else Path(where.name)
            output = where.with_suffix(export.SUFFIXES[line_fmt]).as_posix()
        if line_fmt == "usd":
            export.usd.file_name(output)  # a name USD cannot save, found before the work
        sidecar = export.sidecar_path(output, line_fmt)
        written = [output, *([sidecar.as_posix()] if sidecar is not None else [])]  # the sidecar is written too
        for name in written:
            if name == REPORT:
                raise TalkfaceError(f"output {name} is the report's name")
            if name in taken:
                raise TalkfaceError(f"output {name} is also line {taken[name]}'s")
    except TalkfaceError as e:
        return Line(number, source, "", "", "", error=str(e))
    taken.update(dict.fromkeys(written, number))
    for name in _PATH_COLUMNS:
        if name in given:
            given[name] = str(base / given[name])
    return Line(number, source, str(base / source), output, line_fmt, given)


def _no_file_name(name: str) -> str | None:
    """Why the manifest's `name` can name no file here, or None. A lone surrogate (JSON's "\\ud800") is no
    UTF-8, and a character the locale's file names cannot hold (日 in a Latin-1 locale) no name on disk:
    either was an internal error that ended the whole run."""
    if "\x00" in name:
        return "holds a NUL character, which no file name may"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"holds a lone surrogate (U+{ord(name[e.start]):04X}), which is no UTF-8 and no file name"
    try:
        os.fsencode(name)
    except UnicodeEncodeError as e:
        return (f"holds {name[e.start]!r}, which file names in this locale ({sys.getfilesystemencoding()}) cannot; "
                "run in a UTF-8 locale (LC_ALL=C.UTF-8)")  # fmt: skip
    return None


def _inside(output: str) -> str:
    """An ``output`` column as a relative path inside the output folder; TalkfaceError if it leaves it."""
    path = Path(output)
    if path.is_absolute() or ".." in path.parts or not path.name:
        raise TalkfaceError(f"output must be a file name inside the output folder, not {output!r}")
    return path.as_posix()
