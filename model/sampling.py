"""Generation parameters and next-token choice for one request."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 60  # a reply stops here at the latest (finish reason "length")
    min_new_tokens: int = 1  # end-of-turn is not allowed before this, so a reply is never empty
    temperature: float = 0.7  # <= 0 means greedy; 0.7 measured best overall (docs/MODEL.md sweep)
    top_k: int = 40  # keep the k most likely tokens (0 = all)
    top_p: float = 0.9  # then the smallest set whose probability reaches p
    repetition_penalty: float = 1.1  # > 1 discourages tokens already in the prompt or reply
    seed: int | None = None  # fixes the sampling for one request; None draws a fresh seed

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0

    def validate(self) -> None:
        if not 0 <= self.min_new_tokens <= self.max_new_tokens or self.max_new_tokens < 1:
            raise ValueError("need 0 <= min_new_tokens <= max_new_tokens and max_new_tokens >= 1")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.top_k < 0 or self.repetition_penalty <= 0:
            raise ValueError("top_k must be >= 0 and repetition_penalty > 0")


GREEDY = GenerationParams(temperature=0.0, repetition_penalty=1.0)


def choose(logits: torch.Tensor, seen: torch.Tensor, params: list[GenerationParams],
           generators: list[torch.Generator]) -> list[int]:
    """Next token for each row of ``logits`` (n, vocab); ``logits`` is changed in place.

    ``seen`` (n, vocab, bool) marks tokens already in a row's prompt or reply; the repetition
    penalty follows the CTRL / HF rule (shrink a seen token's logit toward "less likely",
    whatever its sign). It touches only the seen tokens: passes over the whole (n, vocab)
    matrix cost more than the decode step at 64 rows. Top-k runs batched; the final draw is per
    row, so each request keeps its own seeded generator (and the same seed gives the same tokens
    as when the evaluation in docs/MODEL.md was run).
    """
    n, vocab = logits.shape
    if any(p.repetition_penalty != 1.0 for p in params):
        rows, cols = seen.nonzero(as_tuple=True)  # a few hundred per row, not the whole vocabulary
        penalty = torch.tensor([p.repetition_penalty for p in params], dtype=logits.dtype)[rows]
        values = logits[rows, cols]
        logits.index_put_((rows, cols), torch.where(values > 0, values / penalty, values * penalty))
    # Rows of a kind as a copy only when the batch mixes kinds (a copy of 64 x 49,152 costs ms).
    rows_of = lambda kind: logits if len(kind) == n else logits[kind]  # noqa: E731
    tokens = [0] * n
    greedy = [i for i, p in enumerate(params) if p.greedy]
    if greedy:
        for i, token in zip(greedy, rows_of(greedy).argmax(dim=1).tolist()):
            tokens[i] = token
    sampled = [i for i, p in enumerate(params) if not p.greedy]
    if sampled:
        k_max = max(params[i].top_k if 0 < params[i].top_k < vocab else vocab for i in sampled)
        top_values, top_ids = torch.topk(rows_of(sampled), k_max, dim=1)
        for row, i in enumerate(sampled):
            p = params[i]
            k = p.top_k if 0 < p.top_k < vocab else vocab
            probs = torch.softmax(top_values[row, :k] / p.temperature, dim=0)
            if p.top_p < 1.0:
                # Drop a token when the ones before it already reach top_p; the best one always stays.
                probs = probs * ((probs.cumsum(0) - probs) < p.top_p)
            tokens[i] = int(top_ids[row, int(torch.multinomial(probs, 1, generator=generators[i]))])
    return tokens
