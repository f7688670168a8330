"""Training settings: one dataclass; ``joey train --help`` exposes every field as a flag."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TrainConfig:
    data: Path  # folder with the transcripts (friends_s01-s09.jsonl.gz, ...)
    out: Path = Path("weights")  # final weights: out/base and out/joey-lora
    work: Path = Path("build/train")  # intermediate files and logs, never committed
    stage: str = "all"  # "all", or "lora" to retrain only the adapter on work/base
    base_model: str = ""  # with --stage lora: train the adapter on this base (directory or hub id)
    seed: int = 0  # every random choice (init, batches, augmentation) follows from it
    threads: int = 2  # torch threads; on a busy 2-core host use 1: two threads then slow down 3-5x
    vocab_size: int = 8192  # BPE vocabulary, special tokens included
    hidden: int = 256  # model width; 256x4 trains 2.4x faster than 288x6 here (docs/MODEL.md)
    layers: int = 4
    heads: int = 4
    mlp: int = 768
    context: int = 512  # maximum positions the model supports
    seq_len: int = 256  # pre-training window
    batch: int = 16  # sequences per step, both stages
    pretrain_steps: int = 1500
    lr: float = 2e-3
    warmup: int = 100
    include_more: bool = True  # add more_dialogue to pre-training for broader English
    lora_steps: int = 600
    lora_lr: float = 1e-3
    lora_r: int = 16
    lora_alpha: int = 32
    lora_context_tokens: int = 192  # prompt budget of a Joey pair
    eval_every: int = 200
    history: list = field(default_factory=list)  # (stage, step, split, loss) rows for the plot
