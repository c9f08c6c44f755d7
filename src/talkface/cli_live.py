"""The `talkface` commands that run until stopped: stream (live animation to Live Link), serve (HTTP,
WebSocket and gRPC) and view (the browser player)."""

from __future__ import annotations

from typing import Any

import click

from .animator import Animator
from .cli_options import (
    UTF8_TEXT,
    Finite,
    check_processes,
    fps_option,
    livelink_option,
    livelink_sender,
    output_format,
    write_animation,
)
from .cli_style import option_values, style_from, style_options
from .files import distinct_outputs


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8000, show_default=True)
@click.option("--grpc-port", type=click.IntRange(min=0, max=65535),
              help="Also serve NVIDIA Audio2Face-3D's gRPC API on this port (needs the grpc extra).")  # fmt: skip
@click.option("--http/--no-http", default=True, show_default=True,
              help="Serve HTTP and the WebSocket on --port; --no-http with --grpc-port serves gRPC only.")  # fmt: skip
@click.option("--token", envvar="TALKFACE_TOKEN", help="Bearer token clients must send (env TALKFACE_TOKEN).")
@click.option("--model", type=click.Path(dir_okay=False), help="A trained .onnx model instead of the packaged one.")
@livelink_option
@fps_option
@click.option("--max-streams", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--max-upload-mb", type=Finite(min=0.01, max=1e6), default=50.0, show_default=True)  # (1e308: no int)
@click.option("--max-audio-seconds", type=Finite(min=1), default=600.0, show_default=True,
              help="Longest file POST /v1/animate takes.")  # fmt: skip
@click.option("--idle-timeout", type=Finite(min=0.1), default=30.0, show_default=True,
              help="Seconds a stream may send nothing before it is closed.")  # fmt: skip
@click.option("--workers", type=click.IntRange(min=1), help="Model worker processes  [default: one per CPU core]")
@click.option("--worker-timeout", type=Finite(min=0.1), default=30.0, show_default=True,
              help="Seconds a model worker may go without answering (a tick; a file: per minute of audio, plus one) "
                   "before it is killed and replaced.")  # fmt: skip
@click.option("--request-timeout", type=Finite(min=0.1), default=30.0, show_default=True,
              help="Seconds a client has to send a request's headers, and again its body (408).")  # fmt: skip
def serve(**options: Any) -> None:
    """Serve animation over HTTP (POST /v1/animate) and WebSocket (/v1/stream), see /openapi.json; and
    with --grpc-port, over NVIDIA Audio2Face-3D's gRPC API (see the README, "Coming from Audio2Face")."""
    from .livelink import resolve
    from .serve import ServerConfig, serve

    if options["livelink"]:
        with option_values():
            resolve(options["livelink"])  # an address that does not resolve is found before serving
    if not options["http"] and options["grpc_port"] is None:
        raise click.UsageError("--no-http leaves nothing to serve without --grpc-port")
    check_processes("--workers", options["workers"])
    serve(ServerConfig(**options))


@click.command()
@click.argument("audio", required=False, type=click.Path(dir_okay=False, exists=True))
@click.option("--mic", is_flag=True, help="Animate the default microphone (or --device) live.")
@click.option("--device", help="Input device name or number (see `python -m sounddevice`).")
@click.option("--seconds", type=Finite(min=0.1), help="Stop after this much audio (default: Ctrl-C).")
@click.option("-o", "--out", type=click.Path(dir_okay=False, allow_dash=True),
              help="Also write the whole animation here at the end ('-': CSV to standard output).")  # fmt: skip
@click.option("--model", type=click.Path(dir_okay=False), help="A trained .onnx model instead of the packaged one.")
@livelink_option
@fps_option
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
    fmt = output_format(out, None) if out else None
    if out and fmt:
        from . import export

        distinct_outputs([audio], [out, export.sidecar_path(out, fmt)])
    animator = Animator(fps, model=model, style=style_from(**style))
    sender = livelink_sender(livelink, fps)
    # a device number is ASCII digits (str.isdigit takes "²", which int() refuses); a name otherwise
    number = device is not None and device.isascii() and device.isdigit()
    source = live.MicSource(int(device) if number else device) if mic else live.FileSource(audio)
    click.echo(f"listening to {source.name} at {source.sample_rate} Hz; Ctrl-C to stop", err=True)
    anim = live.run(source, animator, fps, sender, seconds, keep=bool(out))  # (no -o: nothing to keep)
    if out and fmt:
        from .export.provenance import file_sha256, stream_provenance

        write_animation(anim, out, fmt, metadata=stream_provenance(animator, None if mic else file_sha256(audio)))


@click.command()
@click.argument("source", required=False, type=click.Path())
@click.option("--text", type=UTF8_TEXT, help="Transcript of SOURCE when it is a speech file.")
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
