"""flite voices through the `flite` program (Debian `flite`): audio and phone end times from `-psdur`.

kal and kal16 (one US male diphone voice at 8 and 16 kHz), rms (US male) and awb (Scottish male)
are built from recordings of real speakers. slt is left out on purpose: it is CMU ARCTIC speaker
SLT, who also speaks the real-speech test clip (`talkface evaluate`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import TalkfaceError
from . import Speech, VoiceInfo, check_text, read_wav, speech_from_ends, unknown_voice

#: The voices used, with their own duration stretch (flite's default for each).
VOICES = {"kal": 1.1, "kal16": 1.1, "rms": 1.0, "awb": 1.0}
BINARY = "flite"
MISSING = "flite is not installed (Debian: apt-get install flite)"
#: Seconds added to flite's phone boundaries. Measured against pocketsphinx forced alignment of
#: flite's own audio (`benchmarks/tts_timing.py`, 30 sentences dense in /p b m/ per voice): the
#: median offsets of bilabial starts / ends were kal -2 / +1 ms, kal16 -2 / +2, rms +7 / +1, awb
#: +5 / -1 (about 200-240 bilabials each), within one 10 ms alignment frame, and 85-95 % of the
#: engine's /p b m/ frames were bilabial for the aligner too; so no correction is applied.
SHIFT = 0.0
_PHONE = re.compile(r"(\S+):(\d+(?:\.\d+)?)")


def installed() -> bool:
    """Whether the `flite` program is on PATH."""
    return shutil.which(BINARY) is not None


def load(name: str, stretch: float = 1.0, pitch: float | None = None) -> FliteVoice:
    """A flite voice ("kal16" or "flite:kal16"), speaking `stretch` times slower than it does by default,
    at `pitch` Hz mean F0 (default: the voice's own)."""
    key = name.removeprefix("flite:")
    if key not in VOICES:
        raise unknown_voice(f"flite voice '{name}'")
    if not installed():
        raise TalkfaceError(MISSING)
    return FliteVoice(key, stretch, pitch)


class FliteVoice:
    """One flite voice with its speaking rate and pitch."""

    def __init__(self, name: str, stretch: float = 1.0, pitch: float | None = None) -> None:
        self.info = VoiceInfo(f"flite:{name}", "flite", "en-us", f"flite {name}")
        self.name, self.stretch, self.pitch = name, stretch, pitch

    def synthesize(self, text: str) -> Speech:
        """Speak `text`; phones from the end times flite prints with `-psdur`."""
        options = ["--setf", f"duration_stretch={self.stretch * VOICES[self.name]:.3f}"]
        if self.pitch is not None:
            options += ["--setf", f"int_f0_target_mean={self.pitch:.1f}"]
        with tempfile.TemporaryDirectory() as tmp:
            wav = str(Path(tmp) / "out.wav")
            run = subprocess.run(
                [BINARY, "-voice", self.name, *options, "-psdur", "-t", check_text(text), "-o", wav],
                capture_output=True,
                text=True,
            )
            if run.returncode != 0 or not Path(wav).is_file():
                raise TalkfaceError(f"flite failed: {run.stderr.strip() or run.returncode}")
            audio, rate = read_wav(wav)
        ends = [(float(t), phone) for phone, t in _PHONE.findall(run.stdout)]
        return speech_from_ends(audio, rate, ends, SHIFT)
