"""Generation parameters and next-token choice for one request."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 60  # a reply stops here at the latest (finish reason "length")
    min_new_tokens: int = 1  # end-of-turn is not allowed before this, so a reply is never empty
    temperature: float = 0.8  # <= 0 means greedy
    top_k: int = 40  # keep the k most likely tokens (0 = all)
    top_p: float = 0.9  # then the smallest set whose probability reaches p
    repetition_penalty: float = 1.15  # > 1 discourages tokens already in the prompt or reply
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


def penalize(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """The CTRL / HF rule: shrink a seen token's logit toward "less likely" whatever its sign."""
    if penalty == 1.0 or seen.numel() == 0:
        return logits
    logits = logits.clone()
    picked = logits[seen]
    logits[seen] = torch.where(picked > 0, picked / penalty, picked * penalty)
    return logits


def choose(logits: torch.Tensor, seen: torch.Tensor, params: GenerationParams, gen: torch.Generator) -> int:
    logits = penalize(logits.float(), seen, params.repetition_penalty)
    if params.greedy:
        return int(logits.argmax())
    logits = logits / params.temperature
    if 0 < params.top_k < logits.numel():
        kth = torch.topk(logits, params.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = torch.softmax(sorted_logits, -1).cumsum(-1)
        # Drop a token when the ones before it already reach top_p; the best one always stays.
        drop = cumulative - torch.softmax(sorted_logits, -1) >= params.top_p
        logits[order[drop]] = float("-inf")
    return int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
