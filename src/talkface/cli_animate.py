"""The `talkface` commands that animate one clip: say (from text), animate (a speech file), render (a
video of the head), demo (the bundled sample), and voices (what `say` can speak with)."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import soundfile as sf

from .animator import ENGINES, Animator
from .cli_options import (
    STDOUT,
    UTF8_TEXT,
    export_choices,
    fps_option,
    livelink_option,
    livelink_sender,
    output_folder,
    output_format,
    rig_for,
    rig_option,
    write_animation,
)
from .cli_style import option_values, style_from, style_options
from .errors import TalkfaceError
from .files import atomic_path, distinct_outputs, output_target, read_text, write_text
from .phonemes import phones_tsv
from .post import Style

if TYPE_CHECKING:
    from .character import Plan
    from .retarget import Rig

DEMO_TEXT = "Bob bought a pepper and a map."
#: The bundled sample (CMU ARCTIC slt a0009) and its transcript.
SAMPLE_TRANSCRIPT = "He turned sharply, and faced Gregson across the table."


@click.command()
@click.argument("text", type=UTF8_TEXT)
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--voice", help="Voice name from `talkface voices` (default: espeak-ng en-us).")
@click.option("--lang", help="Language code, e.g. en-gb, de, fr (espeak-ng).")
@fps_option
@rig_option
@style_options
def say(
    text: str, out_dir: str, voice: str | None, lang: str | None, fps: float, rig: str | None, **style: Any
) -> None:
    """Speak TEXT and write speech.wav, animation.csv (with --rig: animation.json) and phonemes.tsv to a folder."""
    out = output_folder(out_dir)
    read = [style.get("emotion_track"), rig if rig and os.path.isfile(rig) else None]
    for path in _say(text, out, voice, lang, fps, style_from(**style), rig_for(rig, "json", None), read):
        click.echo(path)


def _say(
    text: str,
    out: Path,
    voice: str | None,
    lang: str | None,
    fps: float,
    style: Style | None = None,
    rig: Rig | None = None,
    read: Sequence[str | None] = (),
) -> list[Path]:
    """Speak `text` into `out`: the speech, its animation (Live Link CSV, or JSON on a `rig`) and phones;
    none of them may be one of the files `read` (the emotion track, the rig)."""
    from . import export
    from .export.provenance import tts_provenance
    from .tts import load_voice

    wav, tsv = out / "speech.wav", out / "phonemes.tsv"
    animation = out / ("animation.csv" if rig is None else "animation.json")
    fmt = export.format_for(animation)
    written = (wav, animation, export.sidecar_path(animation, fmt), tsv)
    for path in written:
        if path is not None:
            output_target(path)  # before the speech is made
    distinct_outputs(read, written)
    speech, anim = Animator(fps, style=style).say(text, voice=voice, lang=lang)
    # made in memory and written by Python: libsndfile writing the file itself turned a full disk
    # into an internal error (LibsndfileError) and a stray "ftruncate() failed" line
    sound = io.BytesIO()
    sf.write(sound, speech.audio, speech.sample_rate, subtype="PCM_16", format="WAV")
    with atomic_path(wav) as tmp:
        tmp.write_bytes(sound.getbuffer())
    export.write(anim, animation, fmt, metadata=tts_provenance(load_voice(voice, lang).info.name, wav), rig=rig)
    write_text(tsv, phones_tsv(speech.phones))
    return [wav, animation, tsv]


@click.command()
@click.argument("audio", type=click.Path(dir_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="Output file; '-': standard output (a text format, CSV unless --format says).")  # fmt: skip
@click.option("--text", type=UTF8_TEXT, help="Transcript: aligns it to the audio for exact lip sync.")
@click.option("--text-file", type=click.Path(dir_okay=False), help="Transcript from a UTF-8 text file (up to 1 MB).")
@click.option("--strict-text", is_flag=True,
              help="A transcript that cannot be aligned is an error (default: warn, animate the audio).")  # fmt: skip
@click.option("--lang", help="Language of the transcript, e.g. de, fr, es (espeak-ng; default: English).")
@click.option("--format", "fmt", type=click.Choice(export_choices()), help="Output format (default: by extension).")
@click.option("--phonemes-out", type=click.Path(dir_okay=False), help="Also write the timed phones (TSV).")
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="neural",
    show_default=True,
    help="Without a transcript: the neural model, or phone recognition + coarticulation.",
)
@click.option("--model", type=click.Path(dir_okay=False), help="A trained .onnx model instead of the packaged one.")
@rig_option
@click.option("--character", type=click.Path(dir_okay=False),
              help="Your .glb or .vrm model: OUT (*.glb, *.vrm) is a copy of it with the animation on its own morph "
                   "targets (ARKit names, Oculus visemes or VRM expressions).")  # fmt: skip
@livelink_option
@fps_option
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
        fmt = output_format(out, fmt)
        retarget = rig_for(rig, fmt, livelink)
    else:
        cast = _character(character, out, fmt, rig)
    if phonemes_out == STDOUT:
        raise click.UsageError("--phonemes-out names a file; '-' (standard output) is not one")
    if phonemes_out:
        output_target(phonemes_out)
    from . import export

    sidecar = export.sidecar_path(out, fmt) if character is None and out != STDOUT else None
    read = [audio, text_file, character, style.get("emotion_track"), rig if rig and os.path.isfile(rig) else None]
    distinct_outputs(read, [out, sidecar, phonemes_out])
    cores = len(os.sched_getaffinity(0))  # a long transcript is aligned on every core
    animator = Animator(fps, engine, model, style=style_from(**style), strict_text=strict_text, jobs=cores)
    sender = livelink_sender(livelink, fps)
    if text_file is not None:
        text = read_text(text_file, "transcript")
    clip = animator.clip(audio, text, lang=lang)
    anim, phones = clip.animation, clip.phones
    from .export.provenance import clip_provenance, file_sha256

    metadata = clip_provenance(clip, animator, file_sha256(audio)) | clip.metadata
    if character is None:
        sound_file = os.fsencode(audio).decode("utf-8", "replace")  # Rhubarb's metadata is text: no stray bytes
        write_animation(anim, out, fmt, sound_file=sound_file, metadata=metadata, rig=retarget)
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


def _even(ctx: click.Context, param: click.Parameter, value: int) -> int:
    """A video size: even (H.264's 4:2:0 colour halves each side; ffmpeg writes nothing for an odd one)."""
    if value % 2:
        raise click.BadParameter(f"{value} is odd; the video's width and height must be even")
    return value


@click.command()
@click.argument("audio", type=click.Path(dir_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="Output video (.mp4).")
@click.option("--text", type=UTF8_TEXT, help="Transcript: aligns it to the audio for exact lip sync.")
@click.option("--size", type=click.IntRange(min=64, max=2048), default=512, show_default=True, callback=_even,
              help="Width and height (even).")  # fmt: skip
@fps_option
@style_options
def render(audio: str, out: str, text: str | None, size: int, fps: float, **style: Any) -> None:
    """Render a video (MP4, with the sound) of the talkface head speaking AUDIO, turning as its head motion does."""
    from .render import check_extra, render_video

    if Path(out).suffix.lower() != ".mp4":
        raise click.UsageError(f"{out}: the video is written as MP4; name it *.mp4")
    check_extra()  # moderngl and ffmpeg, before the speech is animated
    animator = Animator(fps, style=style_from(**style))
    output_target(out)
    distinct_outputs([audio], [out])
    render_video(animator.animate(audio, text), audio, out, size, size)
    click.echo(out)


@click.command()
def voices() -> None:
    """List the installed voices."""
    from .tts import list_voices

    found = list_voices()
    if not found:
        raise TalkfaceError("no voices are installed: apt-get install espeak-ng (or pip install 'talkface[piper]')")
    for v in found:
        click.echo(f"{v.name}\t{v.language}\t{v.description}")


@click.command()
@click.option("-o", "--out", "out_dir", default="demo-out", show_default=True, type=click.Path(file_okay=False))
def demo(out_dir: str) -> None:
    """Animate the bundled speech sample and a TTS sentence; print where the outputs went."""
    from . import export
    from .export.provenance import clip_provenance, file_sha256

    out = output_folder(out_dir)
    written = [out / "sample.csv", out / "sample.json", out / "sample_aligned.csv", out / "sample_phonemes.tsv"]
    for path in written:  # a folder that cannot take them is found before the work
        output_target(path)
    sample = str(files("talkface") / "samples" / "arctic_a0009.wav")
    animator = Animator()
    heard = animator.clip(sample)  # the neural model, from the sound alone
    aligned = animator.clip(sample, SAMPLE_TRANSCRIPT)
    audio_only = heard.animation
    sample_sha256 = file_sha256(sample)
    for clip, path in ((heard, written[0]), (heard, written[1]), (aligned, written[2])):
        export.write(clip.animation, path, metadata=clip_provenance(clip, animator, sample_sha256) | clip.metadata)
    write_text(written[3], phones_tsv(aligned.phones or []))
    written += _say(DEMO_TEXT, out / "say", None, None, 30.0)
    click.echo(f"bundled sample: {SAMPLE_TRANSCRIPT!r} ({audio_only.duration:.1f} s)")
    click.echo("sample.csv/.json: from the audio alone; sample_aligned.csv: aligned to the transcript")
    click.echo(f"TTS: {DEMO_TEXT!r}")
    click.echo("outputs:")
    for path in written:
        click.echo(f"  {path}")
