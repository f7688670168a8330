"""Training settings: one dataclass; ``joey train --help`` lists every field as a flag with its help.

The defaults are the recipe of the shipped SmolLM2 adapter. The shipped mini preset was trained
with ``--base mini`` and the mini values noted per field (docs/MODEL-mini.md has its full command).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from model.options import opt


@dataclass(frozen=True)
class TrainConfig:
    data: Path  # folder with the transcripts (friends_s01-s09.jsonl.gz, ...)
    base: str = opt("smollm2", "a preset (smollm2, mini) or a folder / hub id; \"mini\" also pre-trains it")
    out: Path = opt(Path("weights"), "final weights: out/<base>/joey-lora (and out/mini/base)")
    work: Path = opt(Path("build/train"), "intermediate files and logs, never committed")
    stage: str = opt("all", "with --base mini: \"all\", or \"lora\" to retrain only the adapter on work/base")
    seed: int = opt(0, "every random choice (init, batches, augmentation) follows from it")
    threads: int = opt(2, "torch threads; on a busy 2-core host 1 is steadier")
    vocab_size: int = opt(8192, "mini: BPE vocabulary, special tokens included")
    hidden: int = opt(256, "mini: model width; 256x4 trains 2.4x faster than 288x6 here (docs/MODEL.md)")
    layers: int = opt(4, "mini: transformer layers")
    heads: int = opt(4, "mini: attention heads")
    mlp: int = opt(768, "mini: feed-forward width")
    context: int = opt(512, "mini: maximum positions the model supports")
    seq_len: int = opt(256, "mini: pre-training window")
    batch: int = opt(16, "sequences per step, both stages")
    pretrain_steps: int = opt(1500, "mini: pre-training optimizer steps")
    lr: float = opt(2e-3, "mini: pre-training peak learning rate")
    warmup: int = opt(100, "mini: pre-training warm-up steps")
    include_more: bool = opt(True, "mini: add more_dialogue to pre-training for broader English")
    lora_steps: int = opt(240, "optimizer steps of the adapter, about half an epoch of the mixture (mini: 600)")
    lora_lr: float = opt(5e-4, "peak learning rate of the adapter (mini: 1e-3)")
    lora_warmup: int = opt(12, "linear warm-up steps before the cosine decay")
    lora_r: int = opt(16, "LoRA rank")
    lora_alpha: int = opt(32, "LoRA scale numerator (the update is scaled by alpha / r)")
    lora_layers: int = opt(15, "LoRA on the top N layers only (0 = all): backward stops early, 1.5x faster (mini: 0)")
    lora_dtype: str = opt("bf16", "the frozen base's dtype while training: bf16 or fp32 (mini: fp32)")
    lora_max_repeats: int = opt(5, "leave out Joey lines he says more than this many times (\"Hey!\", \"Yeah.\"): they teach bland replies (0 = keep all; mini: 0)")
    lora_drop_echo: bool = opt(True, "leave out Joey lines that mostly repeat the line before (mini: false)")
    lora_min_relevance: float = opt(0.12, "leave out Joey lines less related to the line they answer (all-MiniLM-L6-v2 cosine): the adapter answers as closely as the lines it learns from (0 = keep all; mini: 0)")
    lora_min_style: float = opt(0.47, "leave out Joey lines the style classifier scores under this P(joey) (anyone's lines, \"Okay, what happened?\"): they pull the voice towards the average friend (0 = keep all; mini: 0)")
    lora_context_turns: int = opt(10, "a scene window reaches 1..N turns before its first supervised Joey line")
    lora_context_tokens: int = opt(704, "token budget of an example, the system prompt and sheet included; older turns are dropped first")
    lora_persona_chats: int = opt(1500, "synthetic conversations asking about Joey's life, answered from the sheet (training/chats.py)")
    lora_memory_chats: int = opt(1500, "synthetic conversations that state facts about the user and later ask for one")
    lora_recall: int = opt(0, "sheet facts recalled into a note before each supervised reply; serve such an adapter with --recall N (docs/MODEL.md)")
    lora_reply_tokens: int = opt(64, "longer Joey lines are cut (and then teach no end of turn)")
    eval_every: int = opt(40, "steps between validation losses (logged and plotted)")

    def base_name(self) -> str:
        """The folder under ``out`` that this run's weights go to."""
        return self.base if self.base in ("smollm2", "mini") else "custom"
