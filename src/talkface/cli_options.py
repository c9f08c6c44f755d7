"""Options several `talkface` commands share (--fps, --livelink, --rig, --format), the checks of -o and
of those options made before any work starts, and writing an animation where -o says."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .animation import MAX_FPS
from .cli_style import option_values
from .errors import TalkfaceError
from .files import output_target

if TYPE_CHECKING:
    from .animation import Animation
    from .livelink import LiveLinkSender
    from .retarget import Rig


class Finite(click.FloatRange):
    """`click.FloatRange` that refuses NaN and infinity too: NaN passes every comparison of a range
    and reached the work as a value no check had seen; an infinite size or timeout means nothing."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class Utf8Text(click.ParamType):
    """Text given on the command line, refused when it is not UTF-8: Python keeps such bytes as lone
    surrogates, which no later step (espeak-ng, a file) can write. UTF-8 in an ASCII locale (LC_ALL=C
    with PYTHONUTF8=0) reaches Python as surrogates too: read from its bytes, it is the text."""

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            try:
                return os.fsencode(value).decode("utf-8")
            except UnicodeDecodeError:
                self.fail(f"not UTF-8 text (byte 0x{ord(value[e.start]) & 0xFF:02x} at character {e.start})", param,
                          ctx)  # fmt: skip
        return value


UTF8_TEXT = Utf8Text()
fps_option = click.option("--fps", type=Finite(min=1, max=MAX_FPS), default=30.0, show_default=True, help="Frame rate.")
livelink_option = click.option(
    "--livelink", metavar="HOST:PORT", help="Also send the frames as Live Link Face UDP packets (Unreal: port 11111)."
)
rig_option = click.option(
    "--rig",
    metavar="NAME|FILE.json",
    help="Write the weights on another rig: oculus (Meta's 15 visemes), vrm (VRM 1.0 expressions), vrm0 "
    "(VRM 0.x names) or a JSON mapping of your own (see the README). Not for Live Link (ARKit only) or Rhubarb.",
)
#: `-o -`: write the animation to standard output (text formats only).
STDOUT = "-"


def export_choices() -> list[str]:
    """The names --format takes."""
    from .export import FORMATS

    return list(FORMATS)


def output_folder(out_dir: str) -> Path:
    """The output folder `-o` names; `-` (standard output) is no folder."""
    if out_dir == STDOUT:
        raise click.UsageError("-o names the output folder here; '-' (standard output) is not one")
    if not out_dir:  # (-o "$UNSET"): not the current folder, unasked
        raise click.UsageError("-o names the output folder; an empty name is none")
    return Path(out_dir)


def check_processes(option: str, count: int | None) -> None:
    """UsageError for more than 4 worker processes a CPU core (`--workers`, `--jobs`): each runs on one
    core and holds its own model (100–200 MB), so more only share the cores and the memory."""
    most = 4 * len(os.sched_getaffinity(0))
    if count is not None and count > most:
        raise click.UsageError(f"{option} {count}: at most {most} (4 per CPU core here)")


def output_format(out: str, fmt: str | None) -> str:
    """The format to write OUT in, checked before any work: a name or format that will not do is a
    usage error, as is `-` with a binary format; a path that cannot be written, a TalkfaceError."""
    from . import export

    with option_values():
        if out != STDOUT:
            fmt = export.format_for(out, fmt)
        elif (fmt := export.format_for("", fmt or "csv")) not in export.TEXT_FORMATS:
            raise TalkfaceError(f"-o - writes text to standard output; {fmt} is binary, write it to a file")
        elif sys.stdout is None:  # (started with it closed: found now, not after the work)
            raise TalkfaceError("-o - writes to standard output, which is closed")
    if fmt == "usd":
        export.usd.check_extra()  # a missing extra is found now, not after the speech is animated
        if out != STDOUT:
            export.usd.file_name(out)  # so is a name USD cannot save
    if out != STDOUT:
        for path in (out, export.sidecar_path(out, fmt)):
            if path is not None:
                output_target(path)
    return fmt


def rig_for(spec: str | None, fmt: str, livelink: str | None) -> Rig | None:
    """The rig --rig names, checked before any work: an unknown name, a bad mapping file or a format
    (or --livelink) that takes no rig is a usage error."""
    if spec is None:
        return None
    from . import export
    from .retarget import load_rig

    if livelink is not None:
        raise click.UsageError("--livelink sends Live Link Face's ARKit shapes only and takes no --rig")
    with option_values():
        export.check_rig(fmt)
        return load_rig(spec)


def livelink_sender(livelink: str | None, fps: float) -> LiveLinkSender | None:
    """The Live Link sender --livelink asks for, made before any work; a malformed address, or one that
    does not resolve, is a usage error."""
    if livelink is None:
        return None
    from .livelink import LiveLinkSender

    with option_values():  # the sender looks the address up
        return LiveLinkSender(livelink, fps=fps)


def write_animation(
    anim: Animation,
    out: str,
    fmt: str,
    sound_file: str | None = None,
    metadata: dict[str, Any] | None = None,
    rig: Rig | None = None,
) -> None:
    """Write `anim` to OUT and say where, or to standard output for `-o -` (`metadata`, `rig`: see `export.write`)."""
    from . import export

    if out == STDOUT:
        sys.stdout.write(export.text(anim, fmt, sound_file=sound_file, metadata=metadata, rig=rig))
        sys.stdout.flush()
    else:
        export.write(anim, out, fmt, sound_file=sound_file, metadata=metadata, rig=rig)
        click.echo(out)
