"""Both neural models with noise or music under the voice: do the lips still close, does the face rest?

Run: python benchmarks/noisy_speech.py [--set MANIFEST] [--kinds white,music] [--snr 10]

Mixes noise into the validation clips of the real-speech set (`make real-speech`; never the test split)
at the given SNR, relative to the speech's active level (the RMS over the reference's speech phones),
and scores the model for files and the live model as `talkface evaluate` does (phone midpoints at 30
fps: closed, open, rounded, rest, and lips shut at other speech sounds). Noise kinds, made here in
numpy with a fixed seed: white, pink, "music" (sustained harmonic chords that change every two beats
over a kick / snare / hi-hat pattern) and babble (four other validation clips summed). The issue's goal
for noisy speech: closures >= 0.80, rest in pauses >= 0.90. "whisper" adds no noise: each clip is
re-synthesized with noise in place of its voice (linear prediction, 32 ms frames), a stand-in for
whispered speech, which the validation split lacks; --snr does not apply to it.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
from scipy import linalg, signal

from talkface.animator import Animator
from talkface.audio import SAMPLE_RATE
from talkface.evaluation import FPS, Clip, read_set, score_engine
from talkface.model import default_model_path
from talkface.phonemes import SILENCE

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "build" / "real_speech" / "set" / "manifest.jsonl"
KINDS = ("white", "pink", "music", "babble", "whisper")
BABBLE_TALKERS = 4
SEED = 20240611


def active_level(clip: Clip) -> float:
    """RMS of the clip over its reference speech phones (its whole length if it has none)."""
    mask = np.zeros(clip.audio.size, bool)
    for p in clip.reference:
        if p.phone != SILENCE:
            mask[round(p.start * SAMPLE_RATE) : round(p.end * SAMPLE_RATE)] = True
    speech = clip.audio[mask] if mask.any() else clip.audio
    return float(np.sqrt(np.mean(np.square(speech, dtype=np.float64))) + 1e-12)


def pink(rng: np.random.Generator, n: int) -> np.ndarray:
    """1/f noise: white noise shaped in the frequency domain (flat below 20 Hz)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    return np.fft.irfft(spectrum / np.sqrt(np.maximum(freqs, 20.0)), n)


def music(rng: np.random.Generator, n: int) -> np.ndarray:
    """Sustained chords (a few harmonics each, soft attack, slow decay) changing every 2 beats, over a
    kick on the beats, a snare on 2 and 4 and hi-hats on eighths, at a random tempo of 90–130 bpm."""
    t = np.arange(n) / SAMPLE_RATE
    beat = 60.0 / rng.uniform(90.0, 130.0)
    out = np.zeros(n)
    bar = 2 * beat
    roots = rng.choice([45, 48, 50, 52, 53, 55, 57], size=int(n / SAMPLE_RATE / bar) + 2)  # MIDI notes
    for k, root in enumerate(roots):
        start, stop = round(k * bar * SAMPLE_RATE), min(n, round((k + 1) * bar * SAMPLE_RATE))
        if start >= n:
            break
        local = t[start:stop] - k * bar
        envelope = np.minimum(1.0, local / 0.03) * np.exp(-local / 1.5)
        for note in (root, root + rng.choice([3, 4]), root + 7, root + 12):
            f0 = 440.0 * 2 ** ((note - 69) / 12)
            for h in range(1, 6):
                if h * f0 < SAMPLE_RATE / 2:
                    out[start:stop] += envelope * np.sin(2 * np.pi * h * f0 * local + rng.uniform(0, 2 * np.pi)) / h
    hits = np.zeros(n)
    for b in range(int(n / SAMPLE_RATE / beat * 2) + 1):  # eighth notes
        at = round(b * beat / 2 * SAMPLE_RATE)
        if at >= n:
            break
        length = min(n - at, SAMPLE_RATE // 4)
        local = np.arange(length) / SAMPLE_RATE
        if b % 2 == 0:  # kick: a falling sine
            sweep = 2 * np.pi * (50 * local + 60 * (1 - np.exp(-local / 0.03)))
            hits[at : at + length] += 3.0 * np.sin(sweep) * np.exp(-local / 0.08)
        if b % 4 == 2:  # snare: a noise burst
            hits[at : at + length] += 1.5 * rng.standard_normal(length) * np.exp(-local / 0.05)
        hits[at : at + length] += 0.4 * np.diff(rng.standard_normal(length + 1)) * np.exp(-local / 0.01)  # hi-hat
    return out / np.sqrt(np.mean(out**2)) + hits / np.sqrt(np.mean(hits**2)) * 0.7


def babble(rng: np.random.Generator, clips: list[Clip], index: int, n: int) -> np.ndarray:
    """The sum of `BABBLE_TALKERS` other clips, each at the same active level, looped from a random offset."""
    others = rng.choice([i for i in range(len(clips)) if i != index], BABBLE_TALKERS, replace=False)
    out = np.zeros(n)
    for i in others:
        audio = clips[i].audio / active_level(clips[i])
        looped = np.tile(audio, -(-(n + audio.size) // audio.size))
        start = rng.integers(audio.size)
        out += looped[start : start + n]
    return out


def whispered(audio: np.ndarray, rng: np.random.Generator, order: int = 18, size: int = 512) -> np.ndarray:
    """`audio` with its voice replaced by noise: each 32 ms frame's all-pole vocal-tract filter (linear
    prediction of `order`) driven by white noise as loud as the frame's prediction residual,
    overlap-added with 75 % overlap, so formants and their timing stay and voicing goes."""
    hop = size // 4
    window = np.hanning(size + 1)[:-1]
    padded = np.concatenate([np.zeros(size), audio.astype(np.float64), np.zeros(size)])
    out, norm = np.zeros(padded.size), np.zeros(padded.size)
    for start in range(0, padded.size - size, hop):
        frame = padded[start : start + size] * window
        r = np.correlate(frame, frame, "full")[size - 1 : size + order]
        if r[0] < 1e-10:
            continue
        r[0] *= 1.0001  # a little white noise keeps the system well conditioned
        a = np.concatenate([[1.0], linalg.solve_toeplitz(r[:order], -r[1:])])
        residual = np.sqrt(np.mean(signal.lfilter(a, [1.0], frame) ** 2))
        out[start : start + size] += signal.lfilter([1.0], a, rng.standard_normal(size) * residual) * window
        norm[start : start + size] += window**2
    return (out / np.maximum(norm, 1e-3))[size : size + audio.size]


def noise(kind: str, clips: list[Clip], index: int) -> np.ndarray:
    """Noise of one kind for clip `index`, as long as it, with unit RMS; the same on every run."""
    rng = np.random.default_rng([SEED, KINDS.index(kind), index])
    n = clips[index].audio.size
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind == "pink":
        x = pink(rng, n)
    elif kind == "music":
        x = music(rng, n)
    else:
        x = babble(rng, clips, index, n)
    return x / np.sqrt(np.mean(x**2))


def mixed(clips: list[Clip], kind: str | None, snr: float) -> list[np.ndarray]:
    """Each clip with noise of `kind` at `snr` dB below its active level (kind None: clean; "whisper":
    whispered); peaks kept below 1."""
    out = []
    for i, clip in enumerate(clips):
        x = clip.audio.astype(np.float64)
        if kind == "whisper":
            x = whispered(x, np.random.default_rng([SEED, KINDS.index(kind), i]))
        elif kind is not None:
            x = x + noise(kind, clips, i) * active_level(clip) * 10 ** (-snr / 20)
        out.append((x / max(1.0, np.abs(x).max())).astype(np.float32))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", type=Path, default=MANIFEST, help="real-speech manifest (make real-speech)")
    parser.add_argument("--kinds", default="white,music", help=f"comma-separated, of {', '.join(KINDS)}")
    parser.add_argument("--snr", type=float, default=10.0, help="dB of speech over noise (default 10)")
    parser.add_argument("--model", help="the model for files (default: the packaged talkface-offline)")
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    if not set(kinds) <= set(KINDS):
        parser.error(f"--kinds: choose from {', '.join(KINDS)}")
    clips = read_set(args.set, "validation")
    engines = {"files": Animator(FPS, model=args.model), "live": Animator(FPS, model=str(default_model_path()))}
    print(f"{'noise':<8} {'engine':<6} closed  open    rounded rest    shut elsewhere")
    for kind in kinds:
        noisy = [dataclasses.replace(c, audio=a) for c, a in zip(clips, mixed(clips, kind, args.snr), strict=True)]
        for name, animator in engines.items():
            r = score_engine(lambda audio, a=animator: a.animate(audio, sample_rate=SAMPLE_RATE), noisy)
            cells = [r[k][0] for k in ("closed_on_bilabials", "open_on_open_vowels", "rounded_on_rounded",
                                       "rest_in_pauses", "closed_elsewhere")]  # fmt: skip
            print(f"{kind:<8} {name:<6} " + " ".join(f"{c:6.1%}" for c in cells), flush=True)
    minutes = sum(c.audio.size for c in clips) / SAMPLE_RATE / 60
    print(f"validation split, {minutes:.1f} min, noise at {args.snr:g} dB SNR")


if __name__ == "__main__":
    main()
