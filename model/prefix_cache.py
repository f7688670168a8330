"""Which spare KV-cache slots hold which token sequences, so a prompt can skip their prefill.

Every message brings its whole conversation again (the hub sends turns, not a diff), and
recomputing its keys and values was most of the engine's time once many sessions talked
(docs/benchmarks.md). So when a reply ends, its slot (prompt and reply) is copied into a spare
slot, and a new prompt starts from the entry it shares the longest start with: the same
conversation's last turn, usually, and at least the pinned system message. Only the rest is
prefilled. Entries are evicted least recently used first; the engine copies the keys and
values, this class only keeps the books.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


def common_length(a: tuple[int, ...], b: tuple[int, ...], limit: int) -> int:
    """How many leading tokens ``a`` and ``b`` share, at most ``limit``.

    A binary search over slice comparisons: each is one C-level compare, where a Python loop
    over 500 tokens times 64 entries would cost milliseconds per request.
    """
    low, high = 0, min(len(a), len(b), limit)
    if a[:high] == b[:high]:
        return high
    while high - low > 1:  # a[:low] == b[:low], a[:high] != b[:high]
        middle = (low + high) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle
    return low


class PrefixCache:
    def __init__(self, slots: Sequence[int]):
        self._free = list(reversed(slots))
        # slot -> (ids, how many of them were the prompt), least recently used first
        self._entries: OrderedDict[int, tuple[tuple[int, ...], int]] = OrderedDict()
        self._pinned: set[int] = set()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def capacity(self) -> int:
        return len(self._free) + len(self._entries)

    def longest(self, prompt: Sequence[int]) -> tuple[int | None, int, bool]:
        """The slot sharing the longest start with ``prompt``, how many tokens it shares, and
        whether ``prompt`` continues it (holds the entry's whole prompt: the next turn).

        At most ``len(prompt) - 1`` are shared: the last prompt token must run to give the first
        reply token's logits.
        """
        prompt, best, shared = tuple(prompt), None, 0
        for slot, (ids, _) in self._entries.items():
            n = common_length(ids, prompt, len(prompt) - 1)
            if n > shared:
                best, shared = slot, n
        if best is None:
            return None, 0, False
        self._entries.move_to_end(best)
        return best, shared, best not in self._pinned and shared >= self._entries[best][1]

    def place(self, ids: Sequence[int], stem: int, supersedes: int | None = None, pinned: bool = False) -> int | None:
        """The slot to copy the keys and values of ``ids`` into, now recorded as holding them.

        ``stem``: how many of ``ids`` were the prompt (the rest, the reply). ``supersedes``: the entry this one continues (its conversation's previous turn), whose
        slot is reused so a conversation holds one entry. Else a free slot, else the least
        recently used unpinned entry's. None when every slot is pinned.
        """
        if supersedes in self._entries and supersedes not in self._pinned:
            slot = supersedes
        elif self._free:
            slot = self._free.pop()
        else:
            slot = next((s for s in self._entries if s not in self._pinned), None)
            if slot is None:
                return None
        self._entries.pop(slot, None)
        self._entries[slot] = (tuple(ids), stem)
        if pinned:
            self._pinned.add(slot)
        return slot
