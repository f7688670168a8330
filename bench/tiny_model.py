"""Tiny random-weight Llamas + LoRA, built on disk from text made here (tests and bench use them).

They load through exactly the code path the shipped weights use (JoeyGenerator.load). Two shapes:

* ``scene``: the mini preset's prompt format (scene tokens), 4 heads over 2 KV heads;
* ``chatml``: SmolLM2's shape in miniature: ChatML control tokens, 9 heads over 3 KV heads
  (grouped-query attention), head_dim 8, rope theta 100,000, tied embeddings.
"""

from __future__ import annotations

from pathlib import Path

LINES = [
    ("Monica", "There's nothing to tell, he's just a guy I work with."),
    ("Joey", "Come on, you're going out with the guy! There's gotta be something wrong with him."),
    ("Chandler", "Could this be any more of a tiny test corpus?"),
    ("Joey", "How you doin'? I like sandwiches, meatball subs and pizza."),
    ("Rachel", "Café au lait, naïve résumé — and an emoji 🍕 for the byte-level path."),
    ("Joey", "Joey doesn't share food! 🍕"),
]

# The ChatML shape's 256 positions hold no real sheet: its prompts open with this one line.
TINY_CHARACTER_CARD = "---\nname: Joey\nsystem: You are Joey.\n---\n"

SHAPES = {
    "scene": dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128),
    "chatml": dict(hidden_size=72, num_attention_heads=9, num_key_value_heads=3, head_dim=8,
                   intermediate_size=144, rope_theta=100000.0),
}


def build_tiny_model(root: Path, seed: int = 0, shape: str = "scene") -> tuple[Path, Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from model.character import Character
    from model.prompt import IM_END, IM_START, Turn, scene_ids
    from training.tokenizer import save_tokenizer, train_tokenizer

    torch.manual_seed(seed)
    texts = [f"{s}: {t}" for s, t in LINES] * 20
    tok = train_tokenizer(texts, vocab_size=400)
    if shape == "chatml":
        tok.add_special_tokens({"additional_special_tokens": [IM_START, IM_END]})
    base_dir, lora_dir = root / "base", root / "lora"
    save_tokenizer(tok, base_dir)
    config = LlamaConfig(
        vocab_size=len(tok), num_hidden_layers=2, max_position_embeddings=256, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **SHAPES[shape],
    )
    model = LlamaForCausalLM(config)
    # A few steps on the corpus so greedy output is text-like rather than one repeated token.
    ids = torch.tensor([scene_ids(tok, [Turn(s, t) for s, t in LINES], Character.parse(TINY_CHARACTER_CARD))])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(30):
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(str(base_dir))
    # init_lora_weights=False gives a non-zero adapter, so merging it really changes the output.
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                            init_lora_weights=False))
    lora.save_pretrained(str(lora_dir))
    return base_dir, lora_dir
