"""The whole training pipeline: tokenizer, base model pre-training, Joey LoRA.

    joey train --data ../shared/data            # about 75 minutes on 2 CPU cores

Each stage saves what the next one needs under ``--work`` (git-ignored), so ``--stage lora``
re-runs only the adapter. Final weights go to ``--out`` in fp16 safetensors.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from model import data as corpus
from model.prompt import BOT_NAME, DEFAULT_USER_NAME, Turn, build_prompt, reply_ids, scene_ids
from model.train_config import TrainConfig

log = logging.getLogger("joey.train")

# Names that stand in for the person talking to Joey, so the adapter learns to answer anyone
# (a Telegram first name, the web page's name) and not only the six friends.
PARTNER_NAMES = [DEFAULT_USER_NAME, "Alex", "Sam", "Maria", "Tom", "Priya", "Dave", "Emma", "Kim", "Leo"]


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def build_tokenizer(cfg: TrainConfig, scenes: list[corpus.Scene]):
    from model.tokenizer import save_tokenizer, train_tokenizer

    texts = (t.speaker + ": " + t.text for s in scenes if not s.held_out for t in s.turns)
    tok = train_tokenizer(texts, cfg.vocab_size)
    save_tokenizer(tok, cfg.work / "base")
    return tok


def token_stream(tok, scenes: list[corpus.Scene], held_out: bool) -> torch.Tensor:
    ids: list[int] = []
    for s in scenes:
        if s.held_out == held_out:
            # Friends and The Office are the core; seeing them twice sharpens the sitcom voice.
            repeats = 1 if held_out or s.show == "more_dialogue" else 2
            ids.extend(scene_ids(tok, s.turns) * repeats)
    return torch.tensor(ids, dtype=torch.int32)


def windows(stream: torch.Tensor, seq_len: int, batch: int, gen: torch.Generator) -> torch.Tensor:
    starts = torch.randint(0, len(stream) - seq_len - 1, (batch,), generator=gen)
    return torch.stack([stream[s : s + seq_len + 1] for s in starts.tolist()]).long()


@torch.no_grad()
def eval_loss(model, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    model.eval()
    losses = [model(input_ids=x, labels=y).loss.item() for x, y in batches]
    model.train()
    return sum(losses) / len(losses)


def pretrain(cfg: TrainConfig, tok, scenes: list[corpus.Scene]):
    from transformers import LlamaConfig, LlamaForCausalLM

    train_ids, val_ids = token_stream(tok, scenes, False), token_stream(tok, scenes, True)
    log.info("pre-training tokens: train %d, validation %d", len(train_ids), len(val_ids))
    model_cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads, intermediate_size=cfg.mlp,
        max_position_embeddings=cfg.context, tie_word_embeddings=True, rms_norm_eps=1e-5,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(model_cfg)
    log.info("base model: %.2fM parameters", sum(p.numel() for p in model.parameters()) / 1e6)
    gen = torch.Generator().manual_seed(cfg.seed)
    val_gen = torch.Generator().manual_seed(cfg.seed + 1)
    val = [(w, w) for w in (windows(val_ids, cfg.seq_len, cfg.batch, val_gen) for _ in range(12))]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.1)
    bar = tqdm(range(cfg.pretrain_steps), desc="pre-train", mininterval=5)
    started = time.time()
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, cfg.pretrain_steps, cfg.lr, cfg.warmup)
        w = windows(train_ids, cfg.seq_len, cfg.batch, gen)
        # HF shifts labels itself, so inputs and labels are the same window.
        loss = model(input_ids=w, labels=w).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        cfg.history.append(("pretrain", step, "train", loss.item()))
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.pretrain_steps:
            v = eval_loss(model, val)
            cfg.history.append(("pretrain", step, "val", v))
            tps = (step + 1) * cfg.batch * cfg.seq_len / (time.time() - started)
            log.info("step %d train %.3f val %.3f (%.0f tok/s)", step + 1, loss.item(), v, tps)
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    # Round to the fp16 that ships, so the adapter trains on exactly the shipped base.
    model = model.to(torch.float16)
    model.save_pretrained(str(cfg.work / "base"))
    (cfg.work / "history.json").write_text(json.dumps(cfg.history))
    return model.to(torch.float32)


def joey_examples(tok, pairs: list[corpus.JoeyPair], budget: int, rng: random.Random) -> list[tuple[list, list]]:
    examples = []
    for pair in pairs:
        context = list(pair.context)
        if rng.random() < 0.3:  # many chats start cold: answer a single line
            context = context[-1:]
        partner = context[-1].speaker
        if partner != BOT_NAME and rng.random() < 0.3:
            new = rng.choice(PARTNER_NAMES)
            context = [Turn(new if t.speaker == partner else t.speaker, t.text) for t in context]
        prompt = build_prompt(tok, context, budget)
        target = reply_ids(tok, pair.reply)[:96]
        examples.append((prompt + target, [-100] * len(prompt) + target))
    return examples


def collate(batch: list[tuple[list, list]], pad_id: int | None):
    pad_id = pad_id or 0  # padded positions are masked out of attention and loss anyway
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), -100)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return ids, labels, mask


def train_lora(cfg: TrainConfig, tok, base, scenes: list[corpus.Scene]):
    from peft import LoraConfig, get_peft_model

    rng = random.Random(cfg.seed)
    train = joey_examples(tok, list(corpus.joey_pairs(scenes, held_out=False)), cfg.lora_context_tokens, rng)
    val = joey_examples(tok, list(corpus.joey_pairs(scenes, held_out=True)), cfg.lora_context_tokens, rng)
    log.info("Joey pairs: train %d, validation %d", len(train), len(val))
    lora_cfg = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.05, task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    )
    model = get_peft_model(base, lora_cfg)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lora_lr, weight_decay=0.0)
    val_batches = [collate(val[i : i + cfg.batch], tok.pad_token_id) for i in range(0, min(len(val), 384), cfg.batch)]

    def val_loss() -> float:
        return eval_loss(model, [(x, y) for x, y, _ in val_batches])

    cfg.history.append(("lora", 0, "val", val_loss()))
    bar = tqdm(range(cfg.lora_steps), desc="joey-lora", mininterval=5)
    for step in bar:
        if step % (len(train) // cfg.batch) == 0:
            rng.shuffle(train)
        i = (step * cfg.batch) % (len(train) - cfg.batch)
        ids, labels, mask = collate(train[i : i + cfg.batch], tok.pad_token_id)
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, cfg.lora_steps, cfg.lora_lr, 30)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        cfg.history.append(("lora", step, "train", loss.item()))
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.lora_steps:
            v = val_loss()
            cfg.history.append(("lora", step, "val", v))
            log.info("lora step %d train %.3f val %.3f", step + 1, loss.item(), v)
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return model


def save_final(cfg: TrainConfig, tok, peft_model) -> None:
    import shutil

    base_out, lora_out = cfg.out / "base", cfg.out / "joey-lora"
    shutil.rmtree(lora_out, ignore_errors=True)
    if not cfg.base_model:  # an outside base stays where it is; only its adapter is ours
        shutil.rmtree(base_out, ignore_errors=True)
        shutil.copytree(cfg.work / "base", base_out)
    for p in peft_model.parameters():
        if p.requires_grad:
            p.data = p.data.to(torch.float16)
    peft_model.save_pretrained(str(lora_out))
    (lora_out / "README.md").unlink(missing_ok=True)  # peft's empty template; docs/MODEL.md is the card
    log.info("saved %s and %s", base_out, lora_out)


def plot_history(history: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, stage in zip(axes, ("pretrain", "lora")):
        for split, style in (("train", "-"), ("val", "o-")):
            rows = [(s, v) for st, s, sp, v in history if st == stage and sp == split]
            if split == "train" and len(rows) > 50:  # smooth the noisy per-step loss
                k = 25
                rows = [(rows[i][0], sum(v for _, v in rows[i - k : i]) / k) for i in range(k, len(rows))]
            if rows:
                ax.plot(*zip(*rows), style, label=split, markersize=3)
        ax.set(title=f"{stage} loss", xlabel="step", ylabel="nats/token")
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def run(cfg: TrainConfig) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg.work.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(cfg.work / "train.log")],
    )
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    log.info("config %s", {k: str(v) for k, v in asdict(cfg).items() if k != "history"})
    scenes = list(corpus.read_scenes(cfg.data, include_more=cfg.include_more))
    log.info("scenes: %d (%d held out)", len(scenes), sum(s.held_out for s in scenes))
    history_file = cfg.work / "history.json"
    if cfg.stage == "all":
        tok = build_tokenizer(cfg, scenes)
        base = pretrain(cfg, tok, scenes)
    else:
        source = cfg.base_model or str(cfg.work / "base")
        tok = AutoTokenizer.from_pretrained(source)
        base = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
        if history_file.exists() and not cfg.base_model:
            cfg.history = [r for r in json.loads(history_file.read_text()) if r[0] == "pretrain"]
    peft_model = train_lora(cfg, tok, base, scenes)
    save_final(cfg, tok, peft_model)
    history_file.write_text(json.dumps(cfg.history))
    plot_history(cfg.history, Path("docs/loss.png"))
