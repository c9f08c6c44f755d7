"""The `talkface` command: the group, and how an error ends it. The commands live in cli_animate (say,
animate, render, voices, demo), cli_batch, cli_live (serve, stream, view) and cli_train (corpus, train,
evaluate); the options they share in cli_options and cli_style.

Bad input ends with one line on stderr and a non-zero exit, never a traceback. Every option is
checked before any work starts, so a bad one never leaves an output behind. Exit status: 2 when the
command line is wrong (an unknown option, a missing argument, an option value that is malformed, out
of range or in conflict with another, whether click or talkface finds it); 1 when an input or
output cannot be used (a missing, unreadable or malformed audio, text or emotion track file, a voice
that is not installed, an output path that cannot be written or is not a regular file); 70 for a
bug; 130 when interrupted. `batch` exits 1 when any line failed, and 2 when the manifest cannot be
read as one at all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator

import click

from . import cli_animate, cli_batch, cli_live, cli_train
from .errors import TalkfaceError, one_line


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    commands=[
        cli_animate.say,
        cli_animate.animate,
        cli_animate.render,
        cli_animate.voices,
        cli_animate.demo,
        cli_batch.batch,
        cli_live.serve,
        cli_live.stream,
        cli_live.view,
        cli_train.corpus,
        cli_train.train,
        cli_train.evaluate,
    ],
)
@click.version_option(package_name="talkface")
def cli() -> None:
    """Speech to ARKit facial animation, offline."""


def _bad_path(e: click.ClickException) -> bool:
    """Whether click rejected a path given (missing, or a folder for a file): an input error, exit 1."""
    return (
        isinstance(e, click.BadParameter)
        and not isinstance(e, click.MissingParameter)
        and isinstance(getattr(e.param, "type", None), click.Path)
    )


class _Warnings(logging.Handler):
    """The library's warnings (a doubtful transcript, a guessed pronunciation) as `warning: ...` lines on
    stderr: the stderr of the moment, which a caller of `main` (a test) may have swapped since the first call."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("warning: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:
            self.handleError(record)


def _warnings_to_stderr() -> None:
    """Send the library's warnings to stderr, once however often `main` runs."""
    logger = logging.getLogger("talkface")
    if not any(isinstance(h, _Warnings) for h in logger.handlers):
        logger.addHandler(_Warnings())
        logger.propagate = False


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM's handler: exit with the status the signal itself gives (143), unwinding on the way."""
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM (kill, systemd, docker stop, timeout) ends the run as an exception, as Ctrl-C does, so
    that it cleans up on the way out: `atomic_path`'s temporary file is removed and `batch` stops
    its worker processes. Left as it was where a caller (a test, a program embedding `main`) set
    its own handler, and outside the main thread, where no handler can be set."""
    own = signal.getsignal(signal.SIGTERM) != signal.SIG_DFL
    if own or threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; an error becomes one line on stderr and the exit status the module describes."""
    _warnings_to_stderr()
    with _sigterm_unwinds():
        return _run(argv)


def _run(argv: list[str] | None) -> int:
    """`main`'s work: the command, and its error as one line and an exit status."""
    try:
        cli.main(args=argv, prog_name="talkface", standalone_mode=False)
    except TalkfaceError as e:
        _error(f"error: {e}")
        return 1
    except click.exceptions.Abort:
        _error("aborted")
        return 130
    except click.ClickException as e:
        _error(f"error: {e.format_message()}")
        return 1 if _bad_path(e) else e.exit_code
    except OSError as e:
        where = f"{e.filename}: " if e.filename is not None else ""  # (none when writing standard output)
        _error(f"error: {where}{e.strerror or e}")
        return 1
    except Exception as e:  # a bug, not bad input: still one line unless debugging
        if os.environ.get("TALKFACE_DEBUG"):
            raise
        _error(f"internal error: {type(e).__name__}: {e} (set TALKFACE_DEBUG=1 for details)")
        return 70
    return 0


def _error(message: str) -> None:
    """One line on stderr, whatever the message quotes (a path or a voice name may hold line breaks)."""
    click.echo("talkface: " + one_line(message), err=True)


if __name__ == "__main__":
    sys.exit(main())
