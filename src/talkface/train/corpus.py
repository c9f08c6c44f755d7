"""The synthetic training corpus: TTS speech with exact phone timings, augmented, with face targets.

Every utterance is a natural sentence spoken by a random offline voice (espeak-ng accents,
variants and languages with random rate and pitch; Piper's joe; flite's kal, rms and awb and
Festival's kal and ked, which are built from recordings of real speakers; optionally a share of
whispered espeak-ng voices, for voices without a voiced source), so the phone timings
are the engine's own; an engine that is not installed gives its share to espeak-ng and Piper.
Targets are the phoneme-driven lip sync at 100 fps, the model's frame rate, and the audio is
augmented (speed, room, band, noise, codec, gain) before its log-mel features are taken. Shards
are deterministic from (seed, shard index) and written atomically, so an interrupted build resumes
where it stopped.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import threading
import time
import zipfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soxr
from tqdm import tqdm

from ..animation import Animation
from ..audio import SAMPLE_RATE
from ..coarticulation import animate_phones
from ..errors import TalkfaceError
from ..features import FRAME_RATE, HOP, log_mel
from ..files import atomic_path, clear_temps, folder_lock, opened, write_text
from ..phonemes import VISEME_OF, VISEMES, TimedPhone
from ..tts import Speech, espeak, festival, flite, piper
from . import augment
from .styles import random_style

log = logging.getLogger(__name__)

#: espeak-ng language of each UDHR translation used (ISO 639-3 file name → espeak-ng tag).
UDHR_LANGUAGES = {
    "deu": "de", "fra": "fr", "spa": "es", "ita": "it", "por_PT": "pt", "nld": "nl", "pol": "pl",
    "rus": "ru", "fin": "fi", "swe": "sv", "tur": "tr", "hin": "hi", "ces": "cs", "hun": "hu",
    "ron": "ro", "dan": "da", "ind": "id", "vie": "vi", "swh": "sw", "cym": "cy", "ukr": "uk",
    "cat": "ca", "slk": "sk", "eus": "eu", "isl": "is", "lit": "lt", "est": "et", "afr": "af",
}  # fmt: skip
ENGLISH_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-gb-x-rp", "en-029")
#: An accent never trained on: validation measures how the model does on an unseen voice.
HELD_OUT_ACCENT = "en-us-nyc"
VARIANTS = (
    "", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "Alex", "Andy",
    "Annie", "Denis", "Gene", "Lee", "Mario", "Michael", "Mike", "adam", "anika", "aunty", "belinda",
    "benjamin", "caleb", "david", "ed", "edward", "grandma", "grandpa", "linda", "max", "norbert",
    "paul", "quincy", "rob", "robert", "shelby", "steph", "travis", "victor", "zac",
)  # fmt: skip
#: espeak-ng variants that whisper: noise in place of the voice, the same phones and timings.
WHISPER_VARIANTS = ("whisper", "whisperf")


@dataclass(frozen=True)
class CorpusConfig:
    """What a corpus holds; stored in its manifest so a build can be resumed or reproduced."""

    hours: float
    seed: int = 0
    shard_seconds: float = 300.0
    english_share: float = 0.75  # the rest is other languages
    piper_share: float = 0.15  # of the English utterances not given to flite or Festival, when Piper is installed
    flite_share: float = 0.45  # of the English utterances (training voices only), when flite is installed
    festival_share: float = 0.35  # likewise for Festival
    speed: tuple[float, float] = (0.85, 1.15)
    emotion_dim: int = 10
    emotion_share: float = 0.0  # utterances given a random emotion (targets and the network's emotion input)
    whisper_share: float = 0.0  # utterances whispered by espeak-ng (any language or accent)
    held_out_accent: str = HELD_OUT_ACCENT
    languages: dict[str, str] = field(default_factory=lambda: dict(UDHR_LANGUAGES))


def _sentences_in(text: str) -> list[str]:
    """Sentences of 4–30 words from running text."""
    text = re.sub(r"\s+", " ", text)
    parts = re.split(r"(?<=[.!?;])\s+", text)
    return [p.strip() for p in parts if 4 <= len(p.split()) <= 30 and not re.search(r"[\[\]{}<>|_*#@]", p)]


#: The largest text file (or zip member) the corpus reads: a book is a few MB.
TEXT_FILE_LIMIT = 64 << 20


def read_sentences(text_dir: str | Path, languages: dict[str, str]) -> dict[str, list[str]]:
    """Sentences by espeak-ng language from a folder of `.txt` files and text zips.

    English comes from every text except `udhr2/`; other languages from the UDHR translations
    named in `languages`.
    """
    folder = Path(text_dir)
    if not folder.is_dir():
        raise TalkfaceError(f"{folder}: no such text folder")
    found: dict[str, list[str]] = {}

    def add(name: str, data: bytes) -> None:
        stem = Path(name).stem
        if "udhr" in name:
            if stem not in languages:
                return
            lang = languages[stem]
        else:
            lang = "en"
        found.setdefault(lang, []).extend(_sentences_in(data.decode("utf-8", "replace")))

    for path in sorted(folder.rglob("*")):
        if path.suffix == ".zip":
            try:
                with zipfile.ZipFile(path) as z:
                    for name in sorted(z.namelist()):
                        if name.endswith(".txt"):
                            with z.open(name) as member:  # (no more than a text may hold: a zip bomb ends)
                                add(name, _bounded(member, f"{path}: {name}"))
            except (zipfile.BadZipFile, OSError, RuntimeError) as e:  # (RuntimeError: an encrypted member)
                raise TalkfaceError(f"{path}: not a readable zip of texts ({e})") from None
        elif path.suffix == ".txt":  # (a device is refused, a pipe nobody writes to reads empty: `opened`)
            with opened(path, "text") as f:
                add(str(path.relative_to(folder)), _bounded(f, str(path)))
    if not found.get("en"):
        raise TalkfaceError(f"{folder}: no English sentences found (.txt files or zips of them)")
    return {lang: sorted(set(s)) for lang, s in found.items()}


def _exit_with(parent: int) -> None:
    """A pool worker's start: a thread that ends the worker once `parent` is gone (workers of a killed
    run went on holding hundreds of MB, waiting on a queue nobody would write to)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="talkface-parent-watch").start()


def _bounded(f: BinaryIO, name: str) -> bytes:
    """The bytes of a text file of the corpus, at most `TEXT_FILE_LIMIT` (TalkfaceError past it)."""
    data = f.read(TEXT_FILE_LIMIT + 1)
    if len(data) > TEXT_FILE_LIMIT:
        raise TalkfaceError(f"{name}: over {TEXT_FILE_LIMIT >> 20} MB of text; split it")
    return data


class SentencePicker:
    """Draws sentences favouring unseen letter pairs, a cheap proxy for broad phonetic coverage."""

    def __init__(self, sentences: list[str], rng: np.random.Generator, candidates: int = 8) -> None:
        self.sentences, self.rng, self.candidates = sentences, rng, candidates
        self.seen: Counter[str] = Counter()

    @staticmethod
    def _pairs(sentence: str) -> list[str]:
        s = sentence.lower()
        return [s[i : i + 2] for i in range(len(s) - 1) if s[i].isalpha() and s[i + 1].isalpha()]

    def __call__(self) -> str:
        picks = self.rng.integers(0, len(self.sentences), self.candidates)

        def novelty(i: int) -> float:
            pairs = self._pairs(self.sentences[i])
            return sum(1.0 / (1 + self.seen[p]) for p in pairs) / (len(pairs) + 1)

        best = self.sentences[max(picks, key=novelty)]
        self.seen.update(self._pairs(best))
        return best


def _synthesize(rng: np.random.Generator, sentences: dict[str, list[str]], config: CorpusConfig, held_out: bool,
                pickers: dict[str, SentencePicker]) -> tuple[Speech, str]:  # fmt: skip
    """One utterance from a random voice; returns the speech and the voice's name."""
    english = held_out or rng.random() < config.english_share or len(sentences) == 1
    lang = "en" if english else str(rng.choice(sorted(k for k in sentences if k != "en")))
    text = pickers[lang]()
    whisper = config.whisper_share > 0 and rng.random() < config.whisper_share  # no draw at 0: old corpora rebuild
    if english and not held_out and not whisper and (config.flite_share or config.festival_share):
        draw = rng.random()
        if draw < config.flite_share and flite.installed():
            voice = str(rng.choice(sorted(flite.VOICES)))
            stretch, pitch = rng.uniform(0.85, 1.2), rng.uniform(85.0, 140.0)
            return flite.load(voice, stretch, pitch).synthesize(text), f"flite:{voice}"
        if config.flite_share <= draw < config.flite_share + config.festival_share and festival.installed():
            voice = str(rng.choice(sorted(festival.VOICES)))
            return festival.load(voice, rng.uniform(0.85, 1.2)).synthesize(text), f"festival:{voice}"
    if english and not held_out and not whisper and piper.installed() and rng.random() < config.piper_share:
        return piper.load("joe").synthesize(text), "piper:joe"
    tag = config.held_out_accent if held_out else (str(rng.choice(ENGLISH_ACCENTS)) if english else lang)
    variant = str(rng.choice(WHISPER_VARIANTS if whisper else VARIANTS))
    prosody = espeak.Prosody(int(rng.integers(120, 260)), int(rng.integers(20, 85)), int(rng.integers(15, 95)))
    name = f"{tag}+{variant}" if variant else tag
    return espeak.load(name, prosody).synthesize(text), f"espeak:{name}"


def _visemes(phones: list[TimedPhone], frames: int) -> np.ndarray:
    """Viseme class index of each 100 Hz frame."""
    out = np.zeros(frames, np.int8)
    index = {v: i for i, v in enumerate(VISEMES)}
    for p in phones:
        a, b = round(p.start * FRAME_RATE), round(p.end * FRAME_RATE)
        out[a:b] = index[VISEME_OF[p.phone]]
    return out


def emotional(rng: np.random.Generator, targets: Animation) -> tuple[Animation, np.ndarray]:
    """The targets in a random emotional style (`styles.random_style`: lips kept intact) and the
    style's mean emotion weights, which the network gets as its emotion input."""
    style = random_style(rng, targets.duration)
    vector = style.emotion.sample(targets.times).mean(axis=0)
    return style.apply(targets), vector.astype(np.float32)


def make_utterance(rng: np.random.Generator, sentences: dict[str, list[str]], config: CorpusConfig,
                   held_out: bool, pickers: dict[str, SentencePicker]) -> dict[str, np.ndarray | str]:  # fmt: skip
    """Features, targets, visemes and emotion vector of one augmented synthetic utterance, and its
    augmented 16 kHz audio (16-bit, one hop per feature frame), from which other front ends'
    features are computed."""
    speech, voice = _synthesize(rng, sentences, config, held_out, pickers)
    speed = rng.uniform(*config.speed)
    # speed perturbation: play faster or slower, so pitch and timing change together
    audio = soxr.resample(speech.audio, speech.sample_rate * speed, SAMPLE_RATE).astype(np.float32)
    phones = [TimedPhone(p.start / speed, p.end / speed, p.phone) for p in speech.phones]
    audio = augment.augment(audio, rng)
    mel = log_mel(audio)
    targets = animate_phones(phones, FRAME_RATE, duration=mel.shape[0] / FRAME_RATE)
    emotion = np.zeros(config.emotion_dim, np.float32)
    if config.emotion_share > 0 and rng.random() < config.emotion_share:  # no draw at 0: old corpora rebuild
        targets, emotion = emotional(rng, targets)
    n = min(mel.shape[0], targets.num_frames)
    return {
        "audio": pcm_frames(audio, n),
        "mel": mel[:n].astype(np.float16),
        "targets": targets.weights[:n].astype(np.float16),
        "visemes": _visemes(phones, n),
        "emotion": emotion.astype(np.float16),
        "voice": voice,
    }


def _build_shard(args: tuple[Path, int, bool, CorpusConfig, dict[str, list[str]]]) -> float:
    """Write one shard (utterances until `shard_seconds` of audio); returns its seconds."""
    path, index, held_out, config, sentences = args
    rng = np.random.default_rng([config.seed, index, int(held_out)])
    pickers = {lang: SentencePicker(s, rng) for lang, s in sentences.items()}
    utterances, seconds = [], 0.0
    while seconds < config.shard_seconds:
        u = make_utterance(rng, sentences, config, held_out, pickers)
        utterances.append(u)
        seconds += u["mel"].shape[0] / FRAME_RATE
    write_shard(path, utterances)
    return seconds


def pcm_frames(audio: np.ndarray, frames: int) -> np.ndarray:
    """16-bit audio of exactly `frames` feature hops (cut or zero-padded), as shards keep it."""
    pcm = np.zeros(frames * HOP, np.int16)
    pcm[: min(audio.size, pcm.size)] = np.round(np.clip(audio[: pcm.size], -1, 1) * 32767)
    return pcm


def write_shard(path: Path, utterances: list[dict[str, np.ndarray | str]]) -> None:
    """Write utterances (mel, audio, targets, visemes, emotion, voice) as one corpus shard, atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            mel=np.concatenate([u["mel"] for u in utterances]),
            audio=np.concatenate([u["audio"] for u in utterances]),
            targets=np.concatenate([u["targets"] for u in utterances]),
            visemes=np.concatenate([u["visemes"] for u in utterances]),
            emotion=np.stack([u["emotion"] for u in utterances]),
            lengths=np.array([u["mel"].shape[0] for u in utterances]),
            voices=np.array([u["voice"] for u in utterances]),
        )


#: Settings added after the first corpora were built, with the values those corpora were built with.
_ADDED_LATER = {"emotion_share": 0.0, "flite_share": 0.0, "festival_share": 0.0, "whisper_share": 0.0}


def build_corpus(out_dir: str | Path, text_dir: str | Path, config: CorpusConfig, workers: int = 2,
                 progress: bool = True) -> Path:  # fmt: skip
    """Build (or resume) a corpus in `out_dir`: train shards, validation shards of the held-out accent.

    The folder is locked meanwhile: a second build in it is refused at once, rather than both passing
    the settings check and each replacing the other's shards. A resumed build first clears the
    temporary files a killed one left."""
    sentences = read_sentences(text_dir, config.languages)
    out = Path(out_dir)
    with folder_lock(out, "another talkface corpus is being built in this folder"):
        _build(out, sentences, config, workers, progress)
    return out


def _build(out: Path, sentences: dict[str, list[str]], config: CorpusConfig, workers: int, progress: bool) -> None:
    """`build_corpus`'s work, with the folder locked."""
    manifest = out / "manifest.json"
    if manifest.exists():
        previous = {**_ADDED_LATER, **json.loads(manifest.read_text())["config"]}
        asked = json.loads(json.dumps(asdict(config)))
        differ = "; ".join(f"{k} {previous.get(k)!r} there, {v!r} asked" for k, v in asked.items()
                           if previous.get(k) != v)  # fmt: skip
        if differ:
            raise TalkfaceError(f"{out}: holds a corpus built with other settings ({differ}); use a new folder")
    for engine, share in ((flite, config.flite_share), (festival, config.festival_share)):
        if share and not engine.installed():
            log.warning("%s; its share of the corpus goes to espeak-ng and Piper", engine.MISSING)
    train_shards = max(1, round(config.hours * 3600 / config.shard_seconds))
    val_shards = max(1, round(train_shards * 0.05))
    jobs = [(out / f"train-{i:05d}.npz", i, False) for i in range(train_shards)]
    jobs += [(out / f"val-{i:05d}.npz", i, True) for i in range(val_shards)]
    clear_temps(out, [manifest.name, *(path.name for path, _, _ in jobs)])
    write_text(manifest, json.dumps({"config": asdict(config), "languages": sorted(sentences)}, indent=1))
    todo = [(p, i, h, config, sentences) for p, i, h in jobs if not p.exists()]
    with tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="shard", disable=not progress) as bar:
        if workers <= 1:
            for job in todo:
                _build_shard(job)
                bar.update()
        else:
            # a Pool, whose exit ends its workers: a ProcessPoolExecutor left by Ctrl-C or SIGTERM first
            # built every shard already queued (tens of seconds, as long as a shard takes)
            with multiprocessing.Pool(workers, initializer=_exit_with, initargs=(os.getpid(),)) as pool:
                for _ in pool.imap(_build_shard, todo):
                    bar.update()
