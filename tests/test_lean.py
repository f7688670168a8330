"""The lean decoding forward matches the HF forward it was built from, in fp32 and in bf16.

bf16 tolerance: bf16 keeps 8 bits of mantissa, so each logit may move by a few hundredths of the
logits' spread. Stated here as: max |lean bf16 - HF fp32| <= 0.05 x (max - min of HF's logits),
and greedy tokens equal HF fp32's except after a step whose top-2 margin is under that bound.
"""

from __future__ import annotations

import pytest
import torch

from model.lean import LeanLlama, native_bf16

BF16_TOLERANCE = 0.05  # of the logits' range


def load_hf(model_dirs):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base, adapter = model_dirs
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().eval()


@pytest.fixture(scope="module")
def gqa_model(tmp_path_factory):
    """SmolLM2's shape in miniature: 9 heads over 3 KV heads, rope theta 100k, ChatML tokens."""
    from bench.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-gqa"), shape="chatml")


def test_the_gqa_model_really_has_grouped_heads_and_its_own_rope_theta(gqa_model):
    hf = load_hf(gqa_model)
    assert hf.config.num_attention_heads == 3 * hf.config.num_key_value_heads
    lean = LeanLlama(hf, max_slots=1, max_len=64)
    assert lean.group == 3 and lean.head_dim == 8
    inv_freq = 1.0 / (100000.0 ** (torch.arange(0, 8, 2).float() / 8))
    assert torch.allclose(lean.cos[5], torch.cat([5 * inv_freq] * 2).cos())


@pytest.mark.parametrize("which", ["tiny_model", "gqa_model"])
def test_prefill_and_batched_decode_match_hf(which, request):
    hf = load_hf(request.getfixturevalue(which))
    lean = LeanLlama(hf, max_slots=4, max_len=128)
    a, b = [1, 5, 9, 14, 20, 7, 3], [1, 30, 31]
    with torch.no_grad():
        ref = lambda ids: hf(input_ids=torch.tensor([ids])).logits[0, -1]  # noqa: E731
        assert torch.allclose(lean.prefill(0, a), ref(a), atol=1e-4)
        lean.prefill(1, b)
        step = lean.decode(torch.tensor([11, 12]), torch.tensor([len(a), len(b)]))
        assert torch.allclose(step[0], ref(a + [11]), atol=1e-4)
        assert torch.allclose(step[1], ref(b + [12]), atol=1e-4)


def test_a_prompt_prefilled_in_chunks_equals_one_prefill(gqa_model):
    hf = load_hf(gqa_model)
    lean = LeanLlama(hf, max_slots=2, max_len=128)
    ids = list(range(4, 40))
    whole = lean.prefill(0, ids)
    lean.prefill(1, ids[:10])
    lean.prefill(1, ids[10:25], start=10)
    assert torch.allclose(lean.prefill(1, ids[25:], start=25), whole, atol=1e-4)


def test_prompts_prefilled_together_equal_each_alone_and_decode_on_from_there(gqa_model):
    hf = load_hf(gqa_model)
    lean = LeanLlama(hf, max_slots=3, max_len=128)
    a, b, c = list(range(4, 30)), [1, 30, 31], list(range(50, 60))
    lean.prefill(2, c[:4])  # c's first 4 tokens are already in its slot (a chunk, or a prefix-cache copy)
    together = lean.prefill_rows(0, [(a, 0), (b, 0), (c[4:], 4)])  # padded to a's 26 tokens
    with torch.no_grad():
        ref = lambda ids: hf(input_ids=torch.tensor([ids])).logits[0, -1]  # noqa: E731
        for row, ids in enumerate((a, b, c)):
            assert torch.allclose(together[row], ref(ids), atol=1e-4)
        # b's padding sits past its last token: decoding writes over it and never reads it.
        step = lean.decode(torch.tensor([11, 12, 13]), torch.tensor([len(a), len(b), len(c)]))
        for row, (ids, token) in enumerate(((a, 11), (b, 12), (c, 13))):
            assert torch.allclose(step[row], ref(ids + [token]), atol=1e-4)


def test_moving_a_slot_keeps_its_cache(tiny_model):
    hf = load_hf(tiny_model)
    lean = LeanLlama(hf, max_slots=3, max_len=64)
    ids = [1, 4, 8, 15]
    lean.prefill(2, ids)
    lean.move_slot(2, 0, len(ids))
    with torch.no_grad():
        expected = hf(input_ids=torch.tensor([ids + [6]])).logits[0, -1]
    assert torch.allclose(lean.decode(torch.tensor([6]), torch.tensor([len(ids)]))[0], expected, atol=1e-4)


def greedy_lean(lean: LeanLlama, prompt: list[int], steps: int) -> list[int]:
    out = [int(lean.prefill(0, prompt).argmax())]
    for _ in range(steps - 1):
        out.append(int(lean.decode(torch.tensor([out[-1]]), torch.tensor([len(prompt) + len(out) - 1]))[0].argmax()))
    return out


def test_bf16_logits_and_greedy_tokens_stay_within_the_stated_tolerance(gqa_model):
    hf = load_hf(gqa_model)
    lean = LeanLlama(hf, max_slots=1, max_len=128, dtype=torch.bfloat16)
    # oneDNN's pre-packed path where this CPU has bf16 kernels; plain (emulated) bf16 matmuls where not.
    assert (lean.packed is not None) == native_bf16()
    prompt = [1, 30, 31, 44, 5, 9]
    with torch.no_grad():
        ref = hf(input_ids=torch.tensor([prompt])).logits[0, -1]
        bound = BF16_TOLERANCE * float(ref.max() - ref.min())
        assert float((lean.prefill(0, prompt) - ref).abs().max()) <= bound
        out = hf.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False, output_scores=True,
                          return_dict_in_generate=True, eos_token_id=None, pad_token_id=0)
    expected = out.sequences[0, len(prompt):].tolist()
    got = greedy_lean(lean, prompt, len(expected))
    for step, (g, e) in enumerate(zip(got, expected)):
        if g != e:
            top2 = out.scores[step][0].topk(2).values
            assert float(top2[0] - top2[1]) <= 2 * bound, f"step {step}: {g} != {e} with a clear margin"
            break


def test_every_pass_runs_on_the_engines_threads_but_a_compiled_step_of_one_row(tiny_model):
    lean = LeanLlama(load_hf(tiny_model), max_slots=2, max_len=64, threads=2)
    before = torch.get_num_threads()
    seen = []
    for name in ("step", "prefill_step"):
        run = getattr(lean, name)
        setattr(lean, name, lambda *args, run=run: seen.append(torch.get_num_threads()) or run(*args))
    torch.set_num_threads(1)
    try:
        for compiled in (False, True):  # as model/compiled.py marks it; the eager passes stand in
            lean.compiled = compiled
            lean.prefill_rows(0, [([1, 5, 9], 0), ([1, 7], 0)])
            lean.decode(torch.tensor([11]), torch.tensor([3]))
            lean.decode(torch.tensor([11, 12]), torch.tensor([3, 2]))
    finally:
        torch.set_num_threads(before)
    assert seen == [2, 2, 2, 2, 1, 2]
