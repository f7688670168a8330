"""Speed choices made at start-up: the engine's dtype (measured), and compiled passes.

* dtype ``auto`` times the model's largest projection in fp32 (MKL) and in bf16 (oneDNN,
  pre-packed) for one row and for a full batch, on this CPU, and keeps the faster. bf16 wins on
  CPUs with AVX512-BF16 or AMX. Where oneDNN has no bf16 kernels at all (an AVX2-only CPU),
  bf16 would be emulated and cannot even be packed, so ``auto`` takes fp32 without timing.
* ``compile_passes`` wraps the decode step and the prefill pass in ``torch.compile`` with
  inductor *freezing*: the weights become constants, so inductor pre-packs them for oneDNN and
  fuses the norms, rotary embedding and SiLU around the matmuls, and a C++ wrapper makes the
  calls. The batch, the prompt length and the attention span are *dynamic* dimensions, so two
  graphs serve each pass: one for a single row (specialised, as size-1 dimensions always are)
  and one for 2..max_batch rows. Per-bucket static graphs were the other option; they cost one
  compile per bucket and pad every step up to its bucket. The one-row decode step is compiled
  with max-autotune, which times inductor's own C++ GEMM kernels against oneDNN for each
  projection and keeps the faster: for one row, its own (SmolLM2: 2x the step).
* ``warm_up`` runs those graphs once on the engine thread, before the server says it is ready.
  Inductor's graph cache cannot keep graphs whose constants are oneDNN-packed weights, so every
  start traces and lowers them again; but the C++ it generates is the same from start to start
  (:func:`_stable_kernel_sources`), so its compiled libraries and the autotuning results come
  from the on-disk cache (``TORCHINDUCTOR_CACHE_DIR``): a second start of mini's server is ready
  in 63 s instead of 105, SmolLM2's in 330 s instead of 418.
"""

from __future__ import annotations

import functools
import logging
import time

import torch
from torch import nn

from model.lean import native_bf16

log = logging.getLogger("joey.compiled")

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _best_of(fn, reps: int = 10, rounds: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - started) / reps)
    return best


def measure_dtypes(weight: torch.Tensor, batch: int) -> dict[str, float]:
    """Seconds for ``x @ weight.T`` with 1 and ``batch`` rows, fp32 and bf16 (summed per dtype)."""
    weight = weight.float()
    packed = torch.ops.mkldnn._reorder_linear_weight(weight.bfloat16(), None)
    times = {"fp32": 0.0, "bf16": 0.0}
    with torch.inference_mode():
        for rows in (1, batch):
            x = torch.randn(rows, weight.shape[1])
            xb = x.bfloat16()
            times["fp32"] += _best_of(lambda: torch.nn.functional.linear(x, weight))
            times["bf16"] += _best_of(lambda: torch.ops.mkldnn._linear_pointwise(xb, packed, None, "none", [], ""))
    return times


def choose_dtype(setting: str, hf_model, batch: int) -> torch.dtype:
    """``fp32``, ``bf16``, or ``auto``: the faster of the two on this CPU, by a timing taken now."""
    if setting == "bf16" and not native_bf16():
        log.warning("engine dtype bf16: this CPU has no native bf16 kernels, so bf16 is emulated "
                    "and slow; fp32 (or auto) is faster here")
    if setting in DTYPES:
        return DTYPES[setting]
    if setting != "auto":
        raise ValueError(f"engine dtype {setting!r}: expected auto, bf16 or fp32")
    if not native_bf16():
        log.info("engine dtype auto: this CPU has no native bf16 kernels (AVX512 or AMX): fp32")
        return torch.float32
    weight = hf_model.model.layers[0].mlp.gate_proj.weight.detach()
    times = measure_dtypes(weight, batch)
    chosen = min(times, key=times.get)
    log.info("engine dtype auto: fp32 %.0f us, bf16 %.0f us for one projection (1 + %d rows): %s",
             times["fp32"] * 1e6, times["bf16"] * 1e6, batch, chosen)
    return DTYPES[chosen]


class _Weights(nn.Module):
    """A pass of the lean model as a module, so freezing sees its weights as parameters. Each pass
    has its own class: dynamo keeps compiled graphs per code object, and passes sharing one
    ``forward`` would share its cache (and its recompile limit)."""

    def __init__(self, lean):
        super().__init__()
        self.net = lean.net
        self.__dict__["lean"] = lean  # not a submodule: only the weights in net are frozen


class _Decode(_Weights):
    def forward(self, tokens, positions, mask, k_caches, v_caches):
        return self.lean.decode_step(tokens, positions, mask, k_caches, v_caches)


class _DecodeOne(_Weights):
    """The one-row decode step, compiled with max-autotune: for a single row inductor's C++ GEMM
    templates beat oneDNN (one step: SmolLM2 12.3 against 25 ms, mini 0.58 against 0.84); for
    many rows, with the batch dynamic, they were twice as slow, so ``_Decode`` does without."""

    def forward(self, tokens, positions, mask, k_caches, v_caches):
        return self.lean.decode_step(tokens, positions, mask, k_caches, v_caches)


class _Prefill(_Weights):
    def forward(self, ids, positions, mask, last, slots, k_caches, v_caches):
        return self.lean.prefill_pass(ids, positions, mask, last, slots, k_caches, v_caches)


def _on_this_thread() -> None:
    """Inductor's settings are per thread, and the passes compile on the engine thread. Set on
    the thread that loaded the model, or passed as torch.compile options (which do not reach the
    freezing passes), freezing was silently off and every step ran unpacked bf16 matmuls: 2.3x
    slower for mini at batch 1 (tests/test_compiled.py checks that it is on)."""
    import torch._inductor.config as inductor
    from torch._inductor import select_algorithm

    if not inductor.freezing:
        _stable_kernel_sources()
        inductor.freezing = True
        # Its messages name Python functions by address, so the C++ source changed at every
        # start; they check inductor's own shape inference, and tests/test_compiled.py checks
        # the compiled passes against eager logits.
        inductor.size_asserts = False
        inductor.cpp_wrapper = True  # the graph's calls made from C++, not Python: a little faster
        # The graph cache keys frozen weights by shape alone, and keeps with a graph the
        # constants that freezing derived from them. Where those are plain tensors (bf16 on a
        # CPU without bf16 kernels), a second model of one shape got the first one's weights
        # (tests/test_compiled.py). Graphs holding oneDNN-packed weights were never cached, so
        # the native paths lose nothing; the C++ libraries and autotuning stay cached on disk.
        inductor.fx_graph_cache = False
        inductor.max_autotune_report_choices_stats = False  # autotuning's tables on stderr, unasked
        select_algorithm.PRINT_AUTOTUNE = False


def _stable_kernel_sources() -> None:
    """Name each frozen constant in the generated C++ by its name, dtype and shape only.

    Works around inductor's ``GraphLowering.allocate_non_dup_const_name``, which ends each
    constant's ``constant_reprs`` entry with ``hash(tensor)``, its address; the C++ wrapper heads
    the source with those entries, so the source, and with it the cache key of the compiled
    library, changed at every start, and each start compiled again C++ it had compiled before. The
    constants are not in the library: they are passed in at every call, from the Python module that
    inductor loads afresh for each graph, so graphs with equal sources can share a library.
    ``GraphLowering`` is torch's private code: hence the exact torch pin in pyproject.toml, and
    tests/test_pinned_internals.py, which fails when the method wrapped here changes.
    """
    from torch._inductor.graph import GraphLowering

    allocate = GraphLowering.allocate_non_dup_const_name
    if getattr(allocate, "stable", False):
        return

    @functools.wraps(allocate)
    def allocate_stable(self, name, data):
        known = len(self.constant_reprs)
        name = allocate(self, name, data)
        if len(self.constant_reprs) > known:  # a new constant, not one found again
            self.constant_reprs[name] = self.constant_reprs[name].rsplit(" ", 1)[0]
        return name

    allocate_stable.stable = True
    GraphLowering.allocate_non_dup_const_name = allocate_stable


def _dynamic(*dims) -> None:
    """Mark (tensor, dim) pairs dynamic; a size-1 dimension stays specialised (its own graph)."""
    for t, dim in dims:
        if t.shape[dim] > 1:
            torch._dynamo.mark_dynamic(t, dim)


def compile_passes(lean) -> None:
    """Put a compiled decode step and prefill pass on ``lean`` (compiled lazily: call :func:`warm_up`)."""
    step_one = torch.compile(_DecodeOne(lean), dynamic=False, mode="max-autotune-no-cudagraphs")
    step_many = torch.compile(_Decode(lean), dynamic=False)
    prefill = torch.compile(_Prefill(lean), dynamic=False)

    def compiled_step(tokens, positions, mask, k_caches, v_caches):
        _on_this_thread()
        _dynamic((tokens, 0), (positions, 0), (mask, 0), (mask, 3))
        step = step_one if tokens.shape[0] == 1 else step_many
        return step(tokens, positions, mask, k_caches, v_caches)

    def compiled_prefill(ids, positions, mask, last, slots, k_caches, v_caches):
        # A one-token chunk: rare (a prompt lacking only its last token joins a decode step
        # instead, model/engine.py), and not worth two more graphs.
        if ids.shape[1] == 1:
            return lean.prefill_pass(ids, positions, mask, last, slots, k_caches, v_caches)
        _on_this_thread()
        _dynamic((ids, 0), (ids, 1), (positions, 0), (positions, 1), (mask, 0), (mask, 2), (mask, 3), (last, 0),
                 (slots, 0))
        return prefill(ids, positions, mask, last, slots, k_caches, v_caches)

    lean.step, lean.prefill_step, lean.compiled = compiled_step, compiled_prefill, True
    # Freezing packs the graphs' own copy of the weights. The eager pre-packed copy would now
    # serve only one-token prefill chunks (rare), so it goes: 256 MiB for SmolLM2.
    lean.packed = None


def warm_up(lean, max_batch: int) -> float:
    """Run prefill passes and decode steps of 1 and of 2..max_batch rows once; returns the seconds taken.

    Writes only to cache slots that no request holds yet (the engine has not started).
    """
    started = time.perf_counter()
    with torch.inference_mode():
        lean.prefill(0, [0, 1, 2])
        if max_batch > 1:
            lean.prefill_rows(0, [([0, 1, 2], 0), ([0, 1], 0)])
        for rows in sorted({1, min(2, max_batch), max_batch}):
            lean.decode(torch.zeros(rows, dtype=torch.long), torch.full((rows,), 3))
    seconds = time.perf_counter() - started
    log.info("engine warm-up (%s) took %.1f s", "compiled" if lean.compiled else "eager", seconds)
    return seconds
