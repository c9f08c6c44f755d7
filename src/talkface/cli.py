"""The `talkface` command: say, animate, render, view, voices, demo.

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
import sys
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import soundfile as sf

from .animator import ENGINES, Animator
from .cli_style import option_values, style_from, style_options
from .errors import TalkfaceError
from .files import atomic_path, output_target, read_text, write_text
from .phonemes import phones_tsv
from .post import Style

if TYPE_CHECKING:
    from .animation import Animation
    from .character import Plan
    from .livelink import LiveLinkSender
    from .retarget import Rig

_FPS = click.option(
    "--fps", type=click.FloatRange(min=1, max=1000), default=30.0, show_default=True, help="Frame rate."
)
_LIVELINK = click.option(
    "--livelink", metavar="HOST:PORT", help="Also send the frames as Live Link Face UDP packets (Unreal: port 11111)."
)
_RIG = click.option(
    "--rig",
    metavar="NAME|FILE.json",
    help="Write the weights on another rig: oculus (Meta's 15 visemes), vrm (VRM 1.0 expressions), vrm0 "
    "(VRM 0.x names) or a JSON mapping of your own (see the README). Not for Live Link (ARKit only) or Rhubarb.",
)
#: `-o -`: write the animation to standard output (text formats only).
STDOUT = "-"
DEMO_TEXT = "Bob bought a pepper and a map."
#: The bundled sample (CMU ARCTIC slt a0009) and its transcript.
SAMPLE_TRANSCRIPT = "He turned sharply, and faced Gregson across the table."


def _export_choices() -> list[str]:
    from .export import FORMATS

    return list(FORMATS)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="talkface")
def cli() -> None:
    """Speech to ARKit facial animation, offline."""


@cli.command()
@click.argument("text")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--voice", help="Voice name from `talkface voices` (default: espeak-ng en-us).")
@click.option("--lang", help="Language code, e.g. en-gb, de, fr (espeak-ng).")
@_FPS
@_RIG
@style_options
def say(
    text: str, out_dir: str, voice: str | None, lang: str | None, fps: float, rig: str | None, **style: Any
) -> None:
    """Speak TEXT and write speech.wav, animation.csv (with --rig: animation.json) and phonemes.tsv to a folder."""
    out = _folder(out_dir)
    for path in _say(text, out, voice, lang, fps, style_from(**style), _rig(rig, "json", None)):
        click.echo(path)


def _folder(out_dir: str) -> Path:
    """The output folder `-o` names; `-` (standard output) is no folder."""
    if out_dir == STDOUT:
        raise click.UsageError("-o names the output folder here; '-' (standard output) is not one")
    return Path(out_dir)


def _say(
    text: str,
    out: Path,
    voice: str | None,
    lang: str | None,
    fps: float,
    style: Style | None = None,
    rig: Rig | None = None,
) -> list[Path]:
    """Speak `text` into `out`: the speech, its animation (Live Link CSV, or JSON on a `rig`) and phones."""
    from . import export
    from .export.provenance import tts_provenance
    from .tts import load_voice

    wav, tsv = out / "speech.wav", out / "phonemes.tsv"
    animation = out / ("animation.csv" if rig is None else "animation.json")
    fmt = export.format_for(animation)
    for path in (wav, animation, export.sidecar_path(animation, fmt), tsv):
        if path is not None:
            output_target(path)  # before the speech is made
    speech, anim = Animator(fps, style=style).say(text, voice=voice, lang=lang)
    with atomic_path(wav) as tmp:
        sf.write(tmp, speech.audio, speech.sample_rate, subtype="PCM_16", format="WAV")
    export.write(anim, animation, fmt, metadata=tts_provenance(load_voice(voice, lang).info.name, wav), rig=rig)
    write_text(tsv, phones_tsv(speech.phones))
    return [wav, animation, tsv]


@cli.command()
@click.argument("audio", type=click.Path(dir_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="Output file; '-': standard output (a text format, CSV unless --format says).")  # fmt: skip
@click.option("--text", help="Transcript: aligns it to the audio for exact lip sync.")
@click.option("--text-file", type=click.Path(dir_okay=False), help="Transcript from a UTF-8 text file (up to 1 MB).")
@click.option("--strict-text", is_flag=True,
              help="A transcript that cannot be aligned is an error (default: warn, animate the audio).")  # fmt: skip
@click.option("--lang", help="Language of the transcript, e.g. de, fr, es (espeak-ng; default: English).")
@click.option("--format", "fmt", type=click.Choice(_export_choices()), help="Output format (default: by extension).")
@click.option("--phonemes-out", type=click.Path(dir_okay=False), help="Also write the timed phones (TSV).")
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="neural",
    show_default=True,
    help="Without a transcript: the neural model, or phone recognition + coarticulation.",
)
@click.option("--model", type=click.Path(dir_okay=False), help="A trained .onnx model instead of the packaged one.")
@_RIG
@click.option("--character", type=click.Path(dir_okay=False),
              help="Your .glb or .vrm model: OUT (*.glb, *.vrm) is a copy of it with the animation on its own morph "
                   "targets (ARKit names, Oculus visemes or VRM expressions).")  # fmt: skip
@_LIVELINK
@_FPS
@style_options
def animate(
    audio: str,
    out: str,
    text: str | None,
    text_file: str | None,
    strict_text: bool,
    lang: str | None,
    fmt: str | None,
    phonemes_out: str | None,
    engine: str,
    model: str | None,
    rig: str | None,
    character: str | None,
    livelink: str | None,
    fps: float,
    **style: Any,
) -> None:
    """Animate speech in AUDIO (wav, flac, ogg …) and write the animation to OUT."""
    if text is not None and text_file is not None:
        raise click.UsageError("give either --text or --text-file, not both")
    if phonemes_out and text is None and text_file is None and engine == "neural":
        raise click.UsageError("--phonemes-out needs --text (or --engine phonetic): the neural model makes no phones")
    if lang is not None:
        from .tts import load_voice

        if text is None and text_file is None:
            raise click.UsageError("--lang is the transcript's language: give --text or --text-file")
        with option_values():
            load_voice(None, lang)  # an unknown language is a usage error, found before any work
    if character is None:
        fmt = _output_format(out, fmt)
        retarget = _rig(rig, fmt, livelink)
    else:
        cast = _character(character, out, fmt, rig)
    if phonemes_out:
        output_target(phonemes_out)
    cores = len(os.sched_getaffinity(0))  # a long transcript is aligned on every core
    animator = Animator(fps, engine, model, style=style_from(**style), strict_text=strict_text, jobs=cores)
    sender = _sender(livelink, fps)
    if text_file is not None:
        text = read_text(text_file, "transcript")
    clip = animator.clip(audio, text, lang=lang)
    anim, phones = clip.animation, clip.phones
    from .export.provenance import clip_provenance

    metadata = clip_provenance(clip, animator, audio) | clip.metadata
    if character is None:
        _write(anim, out, fmt, sound_file=audio, metadata=metadata, rig=retarget)
    else:
        from . import character as characters

        characters.write(cast, anim, out, metadata)
        click.echo(out)
        for missing in cast.missing:
            click.echo(f"note: {character} has no target for these {missing}", err=True)
    if phonemes_out and phones is None:
        click.echo(f"warning: {phonemes_out} not written: the neural model animated the audio alone", err=True)
    elif phonemes_out:
        write_text(phonemes_out, phones_tsv(phones))
    if sender:
        with contextlib.closing(sender):
            sender.play(anim)  # in real time, as the app would send it


def _output_format(out: str, fmt: str | None) -> str:
    """The format to write OUT in, checked before any work: a name or format that will not do is a
    usage error, as is `-` with a binary format; a path that cannot be written, a TalkfaceError."""
    from . import export

    with option_values():
        if out != STDOUT:
            fmt = export.format_for(out, fmt)
        elif (fmt := export.format_for(out, fmt or "csv")) not in export.TEXT_FORMATS:
            raise TalkfaceError(f"-o - writes text to standard output; {fmt} is binary, write it to a file")
    if out != STDOUT:
        for path in (out, export.sidecar_path(out, fmt)):
            if path is not None:
                output_target(path)
    return fmt


def _character(path: str, out: str, fmt: str | None, rig: str | None) -> Plan:
    """What --character can drive in the model at `path`, found before any work; OUT must be a .glb or
    .vrm, and --format and --rig do not go with it (the model's own targets decide)."""
    from . import character

    if fmt is not None or rig is not None:
        raise click.UsageError("--character drives the model's own targets: give no --format or --rig with it")
    if out == STDOUT or Path(out).suffix.lower() not in character.SUFFIXES:
        raise click.UsageError("--character writes a copy of the model: name OUT *.glb or *.vrm")
    output_target(out)
    return character.plan(path)


def _rig(spec: str | None, fmt: str, livelink: str | None) -> Rig | None:
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


def _write(
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


def _sender(livelink: str | None, fps: float) -> LiveLinkSender | None:
    """The Live Link sender --livelink asks for, made before any work; a malformed address is a usage error."""
    if livelink is None:
        return None
    from .livelink import LiveLinkSender, parse_address

    with option_values():
        address = parse_address(livelink)
    return LiveLinkSender(address, fps=fps)


@cli.command()
@click.argument("manifest", type=click.Path(exists=True))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: a file per line, and report.jsonl.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(_export_choices()),
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
@_FPS
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
    out = _folder(out_dir)
    with option_values():
        lines = batching.read_manifest(manifest, fmt)
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


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8000, show_default=True)
@click.option("--grpc-port", type=click.IntRange(min=0, max=65535),
              help="Also serve NVIDIA Audio2Face-3D's gRPC API on this port (needs the grpc extra).")  # fmt: skip
@click.option("--http/--no-http", default=True, show_default=True,
              help="Serve HTTP and the WebSocket on --port; --no-http with --grpc-port serves gRPC only.")  # fmt: skip
@click.option("--token", envvar="TALKFACE_TOKEN", help="Bearer token clients must send (env TALKFACE_TOKEN).")
@click.option("--model", type=click.Path(dir_okay=False), help="A trained .onnx model instead of the packaged one.")
@_LIVELINK
@_FPS
@click.option("--max-streams", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--max-upload-mb", type=click.FloatRange(min=0.01), default=50.0, show_default=True)
@click.option("--max-audio-seconds", type=click.FloatRange(min=1), default=600.0, show_default=True,
              help="Longest file POST /v1/animate takes.")  # fmt: skip
@click.option("--idle-timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds a stream may send nothing before it is closed.")  # fmt: skip
@click.option("--workers", type=click.IntRange(min=1), help="Model worker processes  [default: one per CPU core]")
@click.option("--worker-timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds a model worker may go without answering (a tick; a file: per minute of audio, plus one) "
                   "before it is killed and replaced.")  # fmt: skip
@click.option("--request-timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds a client has to send a request's headers, and again its body (408).")  # fmt: skip
def serve(**options: Any) -> None:
    """Serve animation over HTTP (POST /v1/animate) and WebSocket (/v1/stream), see /openapi.json; and
    with --grpc-port, over NVIDIA Audio2Face-3D's gRPC API (see the README, "Coming from Audio2Face")."""
    from .livelink import parse_address
    from .serve import ServerConfig, serve

    if options["livelink"]:
        with option_values():
            parse_address(options["livelink"])
    if not options["http"] and options["grpc_port"] is None:
        raise click.UsageError("--no-http leaves nothing to serve without --grpc-port")
    serve(ServerConfig(**options))


@cli.command()
@click.argument("audio", required=False, type=click.Path(dir_okay=False, exists=True))
@click.option("--mic", is_flag=True, help="Animate the default microphone (or --device) live.")
@click.option("--device", help="Input device name or number (see `python -m sounddevice`).")
@click.option("--seconds", type=click.FloatRange(min=0.1), help="Stop after this much audio (default: Ctrl-C).")
@click.option("-o", "--out", type=click.Path(dir_okay=False, allow_dash=True),
              help="Also write the whole animation here at the end ('-': CSV to standard output).")  # fmt: skip
@click.option("--model", type=click.Path(dir_okay=False), help="A trained .onnx model instead of the packaged one.")
@_LIVELINK
@_FPS
@style_options
def stream(
    audio: str | None,
    mic: bool,
    device: str | None,
    seconds: float | None,
    out: str | None,
    model: str | None,
    livelink: str | None,
    fps: float,
    **style: Any,
) -> None:
    """Animate live: the microphone (--mic) or AUDIO played in real time, frames to Live Link as they come."""
    from . import mic as live

    if mic == (audio is not None):
        raise click.UsageError("give either --mic or an AUDIO file to play")
    fmt = _output_format(out, None) if out else None
    animator = Animator(fps, model=model, style=style_from(**style))
    sender = _sender(livelink, fps)
    source = live.MicSource(int(device) if device and device.isdigit() else device) if mic else live.FileSource(audio)
    click.echo(f"listening to {source.name} at {source.sample_rate} Hz; Ctrl-C to stop", err=True)
    anim = live.run(source, animator, fps, sender, seconds)
    if out and fmt:
        _write(anim, out, fmt)


@cli.command()
@click.argument("audio", type=click.Path(dir_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="Output video (.mp4).")
@click.option("--text", help="Transcript: aligns it to the audio for exact lip sync.")
@click.option("--size", type=click.IntRange(min=64, max=2048), default=512, show_default=True, help="Width and height.")
@_FPS
@style_options
def render(audio: str, out: str, text: str | None, size: int, fps: float, **style: Any) -> None:
    """Render a video (MP4, with the sound) of the talkface head speaking AUDIO, turning as its head motion does."""
    from .render import render_video

    if Path(out).suffix.lower() != ".mp4":
        raise click.UsageError(f"{out}: the video is written as MP4; name it *.mp4")
    animator = Animator(fps, style=style_from(**style))
    output_target(out)
    render_video(animator.animate(audio, text), audio, out, size, size)
    click.echo(out)


@cli.command()
@click.argument("source", required=False, type=click.Path())
@click.option("--text", help="Transcript of SOURCE when it is a speech file.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8765, show_default=True, help="0: any.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
@click.option("--allow-host", "allowed_hosts", multiple=True,
              help="Another host name the page may be opened by (e.g. this machine's name on the LAN).")  # fmt: skip
def view(
    source: str | None, text: str | None, host: str, port: int, no_browser: bool, allowed_hosts: tuple[str, ...]
) -> None:
    """Play SOURCE on a 3D head in the browser: a `say` output folder or a speech file (or none, then drop one)."""
    from .viewer import serve

    serve(source, text=text, host=host, port=port, open_browser=not no_browser, allowed_hosts=allowed_hosts)


@cli.command()
def voices() -> None:
    """List the installed voices."""
    from .tts import list_voices

    for v in list_voices():
        click.echo(f"{v.name}\t{v.language}\t{v.description}")


@cli.command()
@click.option("-o", "--out", "out_dir", default="demo-out", show_default=True, type=click.Path(file_okay=False))
def demo(out_dir: str) -> None:
    """Animate the bundled speech sample and a TTS sentence; print where the outputs went."""
    from . import export
    from .export.provenance import clip_provenance

    out = _folder(out_dir)
    sample = str(files("talkface") / "samples" / "arctic_a0009.wav")
    animator = Animator()
    heard = animator.clip(sample)  # the neural model, from the sound alone
    aligned = animator.clip(sample, SAMPLE_TRANSCRIPT)
    audio_only = heard.animation
    written = [out / "sample.csv", out / "sample.json", out / "sample_aligned.csv", out / "sample_phonemes.tsv"]
    for clip, path in ((heard, written[0]), (heard, written[1]), (aligned, written[2])):
        export.write(clip.animation, path, metadata=clip_provenance(clip, animator, sample) | clip.metadata)
    write_text(written[3], phones_tsv(aligned.phones or []))
    written += _say(DEMO_TEXT, out / "say", None, None, 30.0)
    click.echo(f"bundled sample: {SAMPLE_TRANSCRIPT!r} ({audio_only.duration:.1f} s)")
    click.echo("sample.csv/.json: from the audio alone; sample_aligned.csv: aligned to the transcript")
    click.echo(f"TTS: {DEMO_TEXT!r}")
    click.echo("outputs:")
    for path in written:
        click.echo(f"  {path}")


def _needs_training_extra() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise TalkfaceError("training needs the train extra: pip install 'talkface[train]'") from None


@cli.command()
@click.option("--hours", type=click.FloatRange(min=0.001), required=True, help="Hours of training audio.")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Corpus folder.")
@click.option("--text", "text_dir", required=True, type=click.Path(file_okay=False), help="Folder of texts/zips.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
    "--emotion-share",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of utterances given a random emotion (targets and the model's emotion input).",
)
@click.option("--flite-share", type=click.FloatRange(0, 1), default=0.45, show_default=True,
              help="Share of English utterances spoken by flite voices.")  # fmt: skip
@click.option("--festival-share", type=click.FloatRange(0, 1), default=0.35, show_default=True,
              help="Share of English utterances spoken by Festival voices.")  # fmt: skip
def corpus(hours: float, out_dir: str, text_dir: str, seed: int, workers: int, emotion_share: float,
           flite_share: float, festival_share: float) -> None:  # fmt: skip
    """Build (or resume) a synthetic training corpus: TTS speech, augmented, with face targets."""
    _needs_training_extra()
    from .train.corpus import CorpusConfig, build_corpus

    if flite_share + festival_share > 1:
        raise click.UsageError("--flite-share and --festival-share add up to more than 1")
    config = CorpusConfig(hours=hours, seed=seed, emotion_share=emotion_share, flite_share=flite_share,
                          festival_share=festival_share)  # fmt: skip
    click.echo(build_corpus(out_dir, text_dir, config, workers=workers))


@cli.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--resume", is_flag=True, help="Go on from the run's last checkpoint.")
def train(config_path: str, resume: bool) -> None:
    """Train a model from a YAML config; writes checkpoints, log.csv and model.onnx to its out folder."""
    _needs_training_extra()
    from .train.loop import TrainConfig
    from .train.loop import train as run_training

    click.echo(run_training(TrainConfig.load(config_path), resume=resume))


@cli.command()
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option("--set", "manifest", type=click.Path(dir_okay=False, exists=True),
              help="A manifest.jsonl of scripts/real_speech.py to score on, pooled and per source.")  # fmt: skip
@click.option("--split", type=click.Choice(["validation", "test"]), default="validation", show_default=True,
              help="Split of --set: choose on validation; look at test once per shipped model.")  # fmt: skip
def evaluate(model: str | None, manifest: str | None, split: str) -> None:
    """Score MODEL (default: the packaged models for files and for live streams) and the phonetic baseline
    on real speech."""
    from .evaluation import evaluate as run_evaluation
    from .evaluation import read_set, report

    if manifest is None:
        click.echo(report(run_evaluation(model)))
    else:
        click.echo(report(run_evaluation(model, read_set(manifest, split)), f"{split} split of {manifest}"))


def _bad_path(e: click.ClickException) -> bool:
    """Whether click rejected a path given (missing, or a folder for a file): an input error, exit 1."""
    return (
        isinstance(e, click.BadParameter)
        and not isinstance(e, click.MissingParameter)
        and isinstance(getattr(e.param, "type", None), click.Path)
    )


def _warnings_to_stderr() -> None:
    """The library's warnings (a doubtful transcript, a guessed pronunciation) as `warning: ...` lines."""
    logger = logging.getLogger("talkface")
    if not any(getattr(h, "talkface_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        handler.talkface_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; an error becomes one line on stderr and the exit status the module describes."""
    _warnings_to_stderr()
    try:
        cli.main(args=argv, prog_name="talkface", standalone_mode=False)
    except TalkfaceError as e:
        click.echo(f"talkface: error: {e}", err=True)
        return 1
    except click.exceptions.Abort:
        click.echo("talkface: aborted", err=True)
        return 130
    except click.ClickException as e:
        click.echo(f"talkface: error: {e.format_message()}", err=True)
        return 1 if _bad_path(e) else e.exit_code
    except OSError as e:
        click.echo(f"talkface: error: {e.filename or ''}: {e.strerror or e}", err=True)
        return 1
    except Exception as e:  # a bug, not bad input: still one line unless debugging
        if os.environ.get("TALKFACE_DEBUG"):
            raise
        click.echo(f"talkface: internal error: {type(e).__name__}: {e} (set TALKFACE_DEBUG=1 for details)", err=True)
        return 70
    return 0


if __name__ == "__main__":
    sys.exit(main())
