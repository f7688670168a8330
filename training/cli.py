"""train the Joey LoRA on a base model (--base mini also trains the small base from scratch)

    joey train --data ../shared/data                 # the Joey LoRA on SmolLM2
    joey train --base mini --data ../shared/data     # tokenizer + 5.5M base + LoRA

Every field of training/train_config.py is a flag; training/train.py explains the pipeline.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from model.options import add_flags, read_settings
from training.train_config import TrainConfig


ENV_PREFIX = "JOEY_TRAIN_"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="folder with the transcripts")
    add_flags(parser, TrainConfig, ENV_PREFIX, skip=("data",))


def run(args: argparse.Namespace) -> int:
    from training.train import run as train

    train(TrainConfig(data=args.data, **read_settings(TrainConfig, ENV_PREFIX, args, skip=("data",))))
    return 0
