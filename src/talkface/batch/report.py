"""A batch's output folder: its report, kept as lines are done, and the counts and progress a run shows.

The report (`REPORT` in the output folder) gets each line's record as soon as the line is done,
appended and flushed, so a killed run keeps it; at the run's end it is rewritten with one record
per manifest line. The next run reads the records' hashes to skip what is done, and clears the
temporary files a killed run left.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from .. import export
from ..errors import TalkfaceError, one_line
from ..files import clear_temps, lock_folder, opened, write_text
from .animate import LineResult
from .manifest import REPORT, Line

_LOG_EVERY = 10.0  # seconds between progress lines when standard error is not a terminal
_RECORD_LIMIT = 1 << 20  # bytes read as one record at most: a line beyond is not one of ours


class _Report:
    """The output folder's report: the last record of each output from earlier runs, and this run's
    records appended as they come. Holds a lock on the folder, so two runs never write it at once."""

    def __init__(self, out: Path) -> None:
        self.path = out / REPORT
        self.lock = lock_folder(out, "another talkface batch is writing to this folder")
        self.records: dict[str, dict[str, Any]] = {}
        self.bad: dict[int, dict[str, Any]] = {}
        try:
            whole = self._read() if self.path.exists() else True
            self.file: IO[str] = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in `close`)
        except (TalkfaceError, OSError):
            os.close(self.lock)
            raise
        if not whole:
            self.file.write("\n")  # after a record cut short

    def _read(self) -> bool:
        """Take in the earlier runs' records, a line at a time (a million lines' report is larger than a
        whole-file read may be); whether the report ends with a whole line."""
        raw = b""
        with opened(self.path, "report") as f:
            for raw in iter(functools.partial(f.readline, _RECORD_LIMIT), b""):
                with contextlib.suppress(ValueError):  # a record cut short by a kill; not a record at all
                    record = json.loads(raw)
                    if isinstance(record, dict) and isinstance(record.get("output"), str):
                        self.records[record["output"]] = record
        return raw.endswith(b"\n") or not raw

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
        """Rewrite the report with one record per manifest line that has one, in manifest order, then the
        earlier records of outputs this manifest does not name that are in the folder (a folder filled
        by several manifests keeps every output's record, so a re-run of any of them skips its done
        lines); unlock."""
        self.file.close()
        try:
            kept = []
            for line in lines:
                # (a bad row has no output; a line refused for what its output would write over has one)
                record = self.records.get(line.output) if line.output else self.bad.get(line.number)
                if record is not None:
                    kept.append({**record, "line": line.number, "audio": line.source})
            named = {line.output for line in lines}
            kept += [record for output, record in self.records.items()
                     if output not in named and _in_folder(self.path.parent, output)]  # fmt: skip
            write_text(self.path, [json.dumps(record) + "\n" for record in kept])
        finally:
            os.close(self.lock)


def _in_folder(out: Path, output: str) -> bool:
    """Whether an earlier record's output is a file in the folder (a record edited by hand may name
    anything, a name too long included)."""
    try:
        return (out / output).is_file()
    except OSError:
        return False


def _clear_temps(out: Path, lines: Sequence[Line]) -> None:
    """Remove the temporary files a killed run left beside this run's outputs, their sidecars (and
    the report): a kill mid-write leaves the sidecar's as well as the output's."""
    names: dict[Path, set[str]] = {out: {REPORT}}
    for line in lines:
        if not line.error:
            target = out / line.output
            sidecar = export.sidecar_path(target, line.fmt)
            for path in (target, *([sidecar] if sidecar is not None else [])):
                names.setdefault(path.parent, set()).add(path.name)
    for folder, wanted in names.items():
        clear_temps(folder, wanted)


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
        lines = "1 line" if self.total == 1 else f"{self.total} lines"
        return f"{lines}: {counts}{rest}; {self.audio_s / 3600:.2f} h of audio in {wall:.1f} s: {speed}"


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
            message = one_line(f"line {result.line} ({result.audio or 'no audio'}): {result.error}")
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
