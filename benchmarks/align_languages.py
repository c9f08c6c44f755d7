"""`animate --text --lang`: transcripts in other languages, on espeak-ng speech and on real recordings.

Run: python benchmarks/align_languages.py [--real build/languages]

1. Speech of known timing: the sentence of each of ten languages in tests/test_align_languages.py,
   spoken by another espeak-ng voice variant, slower and lower than the reading that gives the
   pronunciations. Prints the median phone-boundary error against the voice's own timings, the share of
   /p b m/ with closed lips and the share of words matched, per language and pooled.
2. With --real DIR: Debian's Spanish (es_MX, Allison) and French (fr_CA, June) Asterisk prompts with
   their transcripts (downloaded into DIR with `apt-get download`, SHA-256 pinned; CC-BY-SA-3.0, used
   for evaluation only, not shipped or trained on). Each prompt's transcript is aligned with --lang;
   those with at least 75 % of words matched become references, and the neural model for files, the
   live model and the phonetic engine are scored against them, as `talkface evaluate` scores English.
   The references come from the aligner itself: they are as good as its cross-language alignment.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np

from talkface.align import align_transcript, boundary_errors
from talkface.audio import SAMPLE_RATE
from talkface.coarticulation import animate_phones
from talkface.errors import TalkfaceError
from talkface.evaluation import Clip, evaluate, pooled, report
from talkface.metrics import mouth_scores

ROOT = Path(__file__).resolve().parent.parent
#: Debian packages (name=version: SHA-256) with the prompts (-g722: 16 kHz G.722) and their transcripts.
DEBS = {
    "asterisk-core-sounds-es=1.6.1-1": "9afdab7f559f036649fb406e625899306ca1004df8ebe39c30bfbd5912d66f74",
    "asterisk-core-sounds-es-g722=1.6.1-1": "e4e3b4281057d3b81b779298fd6be705f57411513955c518eed1bcaabbd615b8",
    "asterisk-core-sounds-fr=1.6.1-1": "04c82c78c570c43a7136cbc5e2488d0c470b775468dff9fbce4a131b18cf1056",
    "asterisk-core-sounds-fr-g722=1.6.1-1": "7add61d5e42279ecff1bbdf842a5a946ac3644fac9a0fe44384731aa7270c8e0",
}
VOICES = {"es": "es_MX_f_Allison", "fr": "fr_CA_f_June"}
MIN_SHARE = 0.75


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def synthetic() -> None:
    """Part 1: espeak-ng speech of ten languages."""
    sys.path.insert(0, str(ROOT / "tests"))
    languages = _module(ROOT / "tests" / "test_align_languages.py", "test_align_languages")
    errors, scores, shares = [], [], []
    print("lang  median error ms  closed p/b/m   words matched")
    for lang, text in languages.SENTENCES.items():
        audio, reference = languages._spoken(lang)
        alignment = align_transcript(audio, text, lang=lang)
        e = np.abs(boundary_errors(alignment.phones, reference))
        s = mouth_scores(animate_phones(alignment.phones, 30, len(audio) / SAMPLE_RATE), reference)
        errors.append(e)
        scores.append(s)
        shares.append(alignment.share)
        print(f"{lang:<5} {np.median(e) * 1000:>10.1f}      {s.closed_on_bilabials:>8.1%}     {alignment.share:>8.1%}")
    closed = pooled(scores)["closed_on_bilabials"]
    median = np.median(np.concatenate(errors)) * 1000
    print(f"all   {median:>10.1f}      {closed[0]:>8.1%} of {closed[1]}  {np.mean(shares):>5.1%}")


def real(cache: Path) -> None:
    """Part 2: real Spanish and French prompts."""
    sys.path.insert(0, str(ROOT / "scripts"))
    real_speech = _module(ROOT / "scripts" / "real_speech.py", "real_speech")
    root = real_speech.fetch(cache, DEBS, {})
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    for lang, folder in VOICES.items():
        package = f"asterisk-core-sounds-{lang}"
        listing = root / f"{package}/usr/share/doc/{package}/core-sounds-{lang}.txt.gz"
        texts = {}
        with gzip.open(listing, "rt", encoding="utf-8", errors="replace") as lines:
            for line in lines:
                name, sep, text = line.partition(":")
                if sep and not line.startswith(";") and text.strip():
                    texts[name.strip()] = text.strip()
        sounds = root / f"asterisk-core-sounds-{lang}-g722/usr/share/asterisk/sounds/{folder}"
        clips, shares, failed = [], [], 0
        for path in sorted(sounds.rglob("*.g722")):
            name = str(path.relative_to(sounds).with_suffix(""))
            if name not in texts:
                continue
            command = [ffmpeg, "-v", "error", "-f", "g722", "-i", str(path), "-ac", "1", "-ar", str(SAMPLE_RATE)]
            pcm = subprocess.run([*command, "-f", "f32le", "-"], capture_output=True, check=True).stdout
            audio = np.frombuffer(pcm, np.float32).copy()
            try:
                alignment = align_transcript(audio, texts[name], lang=lang)
            except TalkfaceError:
                failed += 1
                continue
            shares.append(alignment.share)
            if alignment.share >= MIN_SHARE:
                clips.append(Clip(name, audio, alignment.phones, False, f"asterisk-{lang}"))
        minutes = sum(len(c.audio) for c in clips) / SAMPLE_RATE / 60
        print(
            f"\n{lang}: {len(shares)} prompts aligned ({failed} failed), median share of words matched "
            f"{np.median(shares):.1%}; {len(clips)} with ≥ {MIN_SHARE:.0%} are references ({minutes:.1f} min)"
        )
        print(report(evaluate(clips=clips), f"asterisk {lang}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, metavar="DIR", help="also score real Spanish and French (downloads)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    synthetic()
    if args.real:
        real(args.real)


if __name__ == "__main__":
    main()
