"""The Joey LoRA: teach a base model to answer as Joey, with loss on Joey's line only.

Used by both presets: after pre-training for ``mini``, and on its own for a pretrained base
(``joey train --base smollm2 --data ../shared/data``). Each example is the one prompt builder's
rendering of 1-3 preceding turns of a Friends scene, followed by Joey's real line and its end of
turn; only those reply tokens carry loss.

Speed on a 2-core CPU decides most of the choices here (measured; see docs/MODEL.md):

* batches are bucketed by length, so padding wastes little compute;
* LoRA can be limited to the top ``lora_layers`` layers: the frozen lower layers then run with
  no autograd graph at all, and the backward pass stops early;
* the frozen base can be held in bf16 (``lora_dtype``), where the CPU has bf16 matrix units.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter

import torch
from tqdm import tqdm

from model.prompt import BOT_NAME, DEFAULT_USER_NAME, Turn, build_prompt, reply_ids
from training import data as corpus
from training.metrics import Embedder, StyleClassifier, cosines, is_echo, normal_words, style_classifier
from training.train_config import TrainConfig

log = logging.getLogger("joey.train")

# Names that stand in for the person talking to Joey, so the adapter learns to answer anyone
# (a Telegram first name, the web page's name) and not only the six friends.
PARTNER_NAMES = [DEFAULT_USER_NAME, "Alex", "Sam", "Maria", "Tom", "Priya", "Dave", "Emma", "Kim", "Leo"]
Example = tuple[list[int], list[int]]  # (input ids, labels with -100 where there is no loss)


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def informative(pairs: list[corpus.JoeyPair], max_repeats: int, drop_echo: bool) -> list[corpus.JoeyPair]:
    """The pairs worth learning a reply from: not a line Joey says more than ``max_repeats`` times
    ("Hey!", "Yeah.", "What?": 9% of his lines), nor one that mostly repeats the line before.

    Trained on them, the adapter learns that a bland line fits after almost anything, and says
    it too often (fewer unique replies, more echoes: docs/MODEL.md). ``max_repeats`` 0 keeps all.
    """
    counts = Counter(normal_words(p.reply) for p in pairs)
    return [p for p in pairs
            if not (max_repeats and counts[normal_words(p.reply)] > max_repeats)
            and not (drop_echo and is_echo(p.context[-1].text, p.reply))]


def related(pairs: list[corpus.JoeyPair], min_relevance: float, embed: Embedder) -> list[corpus.JoeyPair]:
    """The pairs whose reply is about what was just said: sentence-embedding cosine of the line
    said and Joey's reply at least ``min_relevance`` (0 keeps all).

    An adapter answers about as closely as the lines it learns from: trained on every line (mean
    cosine 0.23), it replied at 0.23. Many of Joey's lines ignore the line before (a new topic, a
    callback to earlier in the scene), which teaches that any sitcom line fits. Filtering dialogue
    data by how related a response is to its context follows Akama et al., 2020.
    """
    if min_relevance <= 0 or not pairs:
        return pairs
    cosine = cosines(embed, [p.context[-1].text for p in pairs], [p.reply for p in pairs])
    return [p for p, c in zip(pairs, cosine) if c >= min_relevance]


def in_voice(pairs: list[corpus.JoeyPair], min_style: float, style: StyleClassifier) -> list[corpus.JoeyPair]:
    """The pairs whose reply sounds like Joey rather than like any of the friends: P(joey) from the
    style classifier at least ``min_style`` (0 keeps all).

    Many of Joey's lines could be anyone's ("Okay, what happened?"). Left in, they pull the
    adapter's voice towards the average friend: trained on lines of mean P(joey) 0.512 it
    replied at 0.500, below the real Joey's 0.508 (docs/MODEL.md).
    """
    if min_style <= 0 or not pairs:
        return pairs
    return [p for p, s in zip(pairs, style.p_joey([p.reply for p in pairs])) if s >= min_style]


def on_topic_in_voice(pairs: list[corpus.JoeyPair], cfg: TrainConfig) -> list[corpus.JoeyPair]:
    """``related`` and then ``in_voice``, sharing one sentence embedder (loading it takes seconds)."""
    if cfg.lora_min_relevance <= 0 and cfg.lora_min_style <= 0:
        return pairs
    embed = Embedder()
    kept = related(pairs, cfg.lora_min_relevance, embed)
    if cfg.lora_min_style <= 0:
        return kept
    return in_voice(kept, cfg.lora_min_style, style_classifier(embed, cfg.data, cfg.work))


def joey_examples(tok, pairs: list[corpus.JoeyPair], cfg: TrainConfig, rng: random.Random) -> list[Example]:
    examples = []
    for pair in pairs:
        context = list(pair.context)[-rng.randint(1, cfg.lora_context_turns):]
        partner = context[-1].speaker
        if partner != BOT_NAME and rng.random() < 0.3:
            new = rng.choice(PARTNER_NAMES)
            context = [Turn(new if t.speaker == partner else t.speaker, t.text) for t in context]
        prompt = build_prompt(tok, context, cfg.lora_context_tokens)
        target = reply_ids(tok, pair.reply)[: cfg.lora_reply_tokens]
        examples.append((prompt + target, [-100] * len(prompt) + target))
    return examples


def length_batches(examples: list[Example], batch: int, rng: random.Random) -> list[list[Example]]:
    """Batches of similar length, in random order: little padding, still a shuffled epoch."""
    order = sorted(rng.sample(examples, len(examples)), key=lambda e: len(e[0]))
    batches = [order[i : i + batch] for i in range(0, len(order), batch)]
    rng.shuffle(batches)
    return batches


def collate(batch: list[Example], pad_id: int | None):
    pad_id = pad_id or 0  # padded positions are masked out of attention and loss anyway
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), -100)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return ids, labels, mask


@torch.no_grad()
def mean_loss(model, batches) -> float:
    model.eval()
    losses = [model(input_ids=x, attention_mask=m, labels=y).loss.item() for x, y, m in batches]
    model.train()
    return sum(losses) / max(1, len(losses))


def lora_model(cfg: TrainConfig, base):
    from peft import LoraConfig, get_peft_model

    layers = base.config.num_hidden_layers
    top = range(max(0, layers - cfg.lora_layers), layers) if cfg.lora_layers else None
    lora_cfg = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.05, task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        layers_to_transform=list(top) if top is not None else None,
    )
    if cfg.lora_dtype == "bf16":
        base = base.to(torch.bfloat16)
    model = get_peft_model(base, lora_cfg)
    for p in model.parameters():  # adapters train in fp32 whatever the frozen base holds
        if p.requires_grad:
            p.data = p.data.float()
    return model


def train_lora(cfg: TrainConfig, tok, base, scenes: list[corpus.Scene]):
    rng = random.Random(cfg.seed)
    pairs = list(corpus.joey_pairs(scenes, held_out=False))
    kept = on_topic_in_voice(informative(pairs, cfg.lora_max_repeats, cfg.lora_drop_echo), cfg)
    train = joey_examples(tok, kept, cfg, rng)
    # Validation keeps every line, so its loss stays comparable between recipes.
    val = joey_examples(tok, list(corpus.joey_pairs(scenes, held_out=True)), cfg, rng)
    log.info("Joey pairs: train %d (of %d; bland, echoing, unrelated or out-of-voice lines left out), validation %d; %d train tokens",
             len(train), len(pairs), len(val), sum(len(x) for x, _ in train))
    if not train or not val:
        raise ValueError("no Joey lines to train on: check --data")
    model = lora_model(cfg, base)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("LoRA: %.2fM trainable parameters, base in %s", trainable / 1e6, cfg.lora_dtype)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lora_lr, weight_decay=0.0)
    val_batches = [collate(b, tok.pad_token_id) for b in length_batches(val[:192], cfg.batch, random.Random(1))]
    cfg.history.append(("lora", 0, "val", mean_loss(model, val_batches)))
    epoch: list[list[Example]] = []
    bar = tqdm(range(cfg.lora_steps), desc="joey-lora", mininterval=10)
    started, seen = time.time(), 0
    model.train()
    for step in bar:
        if not epoch:
            epoch = length_batches(train, cfg.batch, rng)
        ids, labels, mask = collate(epoch.pop(), tok.pad_token_id)
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, cfg.lora_steps, cfg.lora_lr, cfg.lora_warmup)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        seen += int(mask.sum())
        cfg.history.append(("lora", step, "train", loss.item()))
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.lora_steps:
            v = mean_loss(model, val_batches)
            cfg.history.append(("lora", step, "val", v))
            log.info("lora step %d train %.3f val %.3f (%.0f tok/s, %.1f min)", step + 1, loss.item(), v,
                     seen / (time.time() - started), (time.time() - started) / 60)
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return model
