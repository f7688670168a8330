"""The one training loop, shared by pre-training the mini base and training the Joey adapter.

Both stages are: a batch per step, AdamW with linear warm-up and cosine decay to 10%, gradient
clipping at 1.0, and a validation loss every ``eval_every`` steps. What differs (where batches
come from, how a batch's loss is computed) is passed in. The run's history lives in a
:class:`RunLog`, never in the read-only config.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from tqdm import tqdm

log = logging.getLogger("joey.train")


@dataclass
class RunLog:
    """(stage, step, split, loss) rows: the loss curves of the model card."""

    rows: list[tuple[str, int, str, float]] = field(default_factory=list)

    def add(self, stage: str, step: int, split: str, loss: float) -> None:
        self.rows.append((stage, step, split, loss))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.rows))

    @classmethod
    def load(cls, path: Path, stage: str | None = None) -> "RunLog":
        rows = [tuple(r) for r in json.loads(path.read_text())] if path.exists() else []
        return cls([r for r in rows if stage is None or r[0] == stage])


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def mean_loss(model, loss_of: Callable, batches: Sequence) -> float:
    model.eval()
    losses = [loss_of(b).item() for b in batches]
    model.train()
    return sum(losses) / max(1, len(losses))


@dataclass(frozen=True)
class Schedule:
    stage: str  # "pretrain" or "lora": the run log's and the progress bar's name
    steps: int
    peak_lr: float
    warmup: int
    eval_every: int


def train(model, optimizer: torch.optim.Optimizer, schedule: Schedule, next_batch: Callable[[int], object],
          loss_of: Callable, tokens_of: Callable[[object], int], val: Sequence, run_log: RunLog) -> None:
    """``next_batch(step)`` gives a batch, ``loss_of(batch)`` its loss and ``tokens_of(batch)`` the
    real tokens in it (for the rate logged); ``val`` batches are scored before and during training."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    run_log.add(schedule.stage, 0, "val", mean_loss(model, loss_of, val))
    bar = tqdm(range(schedule.steps), desc=schedule.stage, mininterval=10)
    started, seen = time.time(), 0
    model.train()
    for step in bar:
        batch = next_batch(step)
        for g in optimizer.param_groups:
            g["lr"] = cosine_lr(step, schedule.steps, schedule.peak_lr, schedule.warmup)
        loss = loss_of(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seen += tokens_of(batch)
        run_log.add(schedule.stage, step, "train", loss.item())
        if (step + 1) % schedule.eval_every == 0 or step + 1 == schedule.steps:
            v = mean_loss(model, loss_of, val)
            run_log.add(schedule.stage, step, "val", v)
            log.info("%s step %d train %.3f val %.3f (%.0f tok/s, %.1f min)", schedule.stage, step + 1, loss.item(), v,
                     seen / (time.time() - started), (time.time() - started) / 60)
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
