"""`talkface batch`: animate every line of a manifest (or a folder of speech files), resumably, on this
machine's cores or a Ray cluster."""

from __future__ import annotations

import contextlib
from typing import Any

import click

from .animator import ENGINES
from .cli_options import check_processes, export_choices, fps_option, output_folder
from .cli_style import option_values, style_from, style_options
from .errors import TalkfaceError


@click.command()
@click.argument("manifest", type=click.Path(exists=True))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: a file per line, and report.jsonl.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(export_choices()),
              help="Format of the lines that give none (default: by the output's extension, else csv).")  # fmt: skip
@click.option("--jobs", type=click.IntRange(min=1), help="Worker processes  [default: one per CPU core]")
@click.option("--ray", "ray_address", metavar="ADDRESS",
              help="Run on a Ray cluster instead: auto (the one this machine is in), ray://HOST:10001, "
                   "or local.")  # fmt: skip
@click.option("--force", is_flag=True, help="Redo the lines done before, unchanged ones too.")
@click.option("--strict-text", is_flag=True,
              help="A transcript that cannot be aligned fails its line (default: warn, animate it alone).")  # fmt: skip
@click.option("--lang", help="Language of the transcripts, e.g. de, fr (espeak-ng; default: English).")
@click.option("--engine", type=click.Choice(ENGINES), default="neural", show_default=True,
              help="Without a transcript: the neural model, or phone recognition + coarticulation.")  # fmt: skip
@click.option("--model", type=click.Path(dir_okay=False), help="A trained .onnx model instead of the packaged one.")
@fps_option
@style_options
def batch(manifest: str, out_dir: str, fmt: str | None, jobs: int | None, ray_address: str | None,
          force: bool, strict_text: bool, lang: str | None, engine: str, model: str | None, fps: float,
          **style: Any) -> None:  # fmt: skip
    """Animate every line of MANIFEST into OUT, resumably: a CSV or JSON Lines file (an audio column; optional text,
    text_file, lang, emotion, emotion_track, face, seed, fps, format, output) or a folder of speech files with
    same-name .txt transcripts. Exit status 1 if any line failed (see OUT/report.jsonl)."""
    from . import batch as batching

    if jobs is not None and ray_address is not None:
        raise click.UsageError("give either --jobs or --ray, not both")
    check_processes("--jobs", jobs)
    if lang is not None:
        from .tts import load_voice

        with option_values():
            load_voice(None, lang)  # an unknown language is a usage error before any work, as for `animate`
    out = output_folder(out_dir)
    with option_values():
        lines = batching.read_manifest(manifest, fmt)
    if ray_address is None and any(line.fmt == "usd" for line in lines):
        from .export import usd

        usd.check_extra()  # found before the work, not as the same failure on every line after its animation
    settings = batching.Settings(fps, engine, model, style_from(**style), strict_text, lang)
    summary = batching.Summary(len(lines))
    progress = batching.Progress(summary)
    try:
        with contextlib.closing(batching.run(lines, out, settings, jobs=jobs, ray=ray_address, force=force)) as results:
            for result in results:
                progress.update(result)
    except KeyboardInterrupt:
        progress.close()
        click.echo(f"{summary.text()}; interrupted: run the same command again to do the rest", err=True)
        raise
    progress.close()
    click.echo(summary.text())
    if summary.failed:
        raise TalkfaceError(f"{summary.failed} of {summary.total} lines failed; see {out / batching.REPORT}")
