"""The prefix cache's books: longest shared start, continuation, eviction, pinning."""

from __future__ import annotations

import random

from model.prefix_cache import PrefixCache, common_length


def test_common_length_agrees_with_a_plain_loop():
    rng = random.Random(0)
    for _ in range(500):
        a = tuple(rng.choice((1, 2)) for _ in range(rng.randrange(0, 12)))
        b = tuple(rng.choice((1, 2)) for _ in range(rng.randrange(0, 12)))
        limit = rng.randrange(0, 14)
        plain = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        assert common_length(a, b, limit) == min(plain, limit)


def test_the_longest_shared_start_wins_and_one_token_is_always_left_to_run():
    cache = PrefixCache(range(10, 13))
    system = cache.place([1, 2, 3], stem=3, pinned=True)
    turn = cache.place([1, 2, 3, 4, 5, 6, 7], stem=5)
    assert cache.longest([1, 2, 3, 9]) == (system, 3, False)  # the pinned start is never "continued"
    assert cache.longest([1, 2, 3, 4, 5, 6, 8, 9]) == (turn, 6, True)  # holds the turn's whole prompt
    assert cache.longest([1, 2, 3, 4, 9]) == (turn, 4, False)  # shares less than that prompt: another chat
    assert cache.longest([1, 2, 3, 4, 5, 6, 7]) == (turn, 6, True)  # the last prompt token must run
    assert cache.longest([7, 7]) == (None, 0, False)


def test_a_continuation_reuses_its_slot_and_the_least_recently_used_goes_first():
    cache = PrefixCache(range(3))
    cache.place([0], stem=1, pinned=True)
    a = cache.place([1, 1, 1], stem=2)
    b = cache.place([2, 2, 2], stem=2)
    assert len(cache) == cache.capacity == 3
    assert cache.place([1, 1, 1, 5, 5], stem=4, supersedes=a) == a  # the same chat, one entry
    cache.longest([2, 2, 2, 2])  # b is used again, so a is now the oldest
    c = cache.place([3, 3, 3], stem=2)
    assert c == a and cache.longest([1, 1, 1, 5, 5, 6]) == (None, 0, False)
    assert cache.longest([2, 2, 2, 9])[0] == b and cache.longest([0, 9])[1] == 1  # the pinned one stays


def test_with_every_slot_pinned_nothing_is_placed():
    cache = PrefixCache(range(1))
    cache.place([0], stem=1, pinned=True)
    assert cache.place([1, 2], stem=1) is None
