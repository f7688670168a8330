"""The whole training pipeline on tiny data, loaded back through the serving code path."""

from __future__ import annotations

import asyncio
import json

from model.generator import JoeyGenerator
from model.prompt import Turn
from model.sampling import GREEDY
from training.train import run
from training.train_config import TrainConfig
from tests.synthetic_data import write_dataset


def test_pipeline_writes_loadable_fp16_weights(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the loss plot goes to docs/loss.png relative to the project
    data = write_dataset(tmp_path / "data")
    cfg = TrainConfig(data=data, out=tmp_path / "weights", work=tmp_path / "work", vocab_size=300, hidden=32,
                      layers=1, heads=2, mlp=64, context=128, seq_len=32, batch=4, pretrain_steps=4,
                      lora_steps=3, eval_every=2, warmup=1, lora_context_tokens=64)
    run(cfg)
    base, lora = tmp_path / "weights" / "base", tmp_path / "weights" / "joey-lora"
    assert json.loads((base / "config.json").read_text())["dtype"] == "float16"
    assert (lora / "adapter_model.safetensors").exists() and (tmp_path / "docs" / "loss.png").exists()
    history = json.loads((tmp_path / "work" / "history.json").read_text())
    assert {row[0] for row in history} == {"pretrain", "lora"}

    async def reply() -> str:
        gen = JoeyGenerator.load(str(base), str(lora), max_batch=2)
        gen.start()
        try:
            return "".join([c async for c in gen.stream([Turn("Ross", "Hi")], GREEDY)])
        finally:
            gen.stop()

    assert isinstance(asyncio.run(reply()), str)
