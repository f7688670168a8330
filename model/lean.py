"""A lean decoding forward pass for a (LoRA-merged) LlamaForCausalLM, with a slotted KV cache.

Why not ``model.generate``: on this CPU the HF forward costs about twice this one per step
(see ../shared/FACTS.md: many ``F.linear`` calls on single rows, slow through MKL). Here the QKV
and gate/up weights are fused, bf16 weights are pre-packed for oneDNN (its bf16 kernels use the
CPU's AVX512-BF16 units), grouped-query attention reads each KV head once (no
``repeat_interleave`` copy), and each request owns a slot of one KV cache, so many requests
decode together in one batched step.

Slots are kept dense: decoding requests occupy slots ``0..n-1`` (freeing a slot moves the last
one into it), so a decode step works on plain views of the cache with no gather (and, compiled,
no copy: :func:`_attend_by_reduction`), and new keys and values are written in place with
``index_copy_`` (which a compiled graph keeps in place too).

tests/test_lean.py checks the logits against the HF forward, in fp32 and in bf16.
"""

from __future__ import annotations

import torch
from torch import nn


def native_bf16() -> bool:
    """Whether oneDNN has bf16 kernels on this CPU (AVX512 BW/VL/DQ, AVX-NE-CONVERT or AMX).
    Without them it cannot pre-pack bf16 weights at all, and a bf16 matmul is emulated: on an
    AVX2-only laptop CPU, bf16 still runs, unpacked, and fp32 is the one to choose."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # As HF does: the statistics in fp32 whatever the weights' dtype.
    h = x.float()
    return weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _attend_by_reduction(q, keys, values, bias, scale: float) -> torch.Tensor:
    """Attention as broadcast products and sums, for decode steps in compiled graphs.

    The cache views ``keys``/``values`` stop at ``span``, short of the cache's length, so their
    rows are not dense, and oneDNN's batched matmul copies such inputs first. Written as sums,
    inductor makes each one loop that reads the cache in place (docs/benchmarks.md has the step
    times). ``q`` is made a buffer of its own first: left to fusion, inductor recomputed its rotary
    embedding inside the loop, once per key position.
    Eager, the sums would materialise every product, and prefill passes (many query rows per
    slot: real matrices) are what matmuls are for, so both keep the matmuls.
    """
    import torch._inductor.test_operators  # noqa: F401  (defines the realize op, which the lowering honours)

    q = torch.ops._inductor_test.realize(q.float() * scale)
    scores = bias + (q.unsqueeze(3) * keys.unsqueeze(2)).sum(-1)
    return (torch.softmax(scores, dim=-1).unsqueeze(-1) * values.unsqueeze(2)).sum(3)


class _Net(nn.Module):
    """The weights as a module, so ``torch.compile`` with inductor freezing can fold and pack them."""

    def __init__(self, hf_model, dtype: torch.dtype):
        super().__init__()
        cfg = hf_model.config
        sd = {k: v.detach().to(dtype) for k, v in hf_model.state_dict().items()}
        param = lambda t: nn.Parameter(t.contiguous(), requires_grad=False)  # noqa: E731
        self.embed = param(sd["model.embed_tokens.weight"])
        self.lm_head = param(sd["lm_head.weight"]) if "lm_head.weight" in sd and not cfg.tie_word_embeddings \
            else self.embed
        self.final_norm = param(sd["model.norm.weight"])
        self.layers = nn.ModuleList()
        for i in range(cfg.num_hidden_layers):
            w = lambda name: sd[f"model.layers.{i}.{name}"]  # noqa: E731
            layer = nn.Module()
            layer.attn_norm = param(w("input_layernorm.weight"))
            layer.qkv = param(torch.cat([w("self_attn.q_proj.weight"), w("self_attn.k_proj.weight"),
                                         w("self_attn.v_proj.weight")]))
            layer.o = param(w("self_attn.o_proj.weight"))
            layer.mlp_norm = param(w("post_attention_layernorm.weight"))
            layer.gate_up = param(torch.cat([w("mlp.gate_proj.weight"), w("mlp.up_proj.weight")]))
            layer.down = param(w("mlp.down_proj.weight"))
            self.layers.append(layer)


class LeanLlama:
    """The forward pass. ``dtype`` is float32 or bfloat16; logits always come out as float32."""

    LINEARS = ("qkv", "o", "gate_up", "down")

    def __init__(self, hf_model, max_slots: int, max_len: int, dtype: torch.dtype = torch.float32, threads: int = 1):
        cfg = hf_model.config
        self.threads = threads  # torch threads of a pass, but for a compiled one-row step (_threads_for)
        self.n_heads, self.n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.group = self.n_heads // self.n_kv
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.eps, self.intermediate, self.dtype = cfg.rms_norm_eps, cfg.intermediate_size, dtype
        self.max_len = min(max_len, cfg.max_position_embeddings)
        self.max_slots = max_slots
        self.net = _Net(hf_model, dtype)
        # oneDNN's pre-packed bf16 weights: about 2x plain bf16 matmul for one row on this CPU.
        # None in fp32 (MKL is fine there), and where oneDNN has no bf16 kernels to pack for.
        # Compiled passes pack their own, and drop this one.
        self.packed: dict | None = self._pack() if dtype == torch.bfloat16 and native_bf16() else None
        rope = cfg.rope_parameters if getattr(cfg, "rope_parameters", None) else {}
        theta = rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))
        inv_freq = 1.0 / (theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim))
        freqs = torch.outer(torch.arange(self.max_len, dtype=torch.float32), inv_freq)
        emb = torch.cat([freqs, freqs], dim=-1)
        self.cos, self.sin = emb.cos().to(dtype), emb.sin().to(dtype)
        shape = (max_slots, self.n_kv, self.max_len, self.head_dim)
        self.k_cache = [torch.zeros(shape, dtype=dtype) for _ in self.net.layers]
        self.v_cache = [torch.zeros(shape, dtype=dtype) for _ in self.net.layers]
        # model/compiled.py may put compiled versions of these two here, and set compiled.
        self.step, self.prefill_step, self.compiled = self.decode_step, self.prefill_pass, False

    def _threads_for(self, positions: int) -> None:
        """Set the calling thread's torch threads for a pass computing ``positions`` positions
        (a step's rows, or a prefill pass's rows times its width).

        A compiled step of one row runs on one thread: max-autotune gave it inductor's own GEMM
        kernels, which read the weights about as fast alone. Every other pass runs on
        ``threads``: many positions are arithmetic, and an eager row goes through oneDNN, which two
        threads speed up (docs/benchmarks.md, "Threads"). A compiled graph is built for the thread
        count it first runs with (dynamo guards on it), and each keeps its own.
        """
        wanted = 1 if positions == 1 and self.compiled else self.threads
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)

    @property
    def vocab_size(self) -> int:
        return self.net.embed.shape[0]

    def cache_bytes(self) -> int:
        return sum(c.numel() * c.element_size() for c in (*self.k_cache, *self.v_cache))

    def _pack(self) -> dict:
        pack = torch.ops.mkldnn._reorder_linear_weight
        packed = {(i, name): pack(getattr(layer, name), None) for i, layer in enumerate(self.net.layers)
                  for name in self.LINEARS}
        packed["lm_head"] = pack(self.net.lm_head, None)
        return packed

    def _linear(self, x: torch.Tensor, key, weight: torch.Tensor) -> torch.Tensor:
        if self.packed is not None and not torch.compiler.is_compiling():
            return torch.ops.mkldnn._linear_pointwise(x, self.packed[key], None, "none", [], "")
        return torch.nn.functional.linear(x, weight)

    def _forward(self, x, positions, mask, k_caches, v_caches, slots=None) -> torch.Tensor:
        """All layers for queries ``x`` (b, t, hidden) at ``positions`` (b, t), row i in cache slot
        ``slots[i]`` (None: slots 0..b-1, the decode rows), attending to their first ``span`` cache
        positions under ``mask`` (b, 1, t, span; True = hidden). What every layer shares is
        computed once, here."""
        b, t, _ = x.shape
        cos, sin = self.cos[positions].unsqueeze(1), self.sin[positions].unsqueeze(1)
        # Flat row (slot, kv head, position) of each new key/value in a cache viewed as (-1, head_dim).
        slot_ids = torch.arange(b) if slots is None else slots
        rows = slot_ids.view(b, 1, 1) * self.n_kv + torch.arange(self.n_kv).view(1, -1, 1)
        flat = (rows * self.max_len + positions.view(b, 1, t)).reshape(-1)
        # Grouped-query attention: the query heads that share a KV head become extra query rows,
        # so the mask repeats per group; additive, so scaling and masking are one op.
        bias = torch.zeros(mask.shape).masked_fill(mask, float("-inf")).repeat(1, 1, self.group, 1)
        for i, layer in enumerate(self.net.layers):
            x = self._layer(i, layer, x, cos, sin, flat, bias, k_caches[i], v_caches[i], slots)
        return x

    def _layer(self, i: int, layer, x, cos, sin, flat, bias, k_cache, v_cache, slots):
        b, t, _ = x.shape
        hd, heads, span = self.head_dim, self.n_heads + self.n_kv, bias.shape[-1]
        qkv = self._linear(_rms_norm(x, layer.attn_norm, self.eps), (i, "qkv"), layer.qkv)
        qk, v = qkv.split([heads * hd, self.n_kv * hd], dim=-1)
        qk = qk.view(b, t, heads, hd).transpose(1, 2)
        qk = qk * cos + _rotate_half(qk) * sin  # rotary embedding on queries and keys at once
        q, k = qk.split([self.n_heads, self.n_kv], dim=1)
        k_cache.view(-1, hd).index_copy_(0, flat, k.reshape(-1, hd))
        v_cache.view(-1, hd).index_copy_(0, flat, v.view(b, t, self.n_kv, hd).transpose(1, 2).reshape(-1, hd))
        # Decode rows are the dense slots 0..b-1: a view. Prompt rows sit anywhere: a gather.
        if slots is None:
            keys, values = k_cache[:b, :, :span], v_cache[:b, :, :span]
        else:
            keys, values = k_cache[slots, :, :span], v_cache[slots, :, :span]
        q = q.reshape(b, self.n_kv, self.group * t, hd)
        if slots is None and torch.compiler.is_compiling():
            attn = _attend_by_reduction(q, keys, values, bias, hd ** -0.5).to(self.dtype)
        else:
            scores = torch.add(bias, (q @ keys.transpose(-1, -2)).float(), alpha=hd ** -0.5)
            attn = torch.softmax(scores, dim=-1).to(self.dtype) @ values
        attn = attn.view(b, self.n_heads, t, hd).transpose(1, 2).reshape(b, t, -1)
        x = x + self._linear(attn, (i, "o"), layer.o)
        h = self._linear(_rms_norm(x, layer.mlp_norm, self.eps), (i, "gate_up"), layer.gate_up)
        gate, up = h.split(self.intermediate, dim=-1)
        return x + self._linear(torch.nn.functional.silu(gate) * up, (i, "down"), layer.down)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._linear(_rms_norm(x, self.net.final_norm, self.eps), "lm_head", self.net.lm_head).float()

    def fits(self, length: int) -> bool:
        """Whether ``length`` tokens leave a cache position for the token after them."""
        return length < self.max_len - 1

    def check_fits(self, length: int) -> None:
        if not self.fits(length):
            raise ValueError(f"prompt of {length} tokens does not fit the {self.max_len}-token context")

    def prefill(self, slot: int, ids: list[int], start: int = 0) -> torch.Tensor:
        """Run prompt tokens ``ids`` at positions ``start..`` into ``slot``, after the ``start``
        tokens already there (so a long prompt can go in chunks). Returns the last token's
        next-token logits, shape (vocab,)."""
        return self.prefill_rows(slot, [(ids, start)])[0]

    @torch.inference_mode()
    def prefill_rows(self, first: int, rows: list[tuple[list[int], int]]) -> torch.Tensor:
        """``prefill`` for several prompts in one pass: row i's tokens go into slot ``first + i``
        after its ``start`` tokens. Rows are padded to the longest; a pad's keys land past the
        row's last token, where no real query looks, and decoding overwrites them. One pass
        instead of one per prompt: for a small model the per-pass overhead is most of a short
        prompt's cost. Returns each row's last-token logits, shape (rows, vocab)."""
        t = max(len(ids) for ids, _ in rows)
        for ids, start in rows:
            if not ids:
                raise ValueError("a prefill row needs at least one token")
            self.check_fits(start + t)  # a row's padding runs to start + t too
        starts = torch.tensor([start for _, start in rows]).unsqueeze(1)
        positions = starts + torch.arange(t).unsqueeze(0)
        span = int(positions.max()) + 1
        mask = (torch.arange(span).view(1, 1, span) > positions.unsqueeze(2)).unsqueeze(1)
        padded = torch.tensor([ids + [0] * (t - len(ids)) for ids, _ in rows])
        last = torch.tensor([len(ids) - 1 for ids, _ in rows])
        slots = torch.arange(first, first + len(rows))
        self._threads_for(len(rows) * t)
        return self.prefill_step(padded, positions, mask, last, slots, self.k_cache, self.v_cache)

    def prefill_pass(self, ids, positions, mask, last, slots, k_caches, v_caches):
        """The tensor part of ``prefill_rows``, which model/compiled.py may compile."""
        x = self._forward(self.net.embed[ids], positions, mask, k_caches, v_caches, slots)
        return self._logits(x[torch.arange(ids.shape[0]), last])

    def decode_step(self, tokens, positions, mask, k_caches, v_caches):
        b = tokens.shape[0]
        x = self._forward(self.net.embed[tokens].unsqueeze(1), positions.view(b, 1), mask, k_caches, v_caches)
        return self._logits(x[:, 0])

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """One step for slots ``0..n-1``: token ``tokens[s]`` sits at ``positions[s]``. Returns (n, vocab)."""
        n = tokens.shape[0]
        span = int(positions.max()) + 1
        mask = (torch.arange(span).unsqueeze(0) > positions.unsqueeze(1)).view(n, 1, 1, span)
        self._threads_for(n)
        return self.step(tokens, positions, mask, self.k_cache, self.v_cache)

    def move_slot(self, src: int, dst: int, length: int) -> None:
        for cache in (*self.k_cache, *self.v_cache):
            cache[dst, :, :length] = cache[src, :, :length]
