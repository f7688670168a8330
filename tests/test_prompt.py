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


def test_bases_without_turn_tokens_get_plain_lines():
    """A stock base (e.g. tinyllama-15M's Llama 2 tokenizer) has no <|turn|>: plain `Name: text` lines."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from model.prompt import stop_text, stop_token_ids

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer, raw.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    raw.train_from_iterator(["Ross: Hi\nJoey: Hey\n"] * 5, trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw)
    ids = build_prompt(tok, [Turn("Ross", "Hi"), Turn("Joey", "Hey"), Turn("Ross", "Pizza?")], 200)
    assert tok.decode(ids) == "Ross: Hi\nJoey: Hey\nRoss: Pizza?\nJoey:"
    assert stop_text(tok) == "\n" and stop_token_ids(tok) == set()
    assert tok.decode(reply_ids(tok, "Sure!")) == " Sure!\n"
