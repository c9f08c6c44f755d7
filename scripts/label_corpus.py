"""Give a synthetic corpus's audio the file model's labels, for the live model's distillation (issue 13).

Run: .venv/bin/python scripts/label_corpus.py CORPUS OUT

Writes CORPUS's train shards to OUT with talkface-offline's raw weights and viseme classes of each
utterance's audio in place of the synthesiser's targets (`talkface.train.distill.label_corpus`), and
copies its validation shards. `configs/live.yaml` trains on the result.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from talkface.train.distill import label_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="a corpus folder (talkface corpus)")
    parser.add_argument("out", type=Path, help="folder for the labelled shards")
    args = parser.parse_args()
    shards = label_corpus(args.corpus, args.out)
    print(f"{len(shards)} shards labelled in {args.out}")


if __name__ == "__main__":
    main()
