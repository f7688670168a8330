"""train the Joey LoRA on a base model (--base mini also trains the small base from scratch)

    joey train --data ../shared/data                 # the Joey LoRA on SmolLM2
    joey train --base mini --data ../shared/data     # tokenizer + 5.5M base + LoRA

Every field of training/train_config.py is a flag; training/train.py explains the pipeline.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from model.options import parser_for
from training.train_config import TrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="folder with the transcripts")
    for f in _flag_fields():
        parser.add_argument("--" + f.name.replace("_", "-"), type=parser_for(f), default=f.default,
                            help=f"{f.metadata.get('help', '')} (default {f.default})".lstrip())


def run(args: argparse.Namespace) -> int:
    from training.train import run as train

    train(TrainConfig(data=args.data, **{f.name: getattr(args, f.name) for f in _flag_fields()}))
    return 0


def _flag_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(TrainConfig) if f.name != "data"]

