"""Synthetic training conversations: persona answers from the sheet, facts recalled later."""

from __future__ import annotations

import random

from model.character import default_character
from model.prompt import Turn
from training import chats
from training.train_config import TrainConfig

PAIRS = [("Hey, what's going on?", "Nothin', just eatin'."), ("I hate my job.", "So quit! Be an actor!")]


def test_a_memory_chat_asks_for_a_fact_stated_earlier_and_joey_recalls_it():
    rng, persona = random.Random(0), chats.load_persona()
    for _ in range(200):
        chat = chats.memory_chat(rng, persona, PAIRS)
        user_lines = [t.text.lower() for t in chat.turns if t.speaker != "Joey"]
        recall = chat.turns[-1]
        assert recall.speaker == "Joey" and chat.supervised[-1]
        # The recalled value was said by the user before the question, and it is in the answer.
        stated = [v for f in chats.FACTS for v in f.values
                  if v.lower() in recall.text.lower() and any(v.lower() in u for u in user_lines[:-1])]
        assert stated, recall.text
        assert not any(s for s, t in zip(chat.supervised, chat.turns) if t.speaker != "Joey")
        assert 4 <= len(chat.turns) <= 4 * 2 + 6


def test_a_persona_chat_answers_only_from_the_training_questions():
    rng, persona = random.Random(1), chats.load_persona()
    answers = {a for item in persona for a in item["a"]}
    for _ in range(100):
        chat = chats.persona_chat(rng, persona, PAIRS)
        joey = [t.text for t in chat.turns if t.speaker == "Joey"]
        assert set(joey) - answers <= {r for _, r in PAIRS}


def test_articles_agree_with_the_value():
    assert chats._fill("I'm a {v}.", "architect", "") == "I'm an architect."
    assert chats._fill("a {k} named {v}", "Max", "dog") == "A dog named Max"


def test_an_example_carries_loss_only_on_supervised_lines_and_keeps_the_latest_turns():
    from transformers import AutoTokenizer

    from model.presets import SMOLLM2_DIR, prepare_smollm2
    from training.lora import chat_example

    tok = AutoTokenizer.from_pretrained(str(prepare_smollm2(SMOLLM2_DIR)))
    chat = chats.Chat([Turn("Sam", f"line {i}") for i in range(40)] + [Turn("Joey", "Sam, right?")],
                      [False] * 40 + [True])
    ids, labels = chat_example(tok, chat, TrainConfig(data=".", lora_context_tokens=560), default_character())
    sheet = len(tok(default_character().system)["input_ids"])
    assert len(ids) + sheet <= 560 and len(ids) == len(labels)
    assert tok.decode([t for t in labels if t != -100]) == "Sam, right?<|im_end|>"
    text = tok.decode(ids)
    assert "line 39" in text and "line 0<" not in text and text.endswith("<|im_start|>assistant\nSam, right?<|im_end|>\n")


def test_the_recalled_note_goes_before_the_last_supervised_line_only_and_carries_no_loss():
    from transformers import AutoTokenizer

    from model.presets import SMOLLM2_DIR, prepare_smollm2
    from training.lora import chat_example, last_said

    tok = AutoTokenizer.from_pretrained(str(prepare_smollm2(SMOLLM2_DIR)))
    chat = chats.Chat([Turn("Sam", "Hi!"), Turn("Joey", "Hey!"), Turn("Sam", "Who's your agent?"),
                       Turn("Joey", "Estelle!"), Turn("Sam", "Bye.")], [False, True, False, True, False])
    assert last_said(chat, "Joey") == "Who's your agent?"
    note = "What you know about this: My agent is Estelle Leonard."
    ids, labels = chat_example(tok, chat, TrainConfig(data=".", lora_context_tokens=700), default_character(), note)
    text = tok.decode(ids)
    assert text.count(note) == 1 and text.endswith(
        f"Who's your agent?<|im_end|>\n<|im_start|>system\n{note}<|im_end|>\n<|im_start|>assistant\nEstelle!<|im_end|>\n")
    assert tok.decode([t for t in labels if t != -100]) == "Hey!<|im_end|>Estelle!<|im_end|>"
