"""Which waiting prompts the engine prefills in its next pass, and how many tokens of each.

Several prompts share one forward pass (``LeanLlama.prefill_rows``): for a small model the
fixed cost of a pass is most of a short prompt's cost, and with
many sessions talking several new messages wait at once. Rows are padded to the longest, so a
pass takes prompts from the head of the queue only while padding stays under half of it.
While others decode, a pass computes at most ``budget`` positions, rows times width (the prefill
chunk), so a long new prompt cannot stall the streams already running; the last prompt of a
pass may then be left part-filled, and it is the queue's head at the next step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

# Positions a pass may compute while replies decode, unless a preset sets its own (model/presets.py).
PREFILL_CHUNK = 32


@dataclass(frozen=True)
class Row:
    req: object  # the engine's request: .prompt (token ids) and .prefilled (tokens in its slot)
    start: int  # prompt tokens in its slot before this pass, counting a prefix-cache copy
    take: int  # prompt tokens this pass runs
    source: int | None = None  # the prefix-cache slot to copy ``start`` tokens from first
    continues: bool = False  # that entry is this conversation's previous turn


def plan(waiting: Sequence, free_slots: int, budget: int | None, fits: Callable[[int], bool], cache) -> list[Row]:
    """Rows for the next pass, from the head of ``waiting``; ``budget`` None means no limit.
    ``fits(n)``: whether n tokens fit a cache slot (a row's padding takes positions too).

    The budget counts what the pass computes, rows times its width: a padded position costs what
    a prompt token does. The head is always taken (its prompt must fit: the engine
    checks that first). ``cache`` is the engine's prefix cache; a request's longest shared start is looked up
    on its first pass only.
    """
    rows: list[Row] = []
    width = used = deepest = 0  # the longest take, the tokens taken, the largest start
    for req in waiting:
        if len(rows) >= free_slots:
            break
        source, start, continues = (None, req.prefilled, False) if req.prefilled else cache.longest(req.prompt)
        left = len(req.prompt) - start
        take = left if budget is None else min(left, budget // (len(rows) + 1))
        wider = max(width, take)
        if rows and (take < 1 or (len(rows) + 1) * wider > 2 * (used + take)  # more than half padding
                     or (budget is not None and (len(rows) + 1) * wider > budget)
                     or not fits(max(deepest, start) + wider)):
            break
        rows.append(Row(req, start, take, source, continues))
        width, used, deepest = wider, used + take, max(deepest, start)
        if take < left:
            break  # part-filled: it must be the pass's last row
    return rows
