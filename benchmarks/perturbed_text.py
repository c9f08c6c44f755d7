"""`animate --text` with transcripts that are not quite right, on real English speech.

Run: python benchmarks/perturbed_text.py [--set build/real_speech/set/manifest.jsonl] [--split validation]
(the set is built by `make real-speech`). Three clips of one source are joined with 0.4 s pauses into one
recording of three sentences, and its transcript is spoiled in one of five ways:

- right: the transcript as said;
- substituted: a fifth of its words replaced by other words of the set;
- dropped: the middle sentence left out of the transcript (it is still heard);
- inserted: a sentence that is not heard added to the middle of the transcript;
- cut: the audio starts inside its first word and ends inside its last (the transcript keeps both);
- other: the transcript of another recording (it should be set aside: a "said" share of 0).

For each, it prints how many recordings animate, the share of words the aligner reports as matched
against the share that were really said, the seconds animated from the audio alone, and how often the
lips close on /p b m/ (at the phone midpoints of the reference alignment of the right transcript): in
the stretches the transcript explains, and everywhere.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from pathlib import Path

import numpy as np

from talkface import Animator
from talkface.align.words import _words
from talkface.audio import SAMPLE_RATE
from talkface.evaluation import read_set
from talkface.metrics import CLOSED_BELOW, lip_aperture
from talkface.phonemes import SILENCE, TimedPhone

PAUSE = 0.4
KINDS = ("right", "substituted", "dropped", "inserted", "cut", "other")


def groups(manifest: Path, split: str) -> list[tuple[np.ndarray, list[TimedPhone], list[str]]]:
    """Recordings of three clips of one source (audio, reference phones, the three transcripts)."""
    texts = {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        texts[row["id"]] = row["text"]
    by_source: dict[str, list] = {}
    for clip in read_set(manifest, split):
        if len(_words(texts[clip.name])) >= 3:
            by_source.setdefault(clip.source, []).append(clip)
    out = []
    for clips in by_source.values():
        for k in range(0, len(clips) - 2, 3):
            audio, phones, t = [], [], 0.0
            for clip in clips[k : k + 3]:
                audio += [clip.audio, np.zeros(int(PAUSE * SAMPLE_RATE), np.float32)]
                phones += [TimedPhone(p.start + t, p.end + t, p.phone) for p in clip.reference]
                t += len(clip.audio) / SAMPLE_RATE + PAUSE
            out.append((np.concatenate(audio), phones, [texts[c.name] for c in clips[k : k + 3]]))
    return out


def spoil(kind: str, audio: np.ndarray, phones: list[TimedPhone], sentences: list[str], other: str,
          vocabulary: list[str], rng: random.Random) -> tuple[np.ndarray, list[TimedPhone], str, float]:  # fmt: skip
    """The recording, its reference, the spoiled transcript and the share of its words really said."""
    words = _words(" ".join(sentences))
    if kind == "substituted":
        changed = rng.sample(range(len(words)), max(1, len(words) // 5))
        for i in changed:
            words[i] = rng.choice([w for w in vocabulary if w != words[i]])
        return audio, phones, " ".join(words), 1 - len(changed) / len(words)
    if kind == "dropped":
        return audio, phones, f"{sentences[0]} {sentences[2]}", 1.0
    if kind == "inserted":
        extra = len(_words(other))
        return audio, phones, f"{sentences[0]} {other} {sentences[1]} {sentences[2]}", 1 - extra / (len(words) + extra)
    if kind == "cut":
        spoken = [p for p in phones if p.phone != SILENCE]
        start, end = spoken[0].mid, spoken[-1].mid
        cut = audio[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
        moved = [TimedPhone(p.start - start, p.end - start, p.phone) for p in phones if start <= p.mid < end]
        return cut, moved, " ".join(sentences), 1 - 2 / len(words)
    if kind == "other":
        return audio, phones, other, 0.0
    return audio, phones, " ".join(sentences), 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, default=Path("build/real_speech/set/manifest.jsonl"))
    parser.add_argument("--split", default="validation")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=KINDS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    recordings = groups(args.set, args.split)
    vocabulary = sorted({w for _, _, s in recordings for w in _words(" ".join(s))})
    animator = Animator()
    print(f"{len(recordings)} recordings of three sentences ({args.split})")
    print("kind          animated  matched (said)  set aside  alone s   closed where explained   closed everywhere")
    for kind in args.kinds:
        rng = random.Random(0)
        done, set_aside, reported, truth, alone, inside, everywhere = 0, 0, [], [], 0.0, [], []
        for i, (audio, phones, sentences) in enumerate(recordings):
            following = recordings[(i + 1) % len(recordings)][2]
            other = " ".join(following) if kind == "other" else following[1]
            clip_audio, reference, text, said = spoil(kind, audio, phones, sentences, other, vocabulary, rng)
            clip = animator.clip(clip_audio, text, sample_rate=SAMPLE_RATE)
            done += 1
            ap = lip_aperture(clip.animation)
            spans = clip.alignment.unexplained
            reported.append(clip.alignment.share)
            truth.append(said)
            set_aside += clip.phones is None
            alone += sum(e - s for s, e in spans)
            for p in reference:
                if p.phone in ("p", "b", "m"):
                    closed = ap[min(len(ap) - 1, round(p.mid * clip.animation.fps))] < CLOSED_BELOW
                    everywhere.append(closed)
                    if not any(s <= p.mid < e for s, e in spans):
                        inside.append(closed)
        shares = f"{np.mean(reported):>7.1%} ({np.mean(truth):.1%})"
        closed = f"{np.mean(inside):>8.1%} of {len(inside):<5}       {np.mean(everywhere):>6.1%}"
        print(f"{kind:<13} {done:>4}/{len(recordings):<4} {shares}  {set_aside:>4} {alone:>8.1f}   {closed}")


if __name__ == "__main__":
    main()
