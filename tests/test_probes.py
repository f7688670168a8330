"""The persona, memory and in-character probes of `joey eval`: sets, scoring, kept out of training."""

from __future__ import annotations

import json

from model.character import ROOT
from training import probes


def test_the_sets_are_as_large_as_promised():
    assert len(probes.load("persona")["questions"]) >= 60
    conversations = probes.load("memory")["conversations"]
    assert len(conversations) >= 30 and all(2 <= len(c["user"]) - 1 <= 5 for c in conversations)
    assert len(probes.load("character")["prompts"]) >= 30


def test_no_evaluation_question_is_trained_on():
    trained = {q.lower() for item in json.loads((ROOT / "characters" / "joey.train.json").read_text())["persona"]
               for q in item["q"]}
    asked = {p["q"].lower() for p in probes.load("persona")["questions"]} | \
            {line.lower() for c in probes.load("memory")["conversations"] for line in c["user"]} | \
            {p.lower() for p in probes.load("character")["prompts"]}
    assert not trained & asked


def test_an_answer_counts_as_whole_words_only():
    assert probes.holds("Chandler! My buddy.", ["chandler"])
    assert probes.holds("I got SEVEN sisters", ["seven"])
    assert probes.holds("How you doin\u2019?", ["how you doin"])
    assert not probes.holds("I know nothing", ["no"])
    assert not probes.holds("Rosa", ["rosita"])


def test_assistant_speak_and_code_are_out_of_character():
    assert probes.in_character("Paris! I know that one. Ross told me.")
    assert probes.in_character("Whoa, I don't do computers.")
    for reply in ("As an AI, I cannot eat.", "I'm an AI language model.", "Sure! ```python\nprint(1)\n```",
                  "def add(a, b): return a + b", "I am an assistant here to help."):
        assert not probes.in_character(reply), reply
