"""Recall: the sheet's facts nearest to what was said, as a note the prompt builder places."""

from __future__ import annotations

import asyncio

import pytest

from model.character import Character, default_character
from model.engine_options import EngineOptions
from model.generator import JoeyGenerator
from model.presets import PRESETS
from model.prompt import Turn
from model.recall import NOTE_PREFIX, Recall, sheet_sentences
from model.sampling import GREEDY


def test_the_sheet_splits_into_facts_at_sentences_and_semicolons_but_not_after_titles():
    facts = sheet_sentences(default_character())
    assert "My big part is Dr. Drake Ramoray, a neurosurgeon on the soap opera Days of Our Lives." in facts
    assert "Pets and things: Hugsy, my stuffed penguin." in facts  # a piece of a list, given its full stop
    assert "You are Joey" not in " ".join(facts)  # the system line is not a fact
    with pytest.raises(ValueError, match="no sheet"):
        Recall(Character("Bob", "You are Bob."), 2)


def test_the_nearest_facts_come_back_in_sheet_order():
    recall = Recall(default_character(), 3)
    note = recall.note("Who's your agent?")
    assert note.startswith(NOTE_PREFIX) and "Estelle Leonard" in note
    assert "seven sisters" in recall.note("How many sisters do you have?")
    facts = note.removeprefix(NOTE_PREFIX)
    order = [recall.sentences.index(f) for f in recall.sentences if f in facts]
    assert len(order) == 3 and order == sorted(order)
    assert recall.notes(["Who's your agent?", "How many sisters do you have?"]) == [
        note, recall.note("How many sisters do you have?")]


def test_the_generator_recalls_for_the_last_line_said_and_the_engine_gets_that_prompt():
    options = EngineOptions(max_batch=2, process=False, recall=2)
    gen = JoeyGenerator.load(PRESETS["smollm2"].base, None, options)
    turns = [Turn("Ross", "Who's your agent?"), Turn("Joey", "Estelle!"), Turn("Ross", "How many sisters?")]
    assert gen.note(turns) == gen.recall.note("How many sisters?") and gen.note(turns[:2]) == gen.recall.note(
        "Who's your agent?")
    assert gen.tokenizer.decode(gen.prompt_ids(turns, GREEDY)).endswith(
        f"<|im_start|>system\n{gen.note(turns)}<|im_end|>\n<|im_start|>assistant\n")

    async def ask() -> tuple[str, str]:
        gen.start()
        try:
            reply = gen.stream(turns, GREEDY)
            text = "".join([c async for c in reply])
            await reply.aclose()
            return text, reply.finish_reason.value
        finally:
            gen.stop()

    text, finish = asyncio.run(ask())
    assert text and finish in ("stop", "length")
    assert gen.stats().prefill_tokens + gen.stats().reused_tokens == len(gen.prompt_ids(turns, GREEDY))
    assert EngineOptions().recall == 0  # off unless asked: the shipped adapter was trained without it
