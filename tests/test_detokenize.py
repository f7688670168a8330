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
