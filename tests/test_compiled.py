"""Start-up speed choices: the dtype setting, and compiled passes that equal the eager ones."""

from __future__ import annotations

import threading

import pytest
import torch
from torch._dynamo.utils import counters

from model.compiled import choose_dtype, compile_passes, warm_up
from model.lean import LeanLlama, native_bf16
from tests.test_lean import load_hf


def test_dtype_setting_is_obeyed_and_auto_picks_one_of_the_two(tiny_model):
    hf = load_hf(tiny_model)
    assert choose_dtype("fp32", hf, 4) is torch.float32
    assert choose_dtype("bf16", hf, 4) is torch.bfloat16
    if native_bf16():
        assert choose_dtype("auto", hf, 4) in (torch.float32, torch.bfloat16)
    else:  # bf16 would be emulated here (an AVX2-only CPU): auto does not even time it
        assert choose_dtype("auto", hf, 4) is torch.float32
    with pytest.raises(ValueError, match="expected auto, bf16 or fp32"):
        choose_dtype("fp16", hf, 4)


def test_passes_compiled_on_the_engines_own_thread_run_packed_and_give_the_eager_logits(tiny_model):
    """The engine compiles on its own thread, and inductor's settings are per thread: freezing set
    on the thread that loaded the model was silently off there, and every step ran unpacked bf16
    matmuls (2.3x slower for mini at batch 1). Packed weights are the sign that freezing ran: in
    bf16 where oneDNN has bf16 kernels, else in fp32 (MKL's packing), as dtype auto would choose.
    The same compile then answers one row and a batch as the eager passes do."""
    dtype = torch.bfloat16 if native_bf16() else torch.float32
    hf = load_hf(tiny_model)
    eager, compiled = (LeanLlama(hf, max_slots=3, max_len=64, dtype=dtype) for _ in range(2))
    compile_passes(compiled)
    failures = []

    def engine_thread():
        try:
            torch._inductor.config.force_disable_caches = True  # this thread only: the passes must run
            warm_up(compiled, 3)  # compiles the one-row and the many-row graphs of both passes
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    counters.clear()
    thread = threading.Thread(target=engine_thread)
    thread.start()
    thread.join()
    assert not failures
    assert counters["inductor"]["mkldnn_linear_weight_pack_matcher_count"] > 0
    prompts = [[1, 5, 9, 14], [1, 30, 31], [7, 8, 9, 10, 11]]

    def close(got, want):
        bound = 0.05 * float(want.max() - want.min())  # the bf16 tolerance of tests/test_lean.py
        return got.shape == want.shape and float((got - want).abs().max()) <= bound

    # One prompt alone, then the rest as one padded pass that goes on after a cached start.
    firsts = [lean.prefill(0, prompts[0]) for lean in (eager, compiled)]
    assert close(firsts[1], firsts[0])
    for lean in (eager, compiled):
        lean.prefill_rows(1, [(prompts[1][:1], 0), (prompts[2][:2], 0)])
    rest = [lean.prefill_rows(1, [(prompts[1][1:], 1), (prompts[2][2:], 2)]) for lean in (eager, compiled)]
    assert close(rest[1], rest[0])
    for rows in (1, 3, 2):  # 2 after 3: the many-row graph takes any batch size without recompiling
        tokens, positions = torch.tensor([11, 12, 13][:rows]), torch.tensor([len(p) for p in prompts][:rows])
        assert close(compiled.decode(tokens, positions), eager.decode(tokens, positions))
    # A one-token chunk runs eager beside the compiled graphs, without the eager packed weights.
    assert compiled.packed is None
    one = [lean.prefill(2, [5], start=len(prompts[2]) + 1) for lean in (eager, compiled)]
    assert close(one[1], one[0])


def test_a_second_compile_reuses_the_compiled_code_and_keeps_its_own_weights(tiny_model, tmp_path, monkeypatch):
    """Inductor names each frozen weight in the C++ it generates; with the weight's address in
    that name, every start compiled the same C++ again (mini: 14 s of its start). The weights are
    passed in at each call, so two models of one shape share the code, not the weights."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    first, second = load_hf(tiny_model), load_hf(tiny_model)
    torch.manual_seed(0)
    with torch.no_grad():
        for weight in second.parameters():
            weight.add_(0.1 * torch.randn_like(weight))
    libraries = []
    for hf in (first, second):
        lean = LeanLlama(hf, max_slots=2, max_len=32, dtype=torch.bfloat16)
        compile_passes(lean)
        warm_up(lean, 1)
        libraries.append(sorted(tmp_path.rglob("*.so")))
    assert libraries[0] and libraries[1] == libraries[0]  # nothing compiled the second time

    eager = LeanLlama(second, max_slots=2, max_len=32, dtype=torch.bfloat16)
    want, got = ([model.prefill(0, [1, 5, 9]), model.decode(torch.tensor([11]), torch.tensor([3]))[0]]
                 for model in (eager, lean))
    for g, w in zip(got, want):
        assert float((g - w).abs().max()) <= 0.05 * float(w.max() - w.min())  # the second model's weights
