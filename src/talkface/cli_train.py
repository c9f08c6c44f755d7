"""The `talkface` commands that make and score models: corpus (synthetic training speech), train and
evaluate. Training needs the train extra (torch); evaluating does not."""

from __future__ import annotations

import click

from .cli_options import Finite
from .errors import TalkfaceError, missing_module

#: The modules of the train extra that corpus and train import (torch, pyyaml, scipy, onnx).
TRAIN_MODULES = ("torch", "yaml", "scipy", "onnx")


def _needs_training_extra() -> None:
    """TalkfaceError naming the extra unless all of it is there: torch alone (installed on its own) is not enough."""
    missing = missing_module(*TRAIN_MODULES)
    if missing:
        raise TalkfaceError(f"training needs the train extra: pip install 'talkface[train]' (no module {missing!r})")


@click.command()
@click.option("--hours", type=Finite(min=0.001, max=100_000), required=True, help="Hours of training audio.")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Corpus folder.")
@click.option("--text", "text_dir", required=True, type=click.Path(file_okay=False), help="Folder of texts/zips.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
    "--emotion-share",
    type=Finite(0, 1),
    default=0.0,
    show_default=True,
    help="Share of utterances given a random emotion (targets and the model's emotion input).",
)
@click.option("--flite-share", type=Finite(0, 1), default=0.45, show_default=True,
              help="Share of English utterances spoken by flite voices.")  # fmt: skip
@click.option("--festival-share", type=Finite(0, 1), default=0.35, show_default=True,
              help="Share of English utterances spoken by Festival voices.")  # fmt: skip
@click.option("--whisper-share", type=Finite(0, 1), default=0.0, show_default=True,
              help="Share of utterances whispered (espeak-ng's whisper voices).")  # fmt: skip
def corpus(hours: float, out_dir: str, text_dir: str, seed: int, workers: int, emotion_share: float,
           flite_share: float, festival_share: float, whisper_share: float) -> None:  # fmt: skip
    """Build (or resume) a synthetic training corpus: TTS speech, augmented, with face targets."""
    _needs_training_extra()
    from .train.corpus import CorpusConfig, build_corpus

    if flite_share + festival_share > 1:
        raise click.UsageError("--flite-share and --festival-share add up to more than 1")
    config = CorpusConfig(hours=hours, seed=seed, emotion_share=emotion_share, flite_share=flite_share,
                          festival_share=festival_share, whisper_share=whisper_share)  # fmt: skip
    click.echo(build_corpus(out_dir, text_dir, config, workers=workers))


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--resume", is_flag=True, help="Go on from the run's last checkpoint.")
def train(config_path: str, resume: bool) -> None:
    """Train a model from a YAML config; writes checkpoints, log.csv and model.onnx to its out folder."""
    _needs_training_extra()
    from .train.loop import TrainConfig
    from .train.loop import train as run_training

    click.echo(run_training(TrainConfig.load(config_path), resume=resume))


@click.command()
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option("--set", "manifest", type=click.Path(dir_okay=False, exists=True),
              help="A manifest.jsonl of scripts/real_speech.py to score on, pooled and per source.")  # fmt: skip
@click.option("--split", type=click.Choice(["validation", "test"]), default="validation", show_default=True,
              help="Split of --set: choose on validation; look at test once per shipped model.")  # fmt: skip
def evaluate(model: str | None, manifest: str | None, split: str) -> None:
    """Score MODEL (default: the packaged models for files and for live streams) and the phonetic baseline
    on real speech."""
    from .evaluation import evaluate as run_evaluation
    from .evaluation import read_set, report

    if manifest is None:
        click.echo(report(run_evaluation(model)))
    else:
        click.echo(report(run_evaluation(model, read_set(manifest, split)), f"{split} split of {manifest}"))
