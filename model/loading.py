"""Loading: a base model and its LoRA adapter into the serving engine.

``load_merged`` reads a LLaMA causal LM and, optionally, a PEFT LoRA adapter with transformers +
peft, from local directories or from hub ids (for users who have hub access), and merges the
adapter (a merged LoRA costs nothing per token). ``build_engine`` hands those weights to the
engine. Local names keep the hub offline for the rest of the process.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from model.character import Character
from model.compiled import choose_dtype, compile_passes, warm_up
from model.engine import Engine
from model.lean import LeanLlama
from model.engine_options import EngineOptions
from model.prefix_cache import common_length
from model.prompt import Turn, build_prompt, stop_text, stop_token_ids

log = logging.getLogger("joey.loading")


class ModelNotFound(FileNotFoundError):
    pass


def _is_local(name: str) -> bool:
    return Path(name).expanduser().exists()


_HUB_ID = re.compile(r"[\w-][\w.-]*/[\w.-]+")


def missing_model(*names: str | None) -> str | None:
    """The first name that is neither a local directory nor a hub id ("owner/name"), if any.

    "weights/base" looks like a hub id, but its first part is a local folder, so a missing one is
    reported instead of being fetched.
    """
    for name in filter(None, names):
        if _is_local(name):
            continue
        if not _HUB_ID.fullmatch(name) or Path(name.split("/")[0]).expanduser().is_dir():
            return name
    return None


def shared_prefix(tokenizer, context: int, character: Character | None = None) -> list[int]:
    """The tokens every prompt starts with (the system message with the sheet, for ChatML): what
    two prompts of different speakers and text have in common."""
    a = build_prompt(tokenizer, [Turn("Ross", "Hi.")], context, character)
    b = build_prompt(tokenizer, [Turn("Monica", "Why?")], context, character)
    return a[:common_length(tuple(a), tuple(b), len(a))]


def offline_if_local(*names: str | None) -> None:
    """Raise ModelNotFound for a name that is neither a local directory nor a hub id; when every
    name is local, keep the hub offline for the rest of this process."""
    if missing := missing_model(*names):
        raise ModelNotFound(f"no model at {missing!r}: not a local directory, nor a hub id")
    if all(_is_local(n) for n in filter(None, names)):
        # Shipped or local weights: make sure nothing reaches for the network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load_merged(base: str, adapter: str | None):
    """The HF model (fp32, eval mode) with the LoRA adapter merged in, and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    offline_if_local(base, adapter)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return model.eval(), tokenizer


def build_engine(base: str, adapter: str | None, options: EngineOptions, character: Character | None = None,
                 mailbox=None) -> tuple[Engine, object, int]:
    """The engine on these weights, its tokenizer, and the context it was sized for. ``options``
    come resolved (``EngineOptions.resolved``); ``mailbox``: where its events go (the Engine's)."""
    import torch

    # Set up on one thread, and leave this thread so: it does not run the model (the engine
    # thread sets its own count for each pass). A thread that starts an OpenMP team keeps its
    # workers for the life of the process, and once libgomp manages more threads than there
    # are cores, every team's threads sleep at barriers instead of spinning
    # (docs/benchmarks.md, "The model set up on one thread").
    torch.set_num_threads(1)
    model, tokenizer = load_merged(base, adapter)
    # The KV cache is sized from this: SmolLM2's own 8,192 at batch 64 would be 12 GB.
    context = min(options.context, model.config.max_position_embeddings)
    chosen = choose_dtype(options.dtype, model, options.max_batch)
    # + the system message's slot and the conversations kept for their next message
    lean = LeanLlama(model, max_slots=options.max_batch + 1 + options.prefix_cache, max_len=context, dtype=chosen,
                     threads=options.threads)
    del model  # the lean copy is all that serving needs
    if options.compile:
        compile_passes(lean)
    engine = Engine(lean, tokenizer, stop_token_ids(tokenizer), stop_text(tokenizer), options,
                    warmup=lambda: warm_up(lean, options.max_batch), prefix=shared_prefix(tokenizer, context, character),
                    mailbox=mailbox)
    log.info("loaded %s%s: %d-token context, batch %d, %s%s, KV cache %.0f MB", base,
             f" + {adapter}" if adapter else "", context, options.max_batch, chosen,
             ", compiled" if options.compile else "", lean.cache_bytes() / 2**20)
    return engine, tokenizer, context
