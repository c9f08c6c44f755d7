"""Festival's diphone voices through `festival --pipe` (Debian `festival`, `festlex-cmu` and the
`festvox-kallpc16k`, `festvox-kdlpc16k` voices): audio and segment end times (`utt.save.segs`).

kal and ked are US male diphone voices recorded from real speakers. The slt HTS voice is left out
on purpose: it is CMU ARCTIC speaker SLT, who also speaks the real-speech test clip.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import TalkfaceError
from . import Speech, VoiceInfo, check_text, read_wav, speech_from_ends, unknown_voice

VOICES = {"kal": "voice_kal_diphone", "ked": "voice_ked_diphone"}
BINARY = "festival"
MISSING = "festival is not installed (Debian: apt-get install festival festlex-cmu festvox-kallpc16k festvox-kdlpc16k)"
#: Seconds added to each voice's segment boundaries. Measured against pocketsphinx forced alignment
#: of the voice's own audio (`benchmarks/tts_timing.py`, 30 sentences dense in /p b m/): kal's
#: bilabials started a median 13 ms and ended 5 ms before the aligner's (181 bilabials in the 23
#: sentences it aligned), so its boundaries move 9 ms later; ked's were 4 ms and 2 ms early (231 in
#: 29), within one 10 ms alignment frame, so it is left as it is. 83 % (kal) and 86 % (ked) of the
#: engine's /p b m/ frames were bilabial for the aligner too (flite 85-95 %, Piper joe 89 %).
SHIFT = {"kal": 0.009, "ked": 0.0}


def installed() -> bool:
    """Whether the `festival` program is on PATH."""
    return shutil.which(BINARY) is not None


def load(name: str, stretch: float = 1.0) -> FestivalVoice:
    """A Festival voice ("kal" or "festival:kal"), speaking `stretch` times slower than it does by default."""
    key = name.removeprefix("festival:")
    if key not in VOICES:
        raise unknown_voice(f"Festival voice '{name}'")
    if not installed():
        raise TalkfaceError(MISSING)
    return FestivalVoice(key, stretch)


def _quoted(text: str) -> str:
    """`text` as a Scheme string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class FestivalVoice:
    """One Festival diphone voice with its speaking rate."""

    def __init__(self, name: str, stretch: float = 1.0) -> None:
        self.info = VoiceInfo(f"festival:{name}", "festival", "en-us", f"Festival {name} diphone")
        self.name, self.stretch = name, stretch

    def synthesize(self, text: str) -> Speech:
        """Speak `text`; phones from the segment end times Festival saves."""
        with tempfile.TemporaryDirectory() as tmp:
            wav, segs = Path(tmp) / "out.wav", Path(tmp) / "out.segs"
            script = (
                f"({VOICES[self.name]})\n"
                f"(Parameter.set 'Duration_Stretch (* {self.stretch:.3f} (Parameter.get 'Duration_Stretch)))\n"
                f"(set! utt (utt.synth (Utterance Text {_quoted(check_text(text))})))\n"
                f"(utt.save.wave utt {_quoted(str(wav))} 'riff)\n(utt.save.segs utt {_quoted(str(segs))})\n"
            )
            run = subprocess.run([BINARY, "--pipe"], input=script, capture_output=True, text=True)
            if not wav.is_file() or not segs.is_file():
                raise TalkfaceError(f"festival failed: {run.stderr.strip() or run.returncode}")
            audio, rate = read_wav(str(wav))
            lines = segs.read_text().split("#", 1)[-1].split("\n")
        ends = [(float(f[0]), f[2]) for f in (line.split() for line in lines) if len(f) == 3]
        return speech_from_ends(audio, rate, ends, SHIFT[self.name])
