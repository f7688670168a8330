"""A lean decoding forward pass for a (LoRA-merged) LlamaForCausalLM, with a slotted KV cache.

Why not ``model.generate``: on this CPU the HF forward costs about twice this one per step
(see ../shared/FACTS.md: 43 ``F.linear`` calls per step, slow single-row products). Here the
QKV and gate/up weights are fused and pre-transposed, attention is plain matmul, and each
request owns a slot of one KV buffer, so many requests decode together in one batched step.

Slots are kept dense: active requests always occupy slots ``0..n-1`` (freeing a slot moves the
last one into it), so a decode step works on plain views of the cache with no gather.
tests/test_lean.py checks the logits against the HF forward.
"""

from __future__ import annotations

import torch


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class LeanLlama:
    def __init__(self, hf_model, max_slots: int, max_len: int):
        cfg = hf_model.config
        self.n_heads = cfg.num_attention_heads
        self.n_kv = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.eps = cfg.rms_norm_eps
        self.max_len = min(max_len, cfg.max_position_embeddings)
        self.max_slots = max_slots
        sd = {k: v.detach().float() for k, v in hf_model.state_dict().items()}
        self.embed = sd["model.embed_tokens.weight"]
        head = sd.get("lm_head.weight", self.embed)
        self.lm_head_t = head.t().contiguous()
        self.final_norm = sd["model.norm.weight"]
        self.layers = []
        for i in range(cfg.num_hidden_layers):
            p = f"model.layers.{i}."
            w = lambda name: sd[p + name]  # noqa: E731
            qkv = torch.cat([w("self_attn.q_proj.weight"), w("self_attn.k_proj.weight"), w("self_attn.v_proj.weight")])
            gate_up = torch.cat([w("mlp.gate_proj.weight"), w("mlp.up_proj.weight")])
            self.layers.append({
                "attn_norm": w("input_layernorm.weight"),
                "qkv_t": qkv.t().contiguous(),
                "o_t": w("self_attn.o_proj.weight").t().contiguous(),
                "mlp_norm": w("post_attention_layernorm.weight"),
                "gate_up_t": gate_up.t().contiguous(),
                "down_t": w("mlp.down_proj.weight").t().contiguous(),
            })
        self.intermediate = cfg.intermediate_size
        theta = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta", getattr(cfg, "rope_theta", 10000.0))
        inv_freq = 1.0 / (theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim))
        freqs = torch.outer(torch.arange(self.max_len, dtype=torch.float32), inv_freq)
        emb = torch.cat([freqs, freqs], dim=-1)
        self.cos, self.sin = emb.cos(), emb.sin()
        shape = (max_slots, self.n_kv, self.max_len, self.head_dim)
        self.k_cache = [torch.zeros(shape) for _ in self.layers]
        self.v_cache = [torch.zeros(shape) for _ in self.layers]

    @property
    def vocab_size(self) -> int:
        return self.embed.shape[0]

    def _attention_block(self, layer: dict, x: torch.Tensor, positions: torch.Tensor) -> tuple:
        """Project to q, k, v with rotary embeddings; shapes (batch, heads, tokens, head_dim)."""
        b, t, _ = x.shape
        h = _rms_norm(x, layer["attn_norm"], self.eps)
        qkv = h @ layer["qkv_t"]
        q_size, kv_size = self.n_heads * self.head_dim, self.n_kv * self.head_dim
        q, k, v = qkv.split([q_size, kv_size, kv_size], dim=-1)
        q = q.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = k.view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
        v = v.view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
        cos, sin = self.cos[positions].unsqueeze(1), self.sin[positions].unsqueeze(1)
        return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin, v

    def _attend(self, q, k, v, mask) -> torch.Tensor:
        if self.n_kv != self.n_heads:
            k = k.repeat_interleave(self.n_heads // self.n_kv, dim=1)
            v = v.repeat_interleave(self.n_heads // self.n_kv, dim=1)
        scores = (q @ k.transpose(-1, -2)) * (self.head_dim ** -0.5)
        scores = scores.masked_fill(mask, float("-inf"))
        return torch.softmax(scores, dim=-1) @ v

    def _finish_layer(self, layer: dict, x: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        b, _, t, _ = attn.shape
        x = x + attn.transpose(1, 2).reshape(b, t, -1) @ layer["o_t"]
        gate, up = (_rms_norm(x, layer["mlp_norm"], self.eps) @ layer["gate_up_t"]).split(self.intermediate, dim=-1)
        return x + (torch.nn.functional.silu(gate) * up) @ layer["down_t"]

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return _rms_norm(x, self.final_norm, self.eps) @ self.lm_head_t

    @torch.inference_mode()
    def prefill(self, slot: int, ids: list[int]) -> torch.Tensor:
        """Run a whole prompt into ``slot``; returns the next-token logits, shape (vocab,)."""
        t = len(ids)
        if not 0 < t < self.max_len:
            raise ValueError(f"prompt of {t} tokens does not fit the {self.max_len}-token context")
        positions = torch.arange(t)
        x = self.embed[torch.tensor(ids)].unsqueeze(0)
        causal = torch.ones(t, t, dtype=torch.bool).triu(1)
        for i, layer in enumerate(self.layers):
            q, k, v = self._attention_block(layer, x, positions.unsqueeze(0))
            self.k_cache[i][slot, :, :t] = k[0]
            self.v_cache[i][slot, :, :t] = v[0]
            x = self._finish_layer(layer, x, self._attend(q, k, v, causal))
        return self._logits(x[0, -1])

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """One step for slots ``0..n-1``: token ``tokens[s]`` sits at ``positions[s]``. Returns (n, vocab)."""
        n = tokens.shape[0]
        span = int(positions.max()) + 1
        rows = torch.arange(n)
        x = self.embed[tokens].unsqueeze(1)
        mask = (torch.arange(span).unsqueeze(0) > positions.unsqueeze(1)).view(n, 1, 1, span)
        for i, layer in enumerate(self.layers):
            q, k, v = self._attention_block(layer, x, positions.unsqueeze(1))
            self.k_cache[i][rows, :, positions] = k[:, :, 0]
            self.v_cache[i][rows, :, positions] = v[:, :, 0]
            keys, values = self.k_cache[i][:n, :, :span], self.v_cache[i][:n, :, :span]
            x = self._finish_layer(layer, x, self._attend(q, keys, values, mask))
        return self._logits(x[:, 0])

    def move_slot(self, src: int, dst: int, length: int) -> None:
        for cache in (*self.k_cache, *self.v_cache):
            cache[dst, :, :length] = cache[src, :, :length]
