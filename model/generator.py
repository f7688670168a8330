"""The generator the hub talks to: conversation turns in, an async iterator of text chunks out.

``JoeyGenerator`` renders the prompt (model/prompt.py) and submits its token ids to an engine
(model/engine_api.py): the in-process one, the engine process, or a remote one. Loading the
weights is model/loading.py's.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Protocol

from model.character import Character, default_character
from model.continuation import Continued
from model.engine_api import EngineClient
from model.engine_process import EngineProcess
from model.loading import build_engine, offline_if_local
from model.metrics import EngineStats
from model.engine_options import EngineOptions
from model.presets import PRESETS, Preset, ensure_base
from model.prompt import Turn, build_prompt
from model.recall import Recall
from model.reply import EngineError, FinishReason
from model.sampling import GenerationParams

__all__ = ["EngineError", "EngineStats", "FinishReason", "Generator", "JoeyGenerator", "ReplyStream"]


class ReplyStream(Protocol):
    """What :meth:`Generator.stream` returns: text chunks, then the totals."""

    finish_reason: FinishReason | None
    tokens: int

    def __aiter__(self) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


class Generator(Protocol):
    """What the app and the hub use. A failed generation raises :class:`EngineError` from the stream."""

    context: int  # prompt + reply token budget
    bot_name: str  # the character's speaker name: the hub's history speaks the bot's lines with it

    def start(self) -> None:
        """Start generating (returns at once; warm-up may go on in the background)."""

    def stop(self) -> None:
        """Stop; running replies end."""

    @property
    def ready(self) -> bool:
        """Started, warmed up, and not failed: /readyz reports this."""

    def stats(self) -> EngineStats:
        """Counters and histograms for /metrics and /readyz."""

    def stream(self, turns: list[Turn], params: GenerationParams, reply_start: str = "") -> ReplyStream:
        """The bot's reply to ``turns``; with ``reply_start``, the rest of a reply cut short."""


class JoeyGenerator:
    def __init__(self, engine: EngineClient, tokenizer, context: int, character: Character | None = None,
                 recall: int = 0):
        self.engine, self.tokenizer, self.context, self.character = engine, tokenizer, context, character
        # The sheet facts nearest to the last line said go into a note before the reply (model/recall.py).
        self.recall = Recall(character or default_character(), recall) if recall > 0 else None

    @classmethod
    def load(cls, base: str, adapter: str | None, options: EngineOptions = EngineOptions(),
             character: Character | None = None, preset: Preset | None = None) -> "JoeyGenerator":
        """The engine on ``base`` with ``adapter`` merged. ``character``: whose sheet opens every
        prompt (None: the default card, Joey's); ``preset``: where ``options``' zeros come from.
        With ``options.process`` the engine runs in a child process, which loads the weights when
        started (model/engine_process.py); here only the tokenizer and the model's config are read."""
        options = options.resolved(preset)
        if not options.process:
            return cls(*build_engine(base, adapter, options, character), character, options.recall)
        from transformers import AutoConfig, AutoTokenizer

        offline_if_local(base, adapter)
        context = min(options.context, AutoConfig.from_pretrained(base).max_position_embeddings)
        return cls(EngineProcess(base, adapter, options, character), AutoTokenizer.from_pretrained(base), context, character,
                   options.recall)

    @classmethod
    def from_preset(cls, name: str, with_adapter: bool = True, options: EngineOptions = EngineOptions(),
                    character: Character | None = None) -> "JoeyGenerator":
        """Preset ``name``'s shipped weights (converting SmolLM2's base first, if set-up has not)."""
        preset = PRESETS[name]
        ensure_base(preset)
        return cls.load(preset.base, preset.adapter if with_adapter else None, options, character, preset)

    @classmethod
    def remote(cls, urls: list[str], base: str, options: EngineOptions = EngineOptions(),
               character: Character | None = None, settings=None) -> "JoeyGenerator":
        """Replies from OpenAI-compatible engines at ``urls`` serving the adapter as
        ``settings.model`` (model/remote.py: RemoteSettings). Only the tokenizer and the config of
        ``base``, the adapter's base, are read here: the weights live in the engines."""
        from transformers import AutoConfig, AutoTokenizer

        from model.prompt import stop_text, stop_token_ids
        from model.remote import RemoteEngine, RemoteSettings

        offline_if_local(base)
        context = min(options.context, AutoConfig.from_pretrained(base).max_position_embeddings)
        tokenizer = AutoTokenizer.from_pretrained(base)
        engine = RemoteEngine(urls, tokenizer, stop_token_ids(tokenizer), stop_text(tokenizer),
                              settings or RemoteSettings(), options.sentence_holdback)
        return cls(engine, tokenizer, context, character, options.recall)

    @property
    def bot_name(self) -> str:
        return (self.character or default_character()).name

    @property
    def ready(self) -> bool:
        return self.engine.ready

    def stats(self) -> EngineStats:
        return self.engine.stats()

    def start(self) -> None:
        self.engine.start()

    def stop(self) -> None:
        self.engine.stop()

    def note(self, turns: list[Turn]) -> str | None:
        """The recalled note for the last line said to the bot (None without recall)."""
        said = next((t.text for t in reversed(turns) if t.speaker != self.bot_name), "")
        return self.recall.note(said) if self.recall and said else None

    def prompt_ids(self, turns: list[Turn], params: GenerationParams, note: str | None = None,
                   reply_start: str = "") -> list[int]:
        """The prompt the engine gets; ``note`` defaults to :meth:`note`."""
        note = self.note(turns) if note is None else note
        return build_prompt(self.tokenizer, turns, self.context - params.max_new_tokens - 1, self.character, note,
                            reply_start)

    def stream(self, turns: list[Turn], params: GenerationParams, reply_start: str = "") -> ReplyStream:
        if self.recall is None:
            stream = self.engine.submit(self.prompt_ids(turns, params, reply_start=reply_start), params)
        else:
            stream = _Recalled(self, turns, params, reply_start)
        return Continued(stream, self.tokenizer, reply_start) if reply_start else stream


class _Recalled:
    """A reply that first recalls its note on a worker thread: an embedding pass takes
    milliseconds, which the event loop owes the other streams."""

    def __init__(self, gen: JoeyGenerator, turns: list[Turn], params: GenerationParams, reply_start: str):
        self._gen, self._turns, self._params, self._reply_start = gen, turns, params, reply_start
        self._inner: ReplyStream | None = None

    @property
    def finish_reason(self) -> FinishReason | None:
        return self._inner.finish_reason if self._inner else None

    @property
    def tokens(self) -> int:
        return self._inner.tokens if self._inner else 0

    async def __aiter__(self) -> AsyncIterator[str]:
        note = await asyncio.to_thread(self._gen.note, self._turns)
        ids = self._gen.prompt_ids(self._turns, self._params, note or "", self._reply_start)
        self._inner = self._gen.engine.submit(ids, self._params)
        async for text in self._inner:
            yield text

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()
