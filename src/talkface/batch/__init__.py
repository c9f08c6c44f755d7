"""`talkface batch`: a whole dialogue library, one animation file per line, on every core or on a Ray cluster.

    manifest   the lines: `read_manifest` of a CSV or JSON Lines file (an ``audio`` column and
               optional `COLUMNS`) or a folder of speech files with same-name ``.txt`` transcripts
    animate    one line: `Settings`, the `Task` a worker gets, `animate_line` and the line's hash
    runner     many lines: `run`, on a process pool (`jobs`) or as Ray tasks (`ray`)
    report     the output folder's `REPORT`, and a run's `Summary` and `Progress`

Paths in a manifest are relative to its folder; columns a line leaves out take the run's
`Settings`. One worker function, `animate_line`, animates a line (`Animator.clip`, as
`talkface animate` and the server do) and writes its output atomically; each worker process loads
the model once. A line's seed comes from the manifest or from the line's output name, never from
the worker, so the outputs are the same whatever runs them.

The report (``report.jsonl`` in the output folder) gets each line's record as soon as the line is
done, appended and flushed, so a killed run keeps it. A record holds a hash of everything the
output depends on (the audio's bytes, the transcript, the settings, the talkface version and
models); a re-run skips the lines whose output exists and whose hash is unchanged (`force` redoes
them), and at its end rewrites the report with one record per manifest line (then the records other
manifests' runs left of outputs still in the folder). Ctrl-C lets the lines
in progress finish, then stops; a second Ctrl-C stops at once. As every output is written
atomically, even SIGKILL leaves no half-written file, and the next run clears the temporary files
such a kill leaves.
"""

from .animate import LineResult, Settings, Task, animate_line
from .manifest import AUDIO_SUFFIXES, COLUMNS, REPORT, Line, ManifestError, read_manifest
from .report import Progress, Summary
from .runner import run

__all__ = [
    "AUDIO_SUFFIXES",
    "COLUMNS",
    "REPORT",
    "Line",
    "LineResult",
    "ManifestError",
    "Progress",
    "Settings",
    "Summary",
    "Task",
    "animate_line",
    "read_manifest",
    "run",
]
