"""One way to declare settings (model/options.py): a field gives its flag and its variable, and
one reading of booleans everywhere."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from backend.config import Config
from frontends.telegram.cli import add_arguments as telegram_arguments
from frontends.telegram.config import TOKEN_ENV, TelegramConfig
from model.options import env_name, opt, parse_bool
from training.cli import add_arguments as train_arguments
from training.train_config import TrainConfig


@pytest.mark.parametrize("text", ["1", "true", "Yes", " on ", True])
def test_true_spellings(text):
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["0", "false", "NO", "off", False])
def test_false_spellings(text):
    assert parse_bool(text) is False


def test_a_typo_is_an_error_not_false():
    with pytest.raises(ValueError, match="expected a boolean"):
        parse_bool("ture")


def test_opt_keeps_default_and_help():
    @dataclasses.dataclass
    class Settings:
        port: int = opt(8000, "TCP port")

    (field,) = dataclasses.fields(Settings)
    assert Settings().port == 8000 and field.metadata["help"] == "TCP port"


def parsed(add, argv):
    parser = argparse.ArgumentParser(exit_on_error=False)
    add(parser)
    return parser, parser.parse_args(argv)


def test_telegram_settings_come_from_flag_then_environment_then_default():
    _, args = parsed(telegram_arguments, ["--poll-timeout", "3", "--drafts"])
    env = {"JOEY_TELEGRAM_POLL_TIMEOUT": "9", "JOEY_TELEGRAM_STATE": "/tmp/t.db", TOKEN_ENV: " 123:abc "}
    config = TelegramConfig.from_env(env, args)
    assert (config.poll_timeout, config.drafts, config.state, config.token) == (3.0, True, "/tmp/t.db", "123:abc")
    assert config.max_open_chats == TelegramConfig().max_open_chats


def test_the_bot_token_is_no_flag_and_never_shown():
    parser, _ = parsed(telegram_arguments, [])
    assert "--token" not in parser.format_help() and parser.format_help().count(TOKEN_ENV) == 1  # the epilog
    assert "123:abc" not in repr(TelegramConfig(token="123:abc", api_key="123:abc"))
    assert TelegramConfig.from_env({"JOEY_API_KEY": "k1", "JOEY_SERVER_URL": "ws://h:1/ws"}).api_key == "k1"


def test_every_setting_of_all_three_has_a_flag_and_a_variable_named_after_it():
    for add, cls, prefix, argv in ((Config.add_arguments, Config, "JOEY_", []),
                                   (telegram_arguments, TelegramConfig, "JOEY_TELEGRAM_", []),
                                   (train_arguments, TrainConfig, "JOEY_TRAIN_", ["--data", "d"])):
        parser, _ = parsed(add, argv)
        text = parser.format_help()
        for name, f in cls.__dataclass_fields__.items():
            if f.metadata.get("flag", name != "data"):
                assert "--" + name.replace("_", "-") in text and env_name(f, prefix) in text, (cls.__name__, name)


def test_train_settings_read_the_environment_too(monkeypatch):
    from training import cli

    seen = {}
    monkeypatch.setenv("JOEY_TRAIN_LORA_STEPS", "7")
    monkeypatch.setattr("training.train.run", lambda config: seen.setdefault("config", config))
    _, args = parsed(train_arguments, ["--data", "d", "--lora-lr", "0.1"])
    assert cli.run(args) == 0
    assert (seen["config"].lora_steps, seen["config"].lora_lr, seen["config"].seed) == (7, 0.1, 0)


def test_a_malformed_variable_is_refused_with_its_reason():
    with pytest.raises(ValueError, match="expected a boolean"):
        TelegramConfig.from_env({"JOEY_TELEGRAM_DRAFTS": "maybe"})
