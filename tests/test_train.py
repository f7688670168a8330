"""The whole training pipeline on tiny data, loaded back through the serving code path."""

from __future__ import annotations

import asyncio
import dataclasses
import json

from safetensors import safe_open

from model.engine_options import EngineOptions
from model.generator import JoeyGenerator
from model.prompt import Turn
from model.sampling import GREEDY
from training.train import run
from training.train_config import TrainConfig
from tests.synthetic_data import write_dataset

# Long enough that a changed token shows; forced, so an early end of turn cannot hide a difference.
EIGHT_TOKENS = dataclasses.replace(GREEDY, min_new_tokens=8, max_new_tokens=8)


def reply(base: str, adapter: str | None) -> str:
    async def ask() -> str:
        gen = JoeyGenerator.load(base, adapter, EngineOptions(max_batch=2, process=False))
        gen.start()
        try:
            return "".join([c async for c in gen.stream([Turn("Ross", "Hi")], EIGHT_TOKENS)])
        finally:
            gen.stop()

    return asyncio.run(ask())


def test_mini_pipeline_writes_fp16_weights_that_serve_and_the_adapter_changes_the_reply(tmp_path):
    data = write_dataset(tmp_path / "data")
    # batch 64 > the 44 training pairs: a short epoch must still train (it once divided by zero).
    cfg = TrainConfig(data=data, base="mini", out=tmp_path / "weights", work=tmp_path / "work", vocab_size=300,
                      hidden=32, layers=1, heads=2, mlp=64, context=128, seq_len=32, batch=64, pretrain_steps=4,
                      warmup=1, lora_steps=8, lora_lr=5e-2, lora_warmup=1, eval_every=2, lora_context_tokens=64,
                      lora_max_repeats=0, lora_persona_chats=16, lora_memory_chats=16, lora_recall=0)  # the scenes repeat every line
    run(cfg)
    base, lora = tmp_path / "weights" / "mini" / "base", tmp_path / "weights" / "mini" / "joey-lora"
    assert json.loads((base / "config.json").read_text())["dtype"] == "float16"
    with safe_open(str(lora / "adapter_model.safetensors"), "pt") as f:
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    assert tensors and all(str(t.dtype) == "torch.float16" for t in tensors.values())
    assert any(t.abs().sum() > 0 for name, t in tensors.items() if "lora_B" in name)  # LoRA B starts at zero
    history = json.loads((tmp_path / "work" / "history.json").read_text())
    assert {row[0] for row in history} == {"pretrain", "lora"}
    assert {row[2] for row in history if row[0] == "lora"} == {"train", "val"}

    with_adapter, without = reply(str(base), str(lora)), reply(str(base), None)
    assert with_adapter != without  # the serving path applied the adapter


def test_bland_and_echoing_lines_are_left_out_of_the_adapter_data():
    from model.prompt import Turn
    from training.data import JoeyPair
    from training.lora import informative

    def pair(said: str, reply: str) -> JoeyPair:
        return JoeyPair([Turn("Ross", said)], reply, "s01e01")

    pairs = [pair("Where were you?", "Hey!") for _ in range(3)] + [
        pair("I got the part!", "I got the part too, can you believe it?"),
        pair("Do you want some pizza?", "Do you want some pizza?"),  # an echo
        pair("Did you eat my sandwich?", "Hey! It had my name on it!")]
    kept = informative(pairs, max_repeats=2, drop_echo=True)
    assert [p.reply for p in kept] == ["I got the part too, can you believe it?", "Hey! It had my name on it!"]
    assert informative(pairs, max_repeats=0, drop_echo=False) == pairs


def test_replies_unrelated_to_the_line_said_are_left_out_of_the_adapter_data():
    from model.prompt import Turn
    from training.data import JoeyPair
    from training.lora import related
    from training.metrics import Embedder

    pairs = [JoeyPair([Turn("Ross", said)], reply, "s01e01") for said, reply in [
        ("Do you want some pizza?", "Pizza? I always want pizza!"),
        ("The museum is closing the dinosaur wing.", "They can't close the dinosaurs, Ross!"),
        ("Do you want some pizza?", "My agent says the audition went great.")]]
    assert [p.reply for p in related(pairs, 0.3, Embedder())] == [pairs[0].reply, pairs[1].reply]
    assert related(pairs, 0, Embedder()) == pairs


def test_replies_that_do_not_sound_like_joey_are_left_out_of_the_adapter_data():
    from model.prompt import Turn
    from training.data import JoeyPair
    from training.lora import in_voice
    from training.metrics import Embedder, StyleClassifier

    joey = ["I love meatball sandwiches.", "Pizza! Who wants pizza?", "My agent got me an audition!",
            "How you doin'?", "I'm an actor, I play a doctor on TV.", "Don't touch my food!"]
    others = ["The fossil record is quite clear on this.", "I need to organize the closet by colour.",
              "Could this meeting BE any longer?", "My grandmother's spirit lives in this cat.",
              "These shoes are on sale at Bloomingdale's.", "Paleontology is a serious science."]
    style = StyleClassifier(Embedder(), [("Joey", t) for t in joey] + [("Ross", t) for t in others])
    pairs = [JoeyPair([Turn("Ross", "So what now?")], reply, "s01e01") for reply in [
        "Let's get a sandwich, I'm starving!", "Dinosaur bones are studied by paleontologists."]]
    assert [p.reply for p in in_voice(pairs, 0.5, style)] == [pairs[0].reply]
    assert in_voice(pairs, 0, style) == pairs
