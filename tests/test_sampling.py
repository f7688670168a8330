"""Next-token choice: greedy rows, the repetition penalty, and sampling within top-k and top-p."""

from __future__ import annotations

from collections import Counter

import torch

from model.sampling import GREEDY, GenerationParams, choose

VOCAB = 50


def draws(logits_row: torch.Tensor, params: GenerationParams, times: int, seed: int = 0) -> Counter:
    """``times`` tokens for one row, drawn as ``times`` rows of one batch (each its own generator)."""
    logits = logits_row.repeat(times, 1)
    seen = torch.zeros(times, VOCAB, dtype=torch.bool)
    generators = [torch.Generator().manual_seed(seed + i) for i in range(times)]
    return Counter(choose(logits, seen, [params] * times, generators))


def test_greedy_rows_take_the_best_token_beside_sampled_rows():
    logits = torch.randn(4, VOCAB)
    best = logits.argmax(dim=1).tolist()
    params = [GREEDY, GenerationParams(), GREEDY, GenerationParams(top_k=1)]
    tokens = choose(logits.clone(), torch.zeros(4, VOCAB, dtype=torch.bool), params,
                    [torch.Generator().manual_seed(i) for i in range(4)])
    assert [tokens[i] for i in (0, 2, 3)] == [best[i] for i in (0, 2, 3)]  # top_k=1 leaves only the best
    assert 0 <= tokens[1] < VOCAB


def test_the_penalty_shrinks_seen_tokens_of_either_sign():
    logits = torch.full((2, VOCAB), -10.0)
    logits[0, 3], logits[0, 4] = 2.0, 1.9  # seen 3 becomes 2.0 / 1.1 = 1.82 < 1.9
    logits[1, 5], logits[1, 6] = -1.0, -1.05  # seen 5 becomes -1.0 * 1.1 = -1.1 < -1.05
    seen = torch.zeros(2, VOCAB, dtype=torch.bool)
    seen[0, 3] = seen[1, 5] = True
    penalised = GenerationParams(temperature=0.0, repetition_penalty=1.1)
    assert choose(logits.clone(), seen, [penalised] * 2, [torch.Generator()] * 2) == [4, 6]
    assert choose(logits.clone(), seen, [GREEDY] * 2, [torch.Generator()] * 2) == [3, 5]


def test_draws_follow_the_distribution_and_stay_within_top_k_and_top_p():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05] + [0.0] * (VOCAB - 4))
    logits = torch.log(probs.clamp(min=1e-12))
    plain = draws(logits, GenerationParams(temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0), 4000)
    assert set(plain) <= {0, 1, 2, 3}
    for token, p in enumerate([0.5, 0.3, 0.15, 0.05]):
        assert abs(plain[token] / 4000 - p) < 0.03, (token, plain)
    assert set(draws(logits, GenerationParams(temperature=1.0, top_k=2, top_p=1.0), 500)) == {0, 1}
    # The nucleus of 0.7: 0.5 alone is short of it, 0.5 + 0.3 reaches it, so tokens 0 and 1.
    assert set(draws(logits, GenerationParams(temperature=1.0, top_k=0, top_p=0.7), 500)) == {0, 1}


def test_a_seed_gives_the_same_tokens_and_another_seed_other_ones():
    logits = torch.randn(VOCAB)
    params = GenerationParams(temperature=1.5, top_k=0, top_p=1.0)
    assert draws(logits, params, 200, seed=7) == draws(logits, params, 200, seed=7)
    assert draws(logits, params, 200, seed=7) != draws(logits, params, 200, seed=8)
