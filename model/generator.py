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

from model.compiled import choose_dtype, compile_passes, warm_up
from model.engine import Engine
from model.engine_process import EngineProcess
from model.lean import LeanLlama
from model.metrics import EngineStats
from model.prefill_plan import PREFILL_CHUNK
from model.prefix_cache import common_length
from model.presets import PRESETS, ensure_base
from model.prompt import BOT_NAME, Turn, build_prompt, stop_text, stop_token_ids
from model.reply import EngineError, FinishReason
from model.sampling import GenerationParams

__all__ = ["EngineError", "EngineStats", "FinishReason", "Generator", "JoeyGenerator", "ModelNotFound", "ReplyStream"]

log = logging.getLogger("joey.generator")


class ReplyStream(Protocol):
    """What :meth:`Generator.stream` returns: text chunks, then the totals."""

    finish_reason: FinishReason | None
    tokens: int

    def __aiter__(self) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


class Generator(Protocol):
    """What the app and the hub use. A failed generation raises :class:`EngineError` from the stream."""

    context: int  # prompt + reply token budget

    def start(self) -> None:
        """Start generating (returns at once; warm-up may go on in the background)."""

    def stop(self) -> None:
        """Stop; running replies end."""

    @property
    def ready(self) -> bool:
        """Started, warmed up, and not failed: /readyz reports this."""

    def stats(self) -> EngineStats:
        """Counters and histograms for /metrics and /readyz."""

    def stream(self, turns: list[Turn], params: GenerationParams) -> ReplyStream: ...


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


def shared_prefix(tokenizer, context: int) -> list[int]:
    """The tokens every prompt starts with (the system message, for ChatML): what two prompts
    of different speakers and text have in common."""
    a = build_prompt(tokenizer, [Turn("Ross", "Hi.")], context)
    b = build_prompt(tokenizer, [Turn("Monica", "Why?")], context)
    return a[:common_length(tuple(a), tuple(b), len(a))]


def _offline_if_local(*names: str | None) -> None:
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

    _offline_if_local(base, adapter)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return model.eval(), tokenizer


def build_engine(base: str, adapter: str | None, max_batch: int = 16, threads: int = 1, context: int = 512,
                 dtype: str = "auto", compile: bool = False, prefill_chunk: int = PREFILL_CHUNK, sentence_holdback: int = 16,
                 prefix_cache: int = 32, mailbox=None) -> tuple[Engine, object, int]:
    """The engine on these weights (see :meth:`JoeyGenerator.load` for the options), its
    tokenizer, and the context it was sized for. ``mailbox``: where its events go (the Engine's)."""
    import torch

    # Set up on one thread, and leave this thread so: it does not run the model (the engine
    # thread sets its own count for each pass). A thread that starts an OpenMP team keeps its
    # workers for the life of the process, and once libgomp manages more threads than there
    # are cores, every team's threads sleep at barriers instead of spinning; a pass has
    # hundreds. Set up on two threads, the engine thread's two were no faster than one:
    # SmolLM2's compiled step of 8 rows took 38 ms against 22, 32 rows 64 against 50, a
    # 21-token prefill pass 51 against 30. Set back to two after setting up, mini's one-row
    # steps looked slower (docs/benchmarks.md, "The model set up on one thread").
    torch.set_num_threads(1)
    model, tokenizer = load_merged(base, adapter)
    # The KV cache is sized from this: SmolLM2's own 8,192 at batch 64 would be 12 GB.
    context = min(context, model.config.max_position_embeddings)
    chosen = choose_dtype(dtype, model, max_batch)
    # + the system message's slot and the conversations kept for their next message
    lean = LeanLlama(model, max_slots=max_batch + 1 + prefix_cache, max_len=context, dtype=chosen, threads=threads)
    del model  # the lean copy is all that serving needs
    if compile:
        compile_passes(lean)
    engine = Engine(lean, tokenizer, stop_token_ids(tokenizer), stop_text(tokenizer), max_batch,
                    prefill_chunk=prefill_chunk, sentence_holdback=sentence_holdback,
                    warmup=lambda: warm_up(lean, max_batch), prefix=shared_prefix(tokenizer, context), mailbox=mailbox)
    log.info("loaded %s%s: %d-token context, batch %d, %s%s, KV cache %.0f MB", base,
             f" + {adapter}" if adapter else "", context, max_batch, chosen, ", compiled" if compile else "",
             lean.cache_bytes() / 2**20)
    return engine, tokenizer, context


class JoeyGenerator:
    def __init__(self, engine: Engine | EngineProcess, tokenizer, context: int, bot_name: str = BOT_NAME):
        self.engine, self.tokenizer, self.context, self.bot_name = engine, tokenizer, context, bot_name

    @classmethod
    def load(cls, base: str, adapter: str | None, max_batch: int = 16, threads: int = 1,
             context: int = 512, dtype: str = "auto", compile: bool = False,
             prefill_chunk: int = PREFILL_CHUNK, sentence_holdback: int = 16, prefix_cache: int = 32,
             process: bool = False) -> "JoeyGenerator":
        """``dtype``: auto | bf16 | fp32 (auto times both on this CPU at load); ``compile``:
        compiled decode and prefill passes, built during warm-up on the engine thread (ready says when);
        ``prefill_chunk``: prompt positions a step may prefill while others decode (at least); ``sentence_holdback``:
        the last tokens before the limit stream whole sentences only (see StreamDecoder);
        ``prefix_cache``: extra KV-cache slots that keep finished conversations (PrefixCache);
        ``process``: the engine runs in a child process, which loads the weights when started
        (model/engine_process.py); here only the tokenizer and the model's config are read."""
        options = dict(base=base, adapter=adapter, max_batch=max_batch, threads=threads, context=context, dtype=dtype,
                       compile=compile, prefill_chunk=prefill_chunk, sentence_holdback=sentence_holdback,
                       prefix_cache=prefix_cache)
        if not process:
            return cls(*build_engine(**options))
        from transformers import AutoConfig, AutoTokenizer

        _offline_if_local(base, adapter)
        context = min(context, AutoConfig.from_pretrained(base).max_position_embeddings)
        return cls(EngineProcess(options), AutoTokenizer.from_pretrained(base), context)

    @classmethod
    def from_preset(cls, name: str, with_adapter: bool = True, **options) -> "JoeyGenerator":
        """Preset ``name``'s shipped weights (converting SmolLM2's base first, if set-up has not);
        ``options`` go to :meth:`load`."""
        preset = PRESETS[name]
        ensure_base(preset)
        options.setdefault("prefill_chunk", preset.prefill_chunk)
        return cls.load(preset.base, preset.adapter if with_adapter else None, **options)

    @property
    def ready(self) -> bool:
        return self.engine.ready

    def stats(self) -> EngineStats:
        return self.engine.stats()

    def start(self) -> None:
        self.engine.start()

    def stop(self) -> None:
        self.engine.stop()

    def prompt_ids(self, turns: list[Turn], params: GenerationParams) -> list[int]:
        return build_prompt(self.tokenizer, turns, self.context - params.max_new_tokens - 1, self.bot_name)

    def stream(self, turns: list[Turn], params: GenerationParams) -> ReplyStream:
        return self.engine.submit(self.prompt_ids(turns, params), params)
