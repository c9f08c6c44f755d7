"""Provenance: what made an animation, recorded in every file talkface writes.

The talkface version, the engine (``neural``: the model from the sound; ``phonetic``: recognised
phones; ``text-aligned``: a transcript aligned to the sound; ``tts``: a voice's own phone timings),
the neural model's name and SHA-256 where it animated any of the clip, the SHA-256 of the speech
audio, and the rig the weights were retargeted to. `export.write` puts it where each format keeps
such things (JSON and NPZ ``metadata``, glTF ``asset.extras``, USD layer metadata) or, for formats
whose importers expect the file exactly as it is (Live Link Face CSV, Rhubarb), in a sidecar
``NAME.EXT.json``.
"""

from __future__ import annotations

import hashlib
import os
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..animator import Animator, Clip
    from ..model import FaceModel


def talkface_version() -> str:
    return version("talkface")


def generator() -> str:
    """The tool and version, as glTF's ``asset.generator`` and USD's layer documentation give it."""
    return f"talkface {talkface_version()}"


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 (hex) of a file's bytes, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _model(model: FaceModel) -> dict[str, Any]:
    """A neural model's name and SHA-256 (checked against its file when it was loaded), and its
    calibration where it has one."""
    info: dict[str, Any] = {"name": model.path.name, "sha256": str(model.meta["sha256"])}
    if "encoder_sha256" in model.meta:
        info["encoder_sha256"] = str(model.meta["encoder_sha256"])
    if model.meta.get("viseme_bias"):
        info["viseme_bias"] = dict(model.meta["viseme_bias"])
    return info


def _record(engine: str, audio_sha256: str | None, **fields: Any) -> dict[str, Any]:
    """The fields every provenance has (the tool, its version, the engine), then `fields`, then the
    audio's SHA-256 where there is one."""
    record: dict[str, Any] = {"generator": generator(), "talkface_version": talkface_version(), "engine": engine}
    record.update(fields)
    if audio_sha256 is not None:
        record["audio_sha256"] = audio_sha256
    return record


def clip_provenance(clip: Clip, animator: Animator, audio_sha256: str | None) -> dict[str, Any]:
    """Provenance of a clip `animator` made from speech whose bytes have the SHA-256 `audio_sha256`
    (hex; `file_sha256` of a file; None: not from a file or upload)."""
    alignment = clip.alignment
    spans = alignment.unexplained if alignment is not None else ()
    if alignment is None or clip.set_aside:
        engine, from_sound = animator.engine, animator.engine
    else:  # the text drives the face; where it did not fit, the sound (unless strict)
        engine, from_sound = "text-aligned", animator.engine if spans and not animator.strict_text else None
    fields: dict[str, Any] = {}
    if from_sound is not None and from_sound != engine:
        fields["engine_without_text"] = from_sound
    if from_sound == "neural":
        fields["model"] = _model(animator.model)
    return _record(engine, audio_sha256, **fields)


def stream_provenance(animator: Animator, audio_sha256: str | None) -> dict[str, Any]:
    """Provenance of what `animator`'s live model made of a stream (`talkface stream -o`), with the
    SHA-256 of the audio file played (None: the microphone)."""
    return _record("neural", audio_sha256, model=_model(animator.stream_model))


def tts_provenance(voice: str, audio: str | os.PathLike) -> dict[str, Any]:
    """Provenance of speech a TTS `voice` spoke into the file `audio` and talkface animated from its phones."""
    return _record("tts", file_sha256(audio), voice=voice)
