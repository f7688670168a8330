"""The one prompt builder: recent turns that fit, Joey speaks next, specials mark turns."""

from __future__ import annotations

from model.prompt import EOT, SCENE, TURN, Turn, build_prompt, reply_ids, scene_ids


def test_prompt_renders_scene_and_asks_joey(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model[0]))
    ids = build_prompt(tok, [Turn("Ross", "Hi"), Turn("Joey", "Hey"), Turn("Ross", "Pizza?")], 200)
    text = tok.decode(ids)
    assert text == f"{SCENE}{TURN}Ross: Hi{EOT}{TURN}Joey: Hey{EOT}{TURN}Ross: Pizza?{EOT}{TURN}Joey:"


def test_old_turns_are_dropped_first_and_budget_holds(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model[0]))
    turns = [Turn("Ross", f"line number {i}") for i in range(50)]
    ids = build_prompt(tok, turns, 60)
    text = tok.decode(ids)
    assert len(ids) <= 60 and "line number 49" in text and "line number 0" not in text


def test_training_pair_is_prompt_plus_reply(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model[0]))
    turns = [Turn("Ross", "Hi")]
    pair = build_prompt(tok, turns, 100) + reply_ids(tok, "Hey!")
    assert pair == scene_ids(tok, turns + [Turn("Joey", "Hey!")])
