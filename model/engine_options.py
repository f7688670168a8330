"""How the engine runs: one frozen object, built once from the server's Config and passed whole.

Every default lives here; ``backend/config.py`` reads its engine fields' defaults from this class,
as it reads the sampling defaults from ``GenerationParams``. Two fields say "0 = the preset's":
:meth:`EngineOptions.resolved` is the one place that fills them in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from model.presets import Preset


@dataclass(frozen=True)
class EngineOptions:
    max_batch: int = 16  # requests decoded together in one step; each holds a KV-cache slot
    threads: int = 0  # torch threads of the engine's passes; 0 = the preset's
    context: int = 1024  # prompt + reply token budget, the sheet included (capped by the model's)
    dtype: str = "auto"  # auto (fp32 without bf16 kernels, else the faster), bf16 or fp32
    compile: bool = False  # torch.compile the decode and prefill passes during warm-up
    prefill_chunk: int = 0  # prompt positions a step may prefill while replies decode; 0 = the preset's
    sentence_holdback: int = 16  # the last tokens before the limit stream whole sentences only (0 = off)
    prefix_cache: int = 32  # KV-cache slots that keep finished conversations for their next message
    process: bool = True  # the engine in a child process of its own (model/engine_process.py)
    recall: int = 0  # sheet facts recalled into a note before each reply (model/recall.py); only for an adapter trained with it

    def resolved(self, preset: Preset | None = None) -> "EngineOptions":
        """The preset's values where a field says 0 (a folder given as --base-model has none:
        the preset defaults then)."""
        preset = preset or Preset("", "", "", "")
        return replace(self, threads=self.threads or preset.engine_threads,
                       prefill_chunk=self.prefill_chunk or preset.prefill_chunk)
