"""Which waiting prompts share the engine's next prefill pass."""

from __future__ import annotations

from dataclasses import dataclass, field

from model.prefill_plan import plan
from model.prefix_cache import PrefixCache


@dataclass
class Req:
    prompt: list[int]
    prefilled: int = 0
    continues: int | None = field(default=None)


def prompt(n: int, first: int = 100) -> list[int]:
    return list(range(first, first + n))


def within(context: int):
    """LeanLlama.fits for a ``context``-token cache: room must remain for the next token."""
    return lambda length: length < context - 1


def takes(rows) -> list[tuple[int, int]]:
    return [(r.start, r.take) for r in rows]


def test_short_prompts_share_one_pass_up_to_the_free_slots():
    waiting = [Req(prompt(20)), Req(prompt(18)), Req(prompt(25)), Req(prompt(22))]
    assert takes(plan(waiting, free_slots=3, budget=None, fits=within(512), cache=PrefixCache([]))) == \
        [(0, 20), (0, 18), (0, 25)]


def test_while_others_decode_a_pass_stays_within_the_budget_and_only_its_last_row_is_part_filled():
    waiting = [Req(prompt(20)), Req(prompt(30)), Req(prompt(30))]
    rows = plan(waiting, free_slots=8, budget=48, fits=within(512), cache=PrefixCache([]))
    assert takes(rows) == [(0, 20), (0, 24)]  # two rows of width 24: 48 positions
    waiting[0].prefilled, waiting[1].prefilled = 20, 24
    waiting.pop(0)  # the first joined the decoding requests; the part-filled one is now the head
    assert takes(plan(waiting, free_slots=8, budget=48, fits=within(512), cache=PrefixCache([]))) == [(24, 6), (0, 24)]


def test_the_budget_counts_padding_so_a_sliver_of_a_prompt_never_widens_a_pass():
    waiting = [Req(prompt(21)) for _ in range(4)]
    # Counted in prompt tokens, the fourth would join with 1 token padded to 21: 84 positions.
    assert takes(plan(waiting, free_slots=8, budget=64, fits=within(512), cache=PrefixCache([]))) == [(0, 21)] * 3
    # A long head alone takes the whole budget.
    assert takes(plan([Req(prompt(200))], free_slots=8, budget=64, fits=within(512), cache=PrefixCache([]))) == \
        [(0, 64)]


def test_a_long_prompt_does_not_join_short_ones_when_most_of_the_pass_would_be_padding():
    waiting = [Req(prompt(10)), Req(prompt(10)), Req(prompt(200))]
    assert takes(plan(waiting, free_slots=8, budget=None, fits=within(512), cache=PrefixCache([]))) == [(0, 10), (0, 10)]
    assert takes(plan(waiting[2:], free_slots=8, budget=None, fits=within(512), cache=PrefixCache([]))) == [(0, 200)]


def test_padding_never_runs_past_the_context():
    waiting = [Req(prompt(100), prefilled=90), Req(prompt(30))]  # padded to 30, the head would reach 120
    assert takes(plan(waiting, free_slots=8, budget=None, fits=within(115), cache=PrefixCache([]))) == [(90, 10)]


def test_a_prompt_starts_after_what_the_prefix_cache_holds_of_it():
    cache = PrefixCache([7, 8])
    system = prompt(40)
    slot = cache.place(system, len(system), pinned=True)
    waiting = [Req(system + prompt(12, first=900)), Req(prompt(15, first=700))]
    rows = plan(waiting, free_slots=8, budget=None, fits=within(512), cache=cache)
    assert takes(rows) == [(40, 12), (0, 15)]
    assert (rows[0].source, rows[1].source) == (slot, None)
