"""The lean decoding forward matches the HF forward it was built from."""

from __future__ import annotations

import torch

from model.lean import LeanLlama


def load_hf(tiny_model):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base, adapter = tiny_model
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().eval()


def test_prefill_and_batched_decode_match_hf(tiny_model):
    hf = load_hf(tiny_model)
    lean = LeanLlama(hf, max_slots=4, max_len=128)
    a, b = [1, 5, 9, 14, 20, 7, 3], [1, 30, 31]
    with torch.no_grad():
        ref = lambda ids: hf(input_ids=torch.tensor([ids])).logits[0, -1]  # noqa: E731
        assert torch.allclose(lean.prefill(0, a), ref(a), atol=1e-4)
        lean.prefill(1, b)
        step = lean.decode(torch.tensor([11, 12]), torch.tensor([len(a), len(b)]))
        assert torch.allclose(step[0], ref(a + [11]), atol=1e-4)
        assert torch.allclose(step[1], ref(b + [12]), atol=1e-4)


def test_moving_a_slot_keeps_its_cache(tiny_model):
    hf = load_hf(tiny_model)
    lean = LeanLlama(hf, max_slots=3, max_len=64)
    ids = [1, 4, 8, 15]
    lean.prefill(2, ids)
    lean.move_slot(2, 0, len(ids))
    with torch.no_grad():
        expected = hf(input_ids=torch.tensor([ids + [6]])).logits[0, -1]
    assert torch.allclose(lean.decode(torch.tensor([6]), torch.tensor([len(ids)]))[0], expected, atol=1e-4)
