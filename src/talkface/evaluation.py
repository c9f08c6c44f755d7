"""`talkface evaluate`: how an audio-only engine does on real speech and on a TTS voice it never heard.

Real speech: the CMU ARCTIC clip with hand phone labels (tests/data, shipped as the demo sample)
and the recordings of Debian's pocketsphinx-testdata, whose transcripts are force-aligned to give
reference phones. At each reference phone's midpoint we ask whether the lips are closed (/p b m/),
open (open vowels), rounded (/uw ow w/) or at rest (pauses), and we estimate the lag between the
mouth and the sound. Note that the pocketsphinx-testdata references come from pocketsphinx, as
does the phonetic baseline, which favours the baseline there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from .animation import Animation
from .audio import SAMPLE_RATE, load_audio
from .coarticulation import animate_phones
from .metrics import MouthScores, lip_aperture, mouth_scores
from .phonemes import TimedPhone
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


@dataclass(frozen=True)
class Clip:
    """Real speech and the reference phones to score it against."""

    name: str
    audio: np.ndarray
    reference: list[TimedPhone]
    hand_labelled: bool


def real_speech() -> list[Clip]:
    """The real clips that can be had here: ARCTIC (hand labels) and pocketsphinx-testdata (aligned)."""
    from .align import align, read_htk_labels

    samples = files("talkface") / "samples"
    hand = read_htk_labels(str(samples / "arctic_a0009_phone.lab"))
    clips = [Clip("arctic_a0009", load_audio(str(samples / "arctic_a0009.wav")), hand, True)]
    for folder, listing in (("librivox", "transcription"), ("cards", "cards.transcription")):
        path = TESTDATA / folder / listing
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            text, _, name = line.rpartition("(")
            text = text.replace("<s>", "").replace("</s>", "").strip()
            audio = load_audio(TESTDATA / folder / f"{name.strip(') ')}.wav")
            clips.append(Clip(f"{folder}/{name.strip(') ')}", audio, align(audio, text), False))
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
                       ("rounded_on_rounded", "rounded"), ("rest_in_pauses", "pauses")):  # fmt: skip
        n = sum(s.counts[key] for s in scores)
        hits = sum(getattr(s, field) * s.counts[key] for s in scores if s.counts[key])
        out[field] = (hits / n if n else float("nan"), n)
    return out


def score_engine(animate: Callable[[np.ndarray], Animation], clips: list[Clip]) -> dict:
    """Pooled mouth scores and median lag of an engine over the clips."""
    scores, lags = [], []
    for clip in clips:
        anim = animate(clip.audio)
        scores.append(mouth_scores(anim, clip.reference))
        lags.append(lag_frames(anim, animate_phones(clip.reference, FPS, len(clip.audio) / SAMPLE_RATE)))
    return {
        **pooled(scores),
        "lag_frames": float(np.median(lags)),
        "seconds": sum(c.audio.size for c in clips) / SAMPLE_RATE,
    }


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


def evaluate(model: str | None = None) -> dict[str, dict]:
    """Scores of the neural model (`model` or the packaged one) and of the phonetic baseline."""
    from .animator import Animator

    clips = real_speech()
    results = {}
    for engine in ("neural", "phonetic"):
        animator = Animator(FPS, engine, model)

        def run(audio: np.ndarray, animator: Animator = animator) -> Animation:
            return animator.animate(audio, sample_rate=SAMPLE_RATE)

        mae, closed = held_out_voice(run)
        results[engine] = score_engine(run, clips) | {"held_out_mae": mae, "held_out_closed": closed}
    return results


def report(results: dict[str, dict]) -> str:
    """The results as a table."""
    lines = [
        "           real speech" + " " * 70 + "held-out TTS voice",
        "engine     closed p/b/m    open vowels     rounded         rest in pauses  lag(frames)  MAE     closed",
    ]
    for engine, r in results.items():
        cells = [
            f"{r[k][0]:>6.1%} ({r[k][1]:>3})  "
            for k in ("closed_on_bilabials", "open_on_open_vowels", "rounded_on_rounded", "rest_in_pauses")
        ]
        lines.append(
            f"{engine:<10} "
            + " ".join(cells)
            + f"{r['lag_frames']:>+6.1f}      {r['held_out_mae']:.4f}  {r['held_out_closed']:.1%}"
        )
    seconds = next(iter(results.values()))["seconds"]
    lines.append(f"real speech: {seconds:.0f} s; lag at {FPS:.0f} fps, positive = mouth late")
    return "\n".join(lines)
