"""The training pipeline: the Joey LoRA on a pretrained base, or the mini preset from scratch.

    joey train --data ../shared/data                 # Joey LoRA on SmolLM2 (about 45-65 min, 2 cores)
    joey train --base mini --data ../shared/data     # tokenizer + 5.5M base + LoRA (about 75 min)

Intermediate files go under ``--work`` (git-ignored); with ``--base mini --stage lora`` only the
adapter is retrained on ``work/base``. Final weights go to ``--out/<base>/`` as fp16 safetensors.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict
from pathlib import Path

import torch

from training import data as corpus
from model.prompt import scene_ids
from training.lora import train_lora
from training.loop import RunLog, Schedule, train
from training.train_config import TrainConfig

log = logging.getLogger("joey.train")


def build_tokenizer(cfg: TrainConfig, scenes: list[corpus.Scene]):
    from training.tokenizer import save_tokenizer, train_tokenizer

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


def pretrain(cfg: TrainConfig, tok, scenes: list[corpus.Scene], run_log: RunLog):
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
    val = [windows(val_ids, cfg.seq_len, cfg.batch, val_gen) for _ in range(12)]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.1)
    train(model, opt, Schedule("pretrain", cfg.pretrain_steps, cfg.lr, cfg.warmup, cfg.eval_every),
          next_batch=lambda _step: windows(train_ids, cfg.seq_len, cfg.batch, gen),
          loss_of=lambda w: model(input_ids=w, labels=w).loss,  # HF shifts the labels itself
          tokens_of=lambda w: w.numel(), val=val, run_log=run_log)
    # Round to the fp16 that ships, so the adapter trains on exactly the shipped base.
    model = model.to(torch.float16)
    model.save_pretrained(str(cfg.work / "base"))
    run_log.save(cfg.work / "history.json")
    return model.to(torch.float32)


def save_adapter(cfg: TrainConfig, peft_model) -> Path:
    import shutil

    lora_out = cfg.out / cfg.base_name() / "joey-lora"
    shutil.rmtree(lora_out, ignore_errors=True)
    for p in peft_model.parameters():
        if p.requires_grad:
            p.data = p.data.to(torch.float16)
    peft_model.save_pretrained(str(lora_out))
    (lora_out / "README.md").unlink(missing_ok=True)  # peft's empty template; docs/MODEL.md is the card
    portable_adapter_config(lora_out / "adapter_config.json", cfg.base)
    log.info("saved %s", lora_out)
    return lora_out


def portable_adapter_config(path: Path, base: str) -> None:
    """Name the base by its public name, not by a path of the machine that trained it: serving
    always passes the base explicitly, so the name only tells a reader (and vLLM) what it is."""
    from model.presets import PUBLIC_BASES

    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = PUBLIC_BASES.get(base, Path(str(config.get("base_model_name_or_path") or base)).name)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def plot_history(history: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [st for st in ("pretrain", "lora") if any(row[0] == st for row in history)]  # SmolLM2: lora only
    fig, axes = plt.subplots(1, len(stages), figsize=(5.5 * len(stages), 4), squeeze=False)
    for ax, stage in zip(axes[0], stages):
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


def load_base(cfg: TrainConfig):
    """The base the adapter trains on: a preset's, or the folder / hub id given as --base."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from model.presets import PRESETS, ensure_base

    if cfg.base in PRESETS:
        ensure_base(PRESETS[cfg.base])
        source = PRESETS[cfg.base].base if cfg.base != "mini" else str(cfg.work / "base")
    else:
        source = cfg.base
    tok = AutoTokenizer.from_pretrained(source)
    return tok, AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)


def run(cfg: TrainConfig) -> None:
    import shutil

    cfg.work.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(cfg.work / "train.log")],
    )
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    log.info("config %s", {k: str(v) for k, v in asdict(cfg).items()})
    pretraining = cfg.base == "mini" and cfg.stage == "all"
    scenes = list(corpus.read_scenes(cfg.data, include_more=cfg.include_more and pretraining))
    log.info("scenes: %d (%d held out)", len(scenes), sum(s.held_out for s in scenes))
    history_file, run_log = cfg.work / "history.json", RunLog()
    if pretraining:
        tok = build_tokenizer(cfg, scenes)
        base = pretrain(cfg, tok, scenes, run_log)
        shutil.rmtree(cfg.out / "mini" / "base", ignore_errors=True)
        shutil.copytree(cfg.work / "base", cfg.out / "mini" / "base")
    else:
        tok, base = load_base(cfg)
        if cfg.base == "mini":
            run_log = RunLog.load(history_file, stage="pretrain")
    peft_model = train_lora(cfg, tok, base, scenes, run_log)
    save_adapter(cfg, peft_model)
    run_log.save(history_file)
    plot_history(run_log.rows, cfg.work / f"loss-{cfg.base_name()}.png")  # the model card copies it to docs/
