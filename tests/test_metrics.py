"""The reply measures of `joey eval` that need no model: degenerate, echo, diversity."""

from __future__ import annotations

import pytest
import torch

from training.metrics import degenerate, distinct_2, ends_sentence, is_echo, score


def test_degenerate_kinds():
    assert degenerate("", "stop") == "empty"
    assert degenerate("la la la la la la la la la la", "stop") == "looping"
    assert degenerate("I was gonna say that the", "length") == "cut off"
    assert degenerate("I was gonna say that.", "length") is None  # ended at a sentence boundary
    assert degenerate("How you doin'?", "stop") is None


def test_sentence_end_allows_closing_quotes():
    assert ends_sentence('He said "no."') and ends_sentence("Wait...") and not ends_sentence("and then")


def test_echo_catches_copies_not_answers():
    assert is_echo("Do you want some pizza?", "Do you want some pizza")
    assert is_echo("I got a new job at the museum!", "a new job at the museum")
    assert not is_echo("Hey.", "Hey. What, what are you doing here?")  # says more than the greeting
    assert not is_echo("Do you want some pizza?", "Are you kidding? I always want pizza!")


def test_distinct_2_counts_distinct_bigrams():
    assert distinct_2(["a b c", "a b c"]) == 0.5
    assert distinct_2(["a b", "c d"]) == 1.0


def test_relevance_with_echoes_left_out_scores_only_the_answers():
    vectors = {"Want pizza?": [1.0, 0.0], "Want pizza?!": [1.0, 0.0], "Pizza? Always!": [0.6, 0.8]}
    embed = lambda texts: torch.tensor([vectors[t] for t in texts])  # noqa: E731 (a stand-in for MiniLM's unit vectors)
    s = score(embed, None, ["Want pizza?", "Want pizza?"], ["Want pizza?!", "Pizza? Always!"], ["stop", "stop"])
    assert s.echo == 0.5
    assert s.relevance == pytest.approx(0.8) and s.relevance_answering == pytest.approx(0.6)
