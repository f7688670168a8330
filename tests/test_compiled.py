"""Start-up speed choices: the dtype setting, and a compiled decode step that equals the eager one."""

from __future__ import annotations

import pytest
import torch

from model.compiled import choose_dtype, compile_decode, warm_up
from model.lean import LeanLlama
from tests.test_lean import load_hf


def test_dtype_setting_is_obeyed_and_auto_picks_one_of_the_two(tiny_model):
    hf = load_hf(tiny_model)
    assert choose_dtype("fp32", hf, 4) is torch.float32
    assert choose_dtype("bf16", hf, 4) is torch.bfloat16
    assert choose_dtype("auto", hf, 4) in (torch.float32, torch.bfloat16)
    with pytest.raises(ValueError, match="expected auto, bf16 or fp32"):
        choose_dtype("fp16", hf, 4)


def test_the_compiled_step_gives_the_eager_logits_for_one_row_and_for_a_batch(tiny_model):
    hf = load_hf(tiny_model)
    eager, compiled = (LeanLlama(hf, max_slots=3, max_len=64, dtype=torch.bfloat16) for _ in range(2))
    compile_decode(compiled)
    warm_up(compiled, 3)  # compiles the one-row and the many-row graphs
    prompts = [[1, 5, 9, 14], [1, 30, 31], [7, 8, 9, 10, 11]]
    for lean in (eager, compiled):
        for slot, ids in enumerate(prompts):
            lean.prefill(slot, ids)
    for rows in (1, 3, 2):  # 2 after 3: the many-row graph takes any batch size without recompiling
        tokens, positions = torch.tensor([11, 12, 13][:rows]), torch.tensor([len(p) for p in prompts][:rows])
        want = eager.decode(tokens, positions)
        got = compiled.decode(tokens, positions)
        bound = 0.05 * float(want.max() - want.min())  # the bf16 tolerance of tests/test_lean.py
        assert got.shape == want.shape and float((got - want).abs().max()) <= bound
