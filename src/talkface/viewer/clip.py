"""The clip the viewer plays: its animation, its audio as WAV bytes, and the `Speech` it was animated
from, kept so that the style panel restyles it without aligning the audio again (`load_clip` of an
output folder or a speech file, `analyse` of dropped audio)."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..animation import Animation
from ..animator import Animator
from ..audio import SAMPLE_RATE, load_audio, reading
from ..errors import TalkfaceError
from ..export import EXTENSIONS, format_for, read, sidecar_path
from ..phonemes import TimedPhone, read_phones_tsv
from ..post import Style

#: The longest audio the page animates when it is dropped on it (a preview: `talkface animate` takes hours).
MAX_SECONDS = 600


@dataclass(frozen=True)
class Speech:
    """What a clip was animated from, kept so that a new style needs no new alignment: the 16 kHz
    audio, its timed phones (None: the neural model animates the sound), the transcript, the fps."""

    pcm: np.ndarray
    phones: Sequence[TimedPhone] | None
    text: str | None
    fps: float

    def animate(self, animator: Animator, style: Style | None = None) -> Animation:
        """What `animator` makes of this speech in `style` (default: its own): the same as animating it afresh."""
        if self.phones is None:
            return animator.animate(self.pcm, fps=self.fps, sample_rate=SAMPLE_RATE, style=style)
        duration = len(self.pcm) / SAMPLE_RATE
        return animator.animate_phones(self.phones, duration, self.fps, audio=self.pcm, text=self.text, style=style)


def analyse(
    animator: Animator, pcm: np.ndarray, text: str | None = None, style: Style | None = None
) -> tuple[Animation, Speech]:
    """`animator`'s animation of 16 kHz samples (`load_audio`'s) in `style` (default: its own), and the
    speech it came from."""
    anim, phones, _ = animator.clip(pcm, text, sample_rate=SAMPLE_RATE, style=style)
    return anim, Speech(pcm, phones, text, anim.fps)


@dataclass(frozen=True)
class Clip:
    """What the page plays: an animation, its audio as a WAV file's bytes, a title, and the speech
    it was made from (None: the animation came ready-made and cannot be restyled)."""

    anim: Animation
    audio: bytes
    title: str
    speech: Speech | None = None


def read_dropped(path: str | os.PathLike) -> np.ndarray:
    """The 16 kHz mono samples of audio dropped on the page (saved at `path`), decoded a block at a
    time; over `MAX_SECONDS` is refused from its header, before any decoding (a few KB of FLAC may
    claim gigabytes)."""
    with reading(path) as name:
        info = sf.info(path)
    if info.samplerate > 0 and info.frames > MAX_SECONDS * info.samplerate:
        raise TalkfaceError(f"{name}: the audio is longer than {MAX_SECONDS // 60} minutes; use talkface animate")
    return load_audio(path)


def wav_bytes(pcm: np.ndarray) -> bytes:
    """16 kHz samples as 16-bit WAV bytes (browsers play WAV everywhere)."""
    buf = io.BytesIO()
    sf.write(buf, pcm, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def load_clip(source: str | os.PathLike, text: str | None = None, animator: Animator | None = None) -> Clip:
    """A clip from an output folder (its WAV and an animation: JSON, CSV or NPZ; restylable when a
    `phonemes.tsv` is beside them, as `talkface say` writes) or from a speech file, animated by
    `animator` with its style."""
    animator = animator or Animator()
    path = Path(source)
    if path.is_dir():
        wavs = sorted(path.glob("*.wav"))
        found = [p for ext in (".json", ".csv", ".npz") for p in sorted(path.glob(f"*{ext}"))]
        sidecars = {sidecar_path(p, format_for(p)) for p in found}  # (`say`'s animation.csv.json is none)
        anims = [p for p in found if p not in sidecars]
        if not wavs or not anims:
            raise TalkfaceError(f"{path}: needs a .wav and an animation (.json, .csv or .npz) in it")
        anim, tsv, pcm = read(anims[0]), path / "phonemes.tsv", load_audio(wavs[0])
        speech = Speech(pcm, _read_phones(tsv), None, anim.fps) if tsv.is_file() else None
        return Clip(anim, wav_bytes(pcm), f"{path.name}/{anims[0].name}", speech)
    if not path.is_file():
        raise TalkfaceError(f"{path}: no such file or folder")
    if path.suffix.lower() in EXTENSIONS:
        raise TalkfaceError(f"{path}: give a speech file or a folder holding speech and its animation")
    pcm = load_audio(path)  # (decoded a block at a time, as every file is)
    anim, speech = analyse(animator, pcm, text)
    return Clip(anim, wav_bytes(pcm), path.name, speech)


def _read_phones(tsv: Path) -> list[TimedPhone]:
    try:
        return read_phones_tsv(str(tsv))
    except (ValueError, KeyError) as e:
        raise TalkfaceError(f"{tsv}: not a phone table (start_s, end_s, phone): {e}") from None
