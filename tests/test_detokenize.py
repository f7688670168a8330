"""Streaming decode never splits a character, and the chunks add up to the text."""

from __future__ import annotations

from model.detokenize import StreamDecoder


def test_multibyte_characters_are_never_split(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model[0]))
    text = "Café au lait 🍕, naïve résumé — 日本 😀!"
    ids = tok.encode(" " + text, add_special_tokens=False)
    assert len(ids) > len(text.split())  # the byte-level BPE really does split characters here
    decoder = StreamDecoder(tok)
    chunks = [decoder.push(i) for i in ids] + [decoder.flush()]
    assert all("\ufffd" not in c for c in chunks)
    assert "".join(chunks) == text


def test_flush_with_a_cut_text_emits_only_what_is_missing(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model[0]))
    decoder = StreamDecoder(tok)
    sent = "".join(decoder.push(i) for i in tok.encode(" Hello there", add_special_tokens=False))
    assert sent + decoder.flush("Hello there, friend") == "Hello there, friend"


def test_near_the_limit_only_whole_sentences_stream_and_the_cut_falls_on_a_sentence_end(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model[0]))
    ids = tok.encode(" Hey! How you doin'? I like sandwiches and pizza", add_special_tokens=False)
    decoder = StreamDecoder(tok, limit=len(ids), holdback=len(ids) - 1)  # only the first token streams freely
    chunks = [decoder.push(i) for i in ids]
    assert "".join(chunks) == "Hey! How you doin'?"  # the unfinished last sentence waited
    assert decoder.finish_at_sentence() == ""  # and is dropped at the limit
    assert decoder.sent == "Hey! How you doin'?"


def test_a_cut_with_no_sentence_end_keeps_the_whole_text(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model[0]))
    decoder = StreamDecoder(tok, limit=3, holdback=3)
    sent = "".join(decoder.push(i) for i in tok.encode(" I like pizza", add_special_tokens=False))
    assert sent + decoder.finish_at_sentence() == "I like pizza"


def test_the_reply_ids_are_a_copy_not_the_decoders_list(tiny_model):
    from transformers import AutoTokenizer

    decoder = StreamDecoder(AutoTokenizer.from_pretrained(str(tiny_model[0])))
    decoder.push(5)
    ids = decoder.ids
    assert ids == (5,) and isinstance(ids, tuple) and len(decoder) == 1
