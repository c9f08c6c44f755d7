"""`animate --text --lang`: transcripts in other languages, on espeak-ng speech and on real recordings.

Run: python benchmarks/align_languages.py [--real build/languages]

1. Speech of known timing: the sentence of each of ten languages in tests/test_align_languages.py,
   spoken by another espeak-ng voice variant, slower and lower than the reading that gives the
   pronunciations. Prints the median phone-boundary error against the voice's own timings, the share of
   /p b m/ with closed lips and the share of words matched, per language and pooled.
2. With --real DIR: real speech of six languages with what is said in it, downloaded into DIR with
   `apt-get download` (SHA-256 pinned; used here to evaluate, never shipped): Debian's
   Asterisk prompts in Spanish (es_MX, CC-BY-SA-3.0), French (fr_CA, CC-BY-SA-3.0), Italian and
   Russian (CC-BY-3.0; the live model was distilled on these two, so its figures there are on audio
   it learnt from), and Fish Fillets NG's Czech and Dutch game dialogue (about ten voice actors,
   GPL-2); `--minutes M` cuts each source to its first M minutes of recordings in a fixed order. Each
   transcript is aligned with --lang; those with at least 75 % of words matched become references,
   and the neural model for files, the live model and the phonetic engine are scored against them,
   as `talkface evaluate` scores English, over all references and apart for those that
   scripts/real_speech.py would keep (`_misfit`: no scored pause over sound within 10 dB of the
   speech). The references come from the aligner itself: they are as good as its cross-language
   alignment.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import logging
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkface.align import align_transcript, boundary_errors
from talkface.align.result import MIN_SHARE
from talkface.audio import SAMPLE_RATE
from talkface.coarticulation import animate_phones
from talkface.errors import TalkfaceError
from talkface.evaluation import Clip, evaluate, pooled, report
from talkface.metrics import mouth_scores

ROOT = Path(__file__).resolve().parent.parent
#: Debian packages (name=version: SHA-256): the Asterisk prompts (-g722: 16 kHz G.722) and their
#: transcripts; Fish Fillets NG's Czech and Dutch dialogue and its scripts (the lines).
DEBS = {
    "asterisk-core-sounds-es=1.6.1-1": "9afdab7f559f036649fb406e625899306ca1004df8ebe39c30bfbd5912d66f74",
    "asterisk-core-sounds-es-g722=1.6.1-1": "e4e3b4281057d3b81b779298fd6be705f57411513955c518eed1bcaabbd615b8",
    "asterisk-core-sounds-fr=1.6.1-1": "04c82c78c570c43a7136cbc5e2488d0c470b775468dff9fbce4a131b18cf1056",
    "asterisk-core-sounds-fr-g722=1.6.1-1": "7add61d5e42279ecff1bbdf842a5a946ac3644fac9a0fe44384731aa7270c8e0",
    "asterisk-core-sounds-it=1.6.1-1": "3884d9457e12f21caa018c18f0d587df5d53ebea14b673d8453a134c5941ab3b",
    "asterisk-core-sounds-it-g722=1.6.1-1": "46b4cf7afc508a5fcfc051b7ea233251c0d195dd4ef83cc4b7facb4c6429b016",
    "asterisk-core-sounds-ru=1.6.1-1": "28a61616bb0cd3345a7ea532dec4df9f071e5d0fa9f8c1a563ea9669002f39ab",
    "asterisk-core-sounds-ru-g722=1.6.1-1": "673b4238a6b8269960f055d868c6a11083f7a0d00979167cb01554046b48ed9b",
    "fillets-ng-data=1.0.1-1.1": "25de89afd8b1adf7bcace8290248a6a22c89cd42300317e69000e162c032cf84",
    "fillets-ng-data-cs=1.0.1-1.1": "3ecef99b9456f1c80c9625c6f2418642b52d58e7167a46bad7a412db17991b14",
    "fillets-ng-data-nl=1.0.1-1.1": "afb4443fda9ab507dee578b75be857d121718a1cd6017a474f30e0eb13dc9d10",
}
#: Said of the sources whose audio the live model was distilled on (scripts/real_speech.py --distill).
DISTILLED = "the live model was distilled on this audio"


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


Recording = tuple[str, Path, str]  # name, audio file, what is said in it


def asterisk(root: Path, lang: str, voice: str) -> list[Recording]:
    """An Asterisk voice's prompts (16 kHz G.722) with the lines of core-sounds-LANG.txt, by name;
    descriptions ("[tono simple]", "<beep>") are taken out and prompts with nothing else left out."""
    package = f"asterisk-core-sounds-{lang}"
    listing = root / f"{package}/usr/share/doc/{package}/core-sounds-{lang}.txt.gz"
    texts = {}
    with gzip.open(listing, "rt", encoding="utf-8-sig", errors="replace") as lines:
        for line in lines:
            name, sep, text = line.partition(":")
            text = " ".join(re.sub(r"\[[^\]]*\]|<[^>]*>|\([^)]*\)", " ", text).split())
            if sep and not line.startswith(";") and text:
                texts[name.strip()] = text
    sounds = root / f"{package}-g722/usr/share/asterisk/sounds/{voice}"
    found = ((path.relative_to(sounds).with_suffix("").as_posix(), path) for path in sorted(sounds.rglob("*.g722")))
    return [(name, path, texts[name]) for name, path in found if name in texts]


def fillets(root: Path, lang: str, _: str = "") -> list[Recording]:
    """Fish Fillets NG's dialogue in `lang`: sound/<level>/<lang>/<id>.ogg with the `dialogStr` line
    after `dialogId("<id>", ...)` in the scripts' *dialogs_<lang>.lua (an id may lack the ogg name's
    last digit). Taken a level at a time in turn (each level's first line, then each one's second, ...),
    so that any first part of the list holds every level and the voices in them."""
    game = "usr/share/games/fillets-ng"
    texts, said = {}, None
    for script in sorted((root / "fillets-ng-data" / game / "script").rglob(f"*dialogs_{lang}.lua")):
        for call, value in re.findall(r'(dialogId|dialogStr)\(\s*"((?:[^"\\]|\\.)*)"', script.read_text("utf-8")):
            if call == "dialogId":
                said = value
            elif said is not None:
                texts[said] = " ".join(re.sub(r"\\(.)", r"\1", value).split())
    ranked = []
    for level in sorted((root / f"fillets-ng-data-{lang}" / game / "sound").rglob(lang)):
        lines = [(p, texts.get(p.stem, texts.get(p.stem.rstrip("0123456789")))) for p in sorted(level.glob("*.ogg"))]
        lines = [(p, text) for p, text in lines if text]
        ranked += [(rank, str(level.parent.name), p, text) for rank, (p, text) in enumerate(lines)]
    return [(f"{level}/{p.stem}", p, text) for _, level, p, text in sorted(ranked)]


@dataclass(frozen=True)
class Source:
    """Recordings in one language with what is said in them."""

    lang: str  # the transcripts' language, as --lang takes it
    title: str
    load: Callable[[Path, str, str], list[Recording]]
    voice: str = ""  # the Asterisk voice's folder
    note: str = ""


SOURCES = (
    Source("es", "Spanish: Asterisk es_MX_f_Allison (1 F, CC-BY-SA-3.0)", asterisk, "es_MX_f_Allison"),
    Source("fr", "French: Asterisk fr_CA_f_June (1 F, CC-BY-SA-3.0)", asterisk, "fr_CA_f_June"),
    Source("it", "Italian: Asterisk it_IT_m_Carlo (1 M, CC-BY-3.0)", asterisk, "it_IT_m_Carlo", DISTILLED),
    Source("ru", "Russian: Asterisk ru_RU_f_IvrvoiceRU (1 F, CC-BY-3.0)", asterisk, "ru_RU_f_IvrvoiceRU", DISTILLED),
    Source("cs", "Czech: Fish Fillets NG dialogue (voice actors, GPL-2)", fillets),
    Source("nl", "Dutch: Fish Fillets NG dialogue (voice actors, GPL-2)", fillets),
)


def _decode(path: Path) -> np.ndarray:
    """A recording (G.722, Ogg Vorbis, any rate) as 16 kHz mono float32."""
    import imageio_ffmpeg

    given = ["-f", "g722"] if path.suffix == ".g722" else []
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", *given, "-i", str(path), "-ac", "1"]
    pcm = subprocess.run([*command, "-ar", str(SAMPLE_RATE), "-f", "f32le", "-"], capture_output=True, check=True)
    return np.frombuffer(pcm.stdout, np.float32).copy()


def real(cache: Path, minutes: float) -> None:
    """Part 2: real speech in six languages, each source cut to its first `minutes` of recordings
    (0: all). A reference whose scored pauses lie over sound as loud as the speech (`_misfit` of
    scripts/real_speech.py, which sets such English clips aside) is scored apart as well."""
    sys.path.insert(0, str(ROOT / "scripts"))
    real_speech = _module(ROOT / "scripts" / "real_speech.py", "real_speech")
    root = real_speech.fetch(cache, DEBS, {})
    for source in SOURCES:
        began = time.process_time()
        recordings = source.load(root, source.lang, source.voice)
        clips, shares, failed, heard, total = [], [], 0, 0.0, len(recordings)
        for name, path, text in recordings:
            if minutes and heard >= minutes * 60:
                break
            audio = _decode(path)
            heard += audio.size / SAMPLE_RATE
            try:
                alignment = align_transcript(audio, text, lang=source.lang)
            except TalkfaceError:
                failed += 1
                continue
            shares.append(alignment.share)
            if not alignment.doubtful:
                fits = "fits" if real_speech._misfit(audio, alignment) is None else "pause over sound"
                clips.append(Clip(name, audio, alignment.phones, False, fits))
        tried = len(shares) + failed
        kept = sum(len(c.audio) for c in clips) / SAMPLE_RATE / 60
        aside = sum(c.source != "fits" for c in clips)
        cut = "; the first in a fixed order" if tried < total else ""
        print(f"\n{source.title}" + (f"; {source.note}" if source.note else ""))
        print(
            f"{tried} of {total} recordings ({heard / 60:.1f} min{cut}); "
            f"{failed} did not align; median share of words matched {np.median(shares):.1%}; "
            f"{len(clips)} with ≥ {MIN_SHARE:.0%} are references ({kept:.1f} min), {aside} of them with a "
            f"scored pause within {real_speech.PAUSE_OVER_SPEECH_DB:g} dB of the speech"
        )
        print(report(evaluate(clips=clips), f"{source.lang}: all references"))
        print(f"({time.process_time() - began:.0f} s CPU)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, metavar="DIR", help="also score real speech of six languages (downloads)")
    parser.add_argument("--minutes", type=float, default=0.0, help="of each source's recordings (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    synthetic()
    if args.real:
        real(args.real, args.minutes)


if __name__ == "__main__":
    main()
