"""`talkface evaluate`: how an audio-only engine does on real speech and on a TTS voice it never heard.

Real speech: the CMU ARCTIC clip with hand phone labels (tests/data, shipped as the demo sample)
and the recordings of Debian's pocketsphinx-testdata, whose transcripts are force-aligned to give
reference phones. At each reference phone's midpoint we ask whether the lips are closed (/p b m/),
open (open vowels), rounded (/uw ow w/) or at rest (pauses), what that costs (lips shut on other
speech sounds, rounded on unrounded vowels), and we estimate the lag between the mouth and the
sound. Note that the pocketsphinx-testdata references come from pocketsphinx, as does the
phonetic baseline, which favours the baseline there.

`--set MANIFEST` scores one split of a larger real-speech set instead (scripts/real_speech.py
builds one: `manifest.jsonl`, a clip per line with its wav and reference phone table), pooled and
per source, so that narrowband telephone speech and wideband recordings can be told apart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from os import PathLike
from pathlib import Path

import numpy as np

from .animation import Animation
from .audio import SAMPLE_RATE, load_audio
from .coarticulation import animate_phones
from .errors import TalkfaceError
from .files import read_text
from .metrics import MouthScores, lip_aperture, mouth_scores
from .phonemes import TimedPhone, read_phones_tsv
from .rig import ARKIT_NAMES

TESTDATA = Path("/usr/share/pocketsphinx/test/data")
#: Sentences for the held-out TTS voice (written for this purpose; not in the training texts).
HELD_OUT_SENTENCES = (
    "Bring the blue map and the brown bag to the pub by the bay.",
    "We moved the heavy boxes from the van to the basement before lunch.",
    "Five fine violins were found on the top floor of the old museum.",
    "Would you rather walk home or wait for the number nine bus?",
    "Please measure the rope twice, then cut it with the sharp knife.",
    "The autumn leaves turned bright orange over the quiet lake.",
)
FPS = 30.0
MAX_LAG = 6  # frames each way
#: The splits of a real-speech set: every choice is made on validation; test is looked at once per shipped model.
SPLITS = ("validation", "test")


@dataclass(frozen=True)
class Clip:
    """Real speech and the reference phones to score it against."""

    name: str
    audio: np.ndarray
    reference: list[TimedPhone]
    hand_labelled: bool
    source: str = "own"


def real_speech() -> list[Clip]:
    """The real clips that can be had here: ARCTIC (hand labels) and pocketsphinx-testdata (aligned)."""
    from .align import align, read_htk_labels

    samples = files("talkface") / "samples"
    hand = read_htk_labels(str(samples / "arctic_a0009_phone.lab"))
    clips = [Clip("arctic_a0009", load_audio(str(samples / "arctic_a0009.wav")), hand, True, "arctic")]
    for folder, listing in (("librivox", "transcription"), ("cards", "cards.transcription")):
        path = TESTDATA / folder / listing
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            text, _, name = line.rpartition("(")
            text = text.replace("<s>", "").replace("</s>", "").strip()
            audio = load_audio(TESTDATA / folder / f"{name.strip(') ')}.wav")
            clips.append(Clip(f"{folder}/{name.strip(') ')}", audio, align(audio, text), False, "pocketsphinx"))
    return clips


#: The largest evaluation manifest read: a line per clip, a few hundred bytes each.
MANIFEST_LIMIT = 64 << 20


def read_set(manifest: str | PathLike, split: str) -> list[Clip]:
    """The clips of one split of a real-speech set: `manifest` is JSON lines with at least id,
    source, split, wav and phones (the last two relative to the manifest's folder).

    Raises `TalkfaceError` for a missing or malformed manifest, a missing file, an unknown split
    or a split with no clips.
    """
    if split not in SPLITS:
        raise TalkfaceError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    path = Path(manifest)
    lines = read_text(path, "manifest", MANIFEST_LIMIT).splitlines()  # (a pipe or a device ends too)
    clips = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            fields = [row[key] for key in ("id", "source", "split", "wav", "phones")]
            if not all(isinstance(value, str) for value in fields):
                raise TypeError("each of them a string")
        except (ValueError, KeyError, TypeError, RecursionError) as e:  # (ValueError: also 5000 digits)
            raise TalkfaceError(f"{path}:{number}: not a clip line with id, source, split, wav, phones ({e})") from None
        name, source, row_split, wav, phones = fields
        if row_split not in SPLITS:
            raise TalkfaceError(f"{path}:{number}: unknown split {row_split!r}")
        if row_split != split:
            continue
        table = path.parent / phones
        if not table.is_file():
            raise TalkfaceError(f"{table}: no such phone table (line {number} of {path})")
        clips.append(Clip(name, load_audio(path.parent / wav), read_phones_tsv(str(table)), False, source))
    if not clips:
        raise TalkfaceError(f"{path}: no clips in the {split} split")
    return clips


def lag_frames(anim: Animation, reference: Animation) -> int:
    """Frames by which the mouth trails the reference (negative: it leads), by cross-correlating lip aperture."""
    a, r = lip_aperture(anim), lip_aperture(reference)
    n = min(a.size, r.size)
    a, r = a[:n] - a[:n].mean(), r[:n] - r[:n].mean()
    scores = [
        float(np.dot(a[max(0, k) : n + min(0, k)], r[max(0, -k) : n - max(0, k)])) for k in range(-MAX_LAG, MAX_LAG + 1)
    ]
    return int(np.argmax(scores)) - MAX_LAG


def pooled(scores: list[MouthScores]) -> dict[str, tuple[float, int]]:
    """Each measure over all clips: (fraction, count)."""
    out = {}
    for field, key in (("closed_on_bilabials", "bilabials"), ("open_on_open_vowels", "open_vowels"),
                       ("rounded_on_rounded", "rounded"), ("rest_in_pauses", "pauses"),
                       ("closed_elsewhere", "other_speech"), ("rounded_elsewhere", "unrounded")):  # fmt: skip
        n = sum(s.counts[key] for s in scores)
        hits = sum(getattr(s, field) * s.counts[key] for s in scores if s.counts[key])
        out[field] = (hits / n if n else float("nan"), n)
    return out


def score_engine(animate: Callable[[np.ndarray], Animation], clips: list[Clip]) -> dict:
    """Pooled mouth scores and median lag of an engine over the clips; where the clips come from
    more than one source, the same for each source under "sources"."""
    scores, lags = [], []
    for clip in clips:
        anim = animate(clip.audio)
        scores.append(mouth_scores(anim, clip.reference))
        lags.append(lag_frames(anim, animate_phones(clip.reference, FPS, len(clip.audio) / SAMPLE_RATE)))

    def summary(keep: list[int]) -> dict:
        return {
            **pooled([scores[i] for i in keep]),
            "lag_frames": float(np.median([lags[i] for i in keep])),
            "seconds": sum(clips[i].audio.size for i in keep) / SAMPLE_RATE,
        }

    result = summary(list(range(len(clips))))
    sources = sorted({c.source for c in clips})
    if len(sources) > 1:
        result["sources"] = {s: summary([i for i, c in enumerate(clips) if c.source == s]) for s in sources}
    return result


def held_out_voice(animate: Callable[[np.ndarray], Animation], voice: str = "en-us-nyc") -> tuple[float, float]:
    """On a voice the corpus holds out of training (an espeak-ng accent): the mean absolute error on
    the jaw and mouth channels against the phoneme-driven target, and the share of its /p b m/
    with closed lips."""
    from .tts import load_voice

    mouth = [i for i, n in enumerate(ARKIT_NAMES) if n.startswith(("jaw", "mouth"))]
    errors, scores = [], []
    for k, text in enumerate(HELD_OUT_SENTENCES):
        variant = ("", "+f2", "+m3", "+f4", "+m6", "+Annie")[k % 6]
        speech = load_voice(f"espeak:{voice}{variant}").synthesize(text)
        audio = load_audio(speech.audio, speech.sample_rate)
        target = animate_phones(speech.phones, FPS, len(audio) / SAMPLE_RATE)
        anim = animate(audio)
        n = min(anim.num_frames, target.num_frames)
        errors.append(np.abs(anim.weights[:n, mouth] - target.weights[:n, mouth]).mean())
        scores.append(mouth_scores(anim, speech.phones))
    return float(np.mean(errors)), pooled(scores)["closed_on_bilabials"][0]


def evaluate(model: str | None = None, clips: list[Clip] | None = None) -> dict[str, dict]:
    """Scores of the neural model for files (`model`, or the packaged speech-encoder model), of the
    packaged live model (what streams run; only when no `model` is given) and of the phonetic baseline.

    Without `clips`: on `real_speech()` and the held-out TTS voice. With `clips` (a split of a
    real-speech set, `read_set`): on those alone, pooled and per source.
    """
    from .animator import Animator
    from .model import default_model_path

    animators = {"neural": Animator(FPS, "neural", model)}
    if model is None:
        animators["live"] = Animator(FPS, "neural", str(default_model_path()))
    animators["phonetic"] = Animator(FPS, "phonetic")
    results = {}
    for engine, animator in animators.items():

        def run(audio: np.ndarray, animator: Animator = animator) -> Animation:
            return animator.animate(audio, sample_rate=SAMPLE_RATE)

        if clips is None:
            mae, closed = held_out_voice(run)
            results[engine] = score_engine(run, real_speech()) | {"held_out_mae": mae, "held_out_closed": closed}
        else:
            results[engine] = score_engine(run, clips)
    return results


_COLUMNS = ("closed_on_bilabials", "open_on_open_vowels", "rounded_on_rounded", "rest_in_pauses",
            "closed_elsewhere", "rounded_elsewhere")  # fmt: skip


def report(results: dict[str, dict], title: str = "real speech") -> str:
    """The results as a table: one row per engine, then per engine and source where there are several."""
    held_out = "held_out_mae" in next(iter(results.values()))
    lines = [
        f"{title:<22}" + (" " * 59 + "held-out TTS voice" if held_out else ""),
        "engine     closed p/b/m      open vowels       rounded           rest in pauses    "
        "shut elsewhere    round elsewhere   lag(frames)" + ("  MAE     closed" if held_out else ""),
    ]

    def row(label: str, r: dict, extra: str = "") -> str:
        cells = [f"{'–' if math.isnan(r[k][0]) else format(r[k][0], '.1%'):>6} ({r[k][1]:>5})  " for k in _COLUMNS]
        return f"{label:<10} " + " ".join(cells) + f"{r['lag_frames']:>+6.1f}" + extra

    for engine, r in results.items():
        extra = f"       {r['held_out_mae']:.4f}  {r['held_out_closed']:.1%}" if held_out else ""
        lines.append(row(engine, r, extra))
    for engine, r in results.items():
        for source, part in r.get("sources", {}).items():
            lines.append(row(f"  {engine}", part, f"       {source} ({part['seconds'] / 60:.1f} min)"))
    seconds = next(iter(results.values()))["seconds"]
    lines.append(
        f"{title}: {seconds / 60:.1f} min; lag at {FPS:.0f} fps, positive = mouth late; elsewhere: lips "
        "shut on speech sounds other than /p b m f v/, rounded on unrounded vowels (lower is better)"
    )
    return "\n".join(lines)
