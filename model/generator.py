"""The generator the hub talks to: conversation turns in, an async iterator of text chunks out.

``JoeyGenerator.load`` reads a LLaMA causal LM and, optionally, a PEFT LoRA adapter with
transformers + peft, from local directories or from hub ids (for users who have hub access),
merges the adapter (a merged LoRA costs nothing per token) and hands the weights to the engine.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import AsyncIterator, Protocol

from model.engine import Engine, FinishReason
from model.lean import LeanLlama
from model.prompt import BOT_NAME, Turn, build_prompt, stop_text, stop_token_ids
from model.sampling import GenerationParams

log = logging.getLogger("joey.generator")


class ReplyStream(Protocol):
    """What :meth:`Generator.stream` returns: text chunks, then the totals."""

    finish_reason: FinishReason | None
    tokens: int

    def __aiter__(self) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


class Generator(Protocol):
    def stream(self, turns: list[Turn], params: GenerationParams) -> ReplyStream: ...

    @property
    def ready(self) -> bool: ...


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


class JoeyGenerator:
    def __init__(self, engine: Engine, tokenizer, context: int, bot_name: str = BOT_NAME):
        self.engine, self.tokenizer, self.context, self.bot_name = engine, tokenizer, context, bot_name

    @classmethod
    def load(cls, base: str, adapter: str | None, max_batch: int = 16, threads: int = 1,
             context: int | None = None) -> "JoeyGenerator":
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if missing := missing_model(base, adapter):
            raise ModelNotFound(f"no model at {missing!r}: not a local directory, nor a hub id")
        if all(_is_local(n) for n in filter(None, (base, adapter))):
            # Shipped or local weights: make sure nothing reaches for the network.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        torch.set_num_threads(threads)
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        model.eval()
        context = min(context or model.config.max_position_embeddings, model.config.max_position_embeddings)
        lean = LeanLlama(model, max_slots=max_batch, max_len=context)
        engine = Engine(lean, tokenizer, stop_token_ids(tokenizer), stop_text(tokenizer), max_batch, threads)
        log.info("loaded %s%s: %d-token context, batch %d", base, f" + {adapter}" if adapter else "", context, max_batch)
        return cls(engine, tokenizer, context)

    @property
    def ready(self) -> bool:
        return self.engine.running

    def start(self) -> None:
        self.engine.start()

    def stop(self) -> None:
        self.engine.stop()

    def prompt_ids(self, turns: list[Turn], params: GenerationParams) -> list[int]:
        return build_prompt(self.tokenizer, turns, self.context - params.max_new_tokens - 1, self.bot_name)

    def stream(self, turns: list[Turn], params: GenerationParams) -> ReplyStream:
        return self.engine.submit(self.prompt_ids(turns, params), params)
