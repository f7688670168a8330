"""Model presets: names, overrides, and clean start-up errors for missing or corrupt bases."""

from __future__ import annotations

import subprocess
import sys

import pytest

from backend.config import Config
from model.presets import PRESETS, resolve


def test_default_is_smollm2_and_mini_is_named():
    assert Config().model == "smollm2" and set(PRESETS) == {"smollm2", "mini"}
    assert Config(model="mini").model_files().base.endswith("weights/mini/base")


def test_overrides_and_no_adapter():
    files = Config(model="mini", base_model="/some/base", adapter="none").model_files()
    assert (files.base, files.adapter) == ("/some/base", "")
    assert Config(model="mini").model_files().adapter.endswith("weights/mini/joey-lora")


def test_unknown_preset_is_a_value_error_naming_the_choices():
    with pytest.raises(ValueError, match="expected one of smollm2, mini"):
        resolve("gpt5")


def _serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backend.cli", "serve", *args], capture_output=True, text=True,
                          timeout=120)


def test_corrupt_base_is_one_clear_line_and_nothing_starts(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 64)
    done = _serve("--model", "mini", "--base-model", str(tmp_path), "--adapter", "none", "--port", "1")
    assert done.returncode == 2, done.stderr
    assert "model.safetensors is corrupt" in done.stderr and "Traceback" not in done.stderr
    assert "git checkout -- weights/" in done.stderr


def test_unknown_model_name_exits_2_without_traceback():
    done = _serve("--model", "gpt5", "--port", "1")
    assert done.returncode == 2 and "unknown model 'gpt5'" in done.stderr and "Traceback" not in done.stderr


def test_engine_threads_and_prefill_chunk_are_the_presets_unless_set(tiny_model):
    import torch

    from backend.app import load_generator

    before = torch.get_num_threads()  # loading in-process sets this thread's count
    try:
        for model, setting, threads, chunk in (("smollm2", 0, 2, 32), ("mini", 0, 1, 64), ("mini", 3, 3, 16)):
            config = Config(model=model, base_model=str(tiny_model[0]), adapter=str(tiny_model[1]),
                            engine_threads=setting, prefill_chunk=setting and 16, engine_process=False, max_batch=2)
            engine = load_generator(config).engine
            assert (engine.model.threads, engine.prefill_chunk) == (threads, chunk)
    finally:
        torch.set_num_threads(before)
