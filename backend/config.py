"""All server settings: one dataclass, each field set by a CLI flag or a JOEY_* variable.

Precedence: command line, then environment (``JOEY_PORT=9000``), then the default here.
``joey serve --help`` lists every field with its help text; docs/operations.md explains them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from backend.feedback import DEFAULT_PATH as FEEDBACK_PATH
from model.character import Character, default_character
from model.engine_options import EngineOptions
from model.options import add_flags, opt, read_settings
from model.presets import Preset, describe_presets, resolve
from model.sampling import GenerationParams

# The sampling and engine defaults live in one place each (model/): read, never restated.
_SAMPLING = GenerationParams()
_ENGINE = EngineOptions()
ENV_PREFIX = "JOEY_"


@dataclass
class Config:
    host: str = opt("127.0.0.1", "interface to listen on")
    port: int = opt(8000, "TCP port to listen on")
    model: str = opt("smollm2", "model preset: " + describe_presets())
    base_model: str = opt("", "base model override: a local directory or a hub id ('' = the preset's)")
    adapter: str = opt("", "LoRA adapter override: a local directory or a hub id ('' = the preset's, 'none' = no adapter)")
    max_batch: int = opt(_ENGINE.max_batch, "requests decoded together in one engine step; each holds a KV cache (docs/operations.md)")
    engine_threads: int = opt(_ENGINE.threads, "torch threads of the engine's passes; 0 = the preset's (smollm2 2, mini 1)")
    context_tokens: int = opt(_ENGINE.context, "prompt + reply token budget, the sheet included; the oldest turns go first")
    character_card: str = opt("", "the character sheet that opens every prompt ('' = characters/joey.md)")
    recall: int = opt(_ENGINE.recall, "sheet facts recalled into a note before each reply, for an adapter trained with them (0 = none)")
    engine_dtype: str = opt(_ENGINE.dtype, "decode dtype: auto (fp32 without bf16 kernels, else the faster of the two), bf16, fp32")
    engine_compile: bool = opt(_ENGINE.compile, "torch.compile the decode and prefill passes at warm-up (minutes; docs/operations.md)")
    engine_process: bool = opt(_ENGINE.process, "run the engine in a child process, so the event loop and it never share a GIL")
    prefill_chunk: int = opt(_ENGINE.prefill_chunk, "prompt positions one step may prefill while replies decode; 0 = the preset's")
    prefix_cache: int = opt(_ENGINE.prefix_cache, "KV-cache slots that keep finished conversations for their next message")
    sentence_holdback: int = opt(_ENGINE.sentence_holdback, "the last tokens before max_new_tokens stream whole sentences only (0 = off)")
    engine_url: str = opt("", "engines serving the adapter: OpenAI base URLs, comma-separated, e.g. http://HOST:8000/v1 ('' = ours)")
    engine_model: str = opt("joey", "the name the engines serve the Joey adapter under (vLLM: --lora-modules joey=DIR)")
    engine_api_key: str = opt("", "key sent to the engines as a Bearer token (vLLM's --api-key); set it in the environment")
    engine_connect_timeout_s: float = opt(5.0, "seconds to open a connection to an engine, or to get its /models")
    engine_first_token_timeout_s: float = opt(60.0, "seconds from sending a request to its first token, its wait in the engine's queue included")
    engine_token_timeout_s: float = opt(30.0, "longest silence between two streamed tokens of a reply before it fails")
    engine_retries: int = opt(3, "tries again of a request whose engine is down or overloaded (429, 503), before its first token")
    engine_retry_backoff_s: float = opt(0.5, "first wait before a retry (an engine's Retry-After wins); each next one doubles")
    engine_health_interval_s: float = opt(2.0, "how often each engine's /models is polled, for /readyz and for routing")
    max_new_tokens: int = opt(_SAMPLING.max_new_tokens, "longest reply, in tokens")
    min_new_tokens: int = opt(_SAMPLING.min_new_tokens, "shortest reply, in tokens (end of turn is suppressed before it)")
    temperature: float = opt(_SAMPLING.temperature, "sampling temperature; 0 means greedy")
    top_k: int = opt(_SAMPLING.top_k, "sample from the k most likely tokens (0 = all)")
    top_p: float = opt(_SAMPLING.top_p, "nucleus sampling threshold")
    repetition_penalty: float = opt(_SAMPLING.repetition_penalty, "penalty for tokens already said (1 = none)")
    max_message_chars: int = opt(1000, "longest user message, in characters (error message_too_long)")
    max_name_chars: int = opt(32, "longest display name a client may give")
    max_frame_bytes: int = opt(65536, "largest WebSocket frame; bigger ones close the connection with 1009")
    ws_compression: bool = opt(False, "offer permessage-deflate (off: chunk frames are tiny; docs/operations.md)")
    max_history_turns: int = opt(50, "turns kept per session (older ones are dropped)")
    max_reply_versions: int = opt(10, "versions of one reply kept by regenerate (the oldest beyond are dropped)")
    max_sessions: int = opt(10000, "sessions held at once (error server_full beyond)")
    max_sessions_per_client: int = opt(50, "sessions one client address may hold (error too_many_sessions beyond)")
    max_queued_replies: int = opt(256, "replies that may wait for an engine slot, whatever the estimated wait; beyond, a message gets server_busy")
    max_queue_wait_s: float = opt(30.0, "a message whose reply would wait longer than this for an engine slot (estimated from recent replies) gets server_busy")
    max_replies_per_client: int = opt(8, "replies one client address may have in flight (server_busy beyond)")
    max_frames_per_s: float = opt(50.0, "frames read per connection per second; a faster sender is slowed, not closed")
    max_connections: int = opt(1000, "WebSocket connections at once (closed with 1013 beyond)")
    session_idle_s: float = opt(604800.0, "a session unused this long is forgotten (default a week)")
    fresh_session_idle_s: float = opt(300.0, "a session that never got a message is forgotten after this long")
    orphan_grace_s: float = opt(30.0, "a reply with no client attached is aborted after this long")
    rate_limit_messages: int = opt(20, "user messages allowed per session per rate window")
    rate_limit_window_s: float = opt(60.0, "the rate-limit window (error rate_limited beyond)")
    dedupe_window: int = opt(256, "recent message ids remembered per session, so a resend is not answered twice")
    send_timeout_s: float = opt(10.0, "a client that does not read for this long is disconnected")
    ping_interval_s: float = opt(20.0, "WebSocket keepalive pings this often; also times a slow reader (0 = off)")
    ping_timeout_s: float = opt(20.0, "a client that has not answered a ping within this long is closed with 1008 (0 = wait forever)")
    allowed_origins: str = opt("", "comma-separated Origins allowed besides the server's own; '*' = any")
    api_key: str = opt("", "if set, clients must send it (Authorization: Bearer, or ?api_key=)")
    trusted_keys: str = opt("", "keys of trusted bridges (joey telegram): their sessions count against no address")
    state_path: str = opt("var/sessions.db", "SQLite file that keeps sessions across restarts ('' = memory only)")
    feedback_path: str = opt(FEEDBACK_PATH, "ratings of Joey's replies with their context, appended for `joey feedback export` ('' = not kept)")
    state_url: str = opt("", "redis://HOST:PORT/DB keeps sessions in Redis instead, shared by several replicas")
    web_root: str = opt("frontends/web", "folder of the static chat page served at /")
    frontends: str = opt("", "comma-separated frontend plugins to run in-process, e.g. 'telegram'")
    openai: bool = opt(False, "also serve the OpenAI-compatible chat API at /v1 (same as --frontends openai; docs/openai.md)")
    openai_keys: str = opt("", "comma-separated keys /v1 requires (Bearer); '' = none, and loopback clients only")
    openai_max_body_bytes: int = opt(1048576, "largest /v1 request body, in bytes (413 beyond)")
    openai_max_messages: int = opt(1000, "most messages in one /v1 request (413 beyond)")
    openai_max_message_chars: int = opt(8000, "longest earlier message or system note in a /v1 request (413 beyond)")
    openai_rate_limit_messages: int = opt(60, "/v1 requests per key (per address without keys) per rate window (429 beyond)")
    shutdown_grace_s: float = opt(20.0, "on SIGTERM, time replies in flight get to finish; later ones are interrupted, redone")
    log_level: str = opt("info", "debug, info, warning or error")
    log_format: str = opt("text", "'text' or 'json' (one JSON object per line, with session ids, no secrets)")

    def model_files(self) -> Preset:
        """The base and adapter to load: the preset's, with any override applied."""
        return resolve(self.model, self.base_model, None if self.adapter == "" else
                       ("" if self.adapter == "none" else self.adapter))

    def engine_options(self) -> EngineOptions:
        """The engine's options, built once and passed whole (zeros mean the preset's)."""
        return EngineOptions(max_batch=self.max_batch, threads=self.engine_threads, context=self.context_tokens,
                             dtype=self.engine_dtype, compile=self.engine_compile, prefill_chunk=self.prefill_chunk,
                             sentence_holdback=self.sentence_holdback, prefix_cache=self.prefix_cache,
                             process=self.engine_process, recall=self.recall)

    def character(self) -> Character:
        """The character whose sheet opens every prompt (raises CardError for a bad file)."""
        return Character.load(self.character_card) if self.character_card else default_character()

    def origins(self) -> set[str]:
        return set(_names(self.allowed_origins))

    def frontend_names(self) -> list[str]:
        names = _names(self.frontends)
        return [*names, "openai"] if self.openai and "openai" not in names else names

    def trusted_key_list(self) -> list[str]:
        return _names(self.trusted_keys)

    def openai_key_list(self) -> list[str]:
        return _names(self.openai_keys)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        add_flags(parser, cls, ENV_PREFIX)

    @classmethod
    def from_sources(cls, args: argparse.Namespace | None = None, env: dict | None = None) -> "Config":
        return cls(**read_settings(cls, ENV_PREFIX, args, env))


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


