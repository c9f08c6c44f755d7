"""How well each TTS engine's phone timings match its own audio at /p b m/: against pocketsphinx.

Run: python benchmarks/tts_timing.py [VOICE ...]. Each voice speaks 30 sentences dense in bilabials; pocketsphinx
force-aligns the transcript to that audio, and every bilabial the two phone sequences share is
compared (sentences pocketsphinx cannot align are skipped and counted): offset of its start and
end (engine minus aligner, ms) and the share of the engine's bilabial 10 ms frames that the
aligner also calls a bilabial. The aligner has its own biases
(10 ms frames, ~10 ms median error on hand labels), so compare engines with each other too.
"""

from __future__ import annotations

import argparse
from difflib import SequenceMatcher

import numpy as np

from talkface.align import align
from talkface.audio import load_audio
from talkface.errors import TalkfaceError
from talkface.phonemes import BILABIALS, SILENCE, TimedPhone
from talkface.tts import espeak, festival, flite, piper

SENTENCES = (
    "Bob bought a big map of the bay for his boss.",
    "My mom made plum pie by the pool in May.",
    "Please pass the paper plates and the maple syrup.",
    "The baby grabbed a bumpy blue ball from the box.",
    "Pam kept a lamp above the bed in the cabin.",
    "Put the broom by the back porch, Ben.",
    "Members of the public may vote by mail this month.",
    "A bumblebee bumped into the pumpkin patch.",
    "Maybe the bishop will bring more bread to the palace.",
    "Peter picked a peck of purple peppers.",
    "The bank has promised to pay back the money by Monday.",
    "Bill put the map, the pen and the bottle in a bag.",
    "Many people imagine the moon is made of cheese.",
    "The mob burst into the embassy by the bridge.",
    "Bring me a bowl of warm soup and some bread.",
    "Mabel baked a batch of plump muffins in the morning.",
    "The pump broke, so the basement flooded up to my boots.",
    "Emma bought a parrot with a bright purple beak.",
    "The mayor promised better public transport by the bay.",
    "Maybe Tom will move the boxes to the upper room.",
    "The jumbo jet bumped along the bumpy runway.",
    "Bobby stepped into the bath with a rubber boat.",
    "Her mum put the butter by the bread bin.",
    "Paul's brother hopes to become a famous plumber.",
    "The band played a simple melody by the campfire.",
    "Be brave, Pam, and make the most of the moment.",
    "The puppy ate my pumpkin pie and a bit of ham.",
    "Permanent members meet to compare budget plans.",
    "My aim is to improve the pub's bitter beer.",
    "Big brown bears ambled by the pond in the May rain.",
)


def voices() -> dict[str, object]:
    """Every voice to check, by name: flite's and Festival's, and espeak-ng and Piper for comparison."""
    found: dict[str, object] = {f"flite:{v}": flite.load(v) for v in flite.VOICES}
    found |= {f"festival:{v}": festival.load(v) for v in festival.VOICES}
    found["espeak:en-us"] = espeak.load("en-us")
    if piper.installed():
        found["piper:joe"] = piper.load("joe")
    return found


def _labels(phones: list[TimedPhone], frames: int) -> np.ndarray:
    out = np.full(frames, SILENCE, dtype=object)
    for p in phones:
        out[round(p.start * 100) : round(p.end * 100)] = p.phone
    return out


def compare(engine: list[TimedPhone], aligned: list[TimedPhone]) -> tuple[list[float], list[float], int, int]:
    """Start and end offsets (s) of the bilabials both sequences share, and (agreeing, all) engine bilabial frames."""
    a = [p for p in engine if p.phone != SILENCE]
    b = [p for p in aligned if p.phone != SILENCE]
    starts, ends = [], []
    matcher = SequenceMatcher(a=[p.phone for p in a], b=[p.phone for p in b], autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            x, y = a[block.a + k], b[block.b + k]
            if x.phone in BILABIALS:
                starts.append(x.start - y.start)
                ends.append(x.end - y.end)
    frames = round(max(engine[-1].end, aligned[-1].end) * 100)
    e, r = _labels(engine, frames), _labels(aligned, frames)
    mine = np.isin(e, list(BILABIALS))
    return starts, ends, int((mine & np.isin(r, list(BILABIALS))).sum()), int(mine.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("voices", nargs="*", metavar="VOICE", help="only these, e.g. flite:kal (default: all)")
    names = parser.parse_args().voices
    found = voices()
    if unknown := sorted(set(names) - set(found)):
        parser.error(f"no voice {', '.join(unknown)}; choose from {', '.join(found)}")
    print("| voice | sentences aligned | bilabials | start offset median (ms) | end offset median (ms) "
          "| mean abs start/end (ms) | engine /p b m/ frames the aligner agrees with |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, voice in found.items():
        if names and name not in names:
            continue
        starts, ends, agree, total, aligned = [], [], 0, 0, 0
        for text in SENTENCES:
            speech = voice.synthesize(text)
            try:
                reference = align(load_audio(speech.audio, speech.sample_rate), text)
            except TalkfaceError:
                continue
            aligned += 1
            s, e, a, t = compare(speech.phones, reference)
            starts += s
            ends += e
            agree, total = agree + a, total + t
        s, e = np.array(starts) * 1000, np.array(ends) * 1000
        print(f"| {name} | {aligned} | {len(s)} | {np.median(s):+.0f} | {np.median(e):+.0f} | "
              f"{np.abs(s).mean():.0f} / {np.abs(e).mean():.0f} | {agree / max(total, 1):.0%} |")  # fmt: skip


if __name__ == "__main__":
    main()
