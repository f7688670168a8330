"""Engine options: one object built once from Config, every default in one place, zeros resolved once."""

from __future__ import annotations

import dataclasses

from backend.app import load_generator
from backend.config import Config
from model.engine_options import EngineOptions
from model.presets import PRESETS


def test_every_engine_default_of_the_config_is_the_options_own():
    config, options = Config(), EngineOptions()
    assert config.engine_options() == options
    fields = {f.name: f.default for f in dataclasses.fields(Config)}
    assert (fields["max_batch"], fields["context_tokens"], fields["sentence_holdback"], fields["prefix_cache"]) == \
        (options.max_batch, options.context, options.sentence_holdback, options.prefix_cache)


def test_zeros_mean_the_presets_values():
    resolved = EngineOptions().resolved(PRESETS["smollm2"])
    assert (resolved.threads, resolved.prefill_chunk) == (PRESETS["smollm2"].engine_threads, PRESETS["smollm2"].prefill_chunk)
    assert EngineOptions(threads=3, prefill_chunk=5).resolved(PRESETS["mini"]) == EngineOptions(threads=3, prefill_chunk=5)


def test_the_engine_sees_what_the_environment_set(tiny_model):
    env = {"JOEY_MAX_BATCH": "3", "JOEY_SENTENCE_HOLDBACK": "5", "JOEY_PREFIX_CACHE": "2", "JOEY_ENGINE_PROCESS": "false",
           "JOEY_BASE_MODEL": str(tiny_model[0]), "JOEY_ADAPTER": str(tiny_model[1]), "JOEY_ENGINE_DTYPE": "fp32"}
    gen = load_generator(Config.from_sources(env=env))
    engine = gen.engine
    assert (engine.max_batch, engine.sentence_holdback, engine.cache.capacity) == (3, 5, 1 + 2)  # + the sheet's slot
    assert engine.prefill_chunk == PRESETS["smollm2"].prefill_chunk  # 0 in the config: the preset's
    assert engine.model.threads == PRESETS["smollm2"].engine_threads
