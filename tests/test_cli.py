"""The joey command: sub-commands from the registry, refusing to start half-working, and config from flags and environment."""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend.config import Config
from tests.conftest import ROOT


@pytest.mark.parametrize("command", ["serve", "chat", "telegram", "train", "eval"])
def test_every_sub_command_comes_from_the_registry_with_its_help(command):
    # A fresh process, so the installed entry points (joey_chat.commands) are what is read.
    result = subprocess.run([sys.executable, "-m", "backend.cli", command, "--help"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: joey {command} ") and "skipping" not in result.stderr


def test_top_level_help_lists_each_command_with_its_summary():
    result = subprocess.run([sys.executable, "-m", "backend.cli", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "run the chat server" in result.stdout and "chat with Joey in the terminal" in result.stdout


def test_a_bad_boolean_flag_is_refused_by_name():
    from training.cli import add_arguments

    parser = argparse.ArgumentParser(prog="joey train", exit_on_error=False)
    add_arguments(parser)
    assert parser.parse_args(["--data", "d", "--include-more", "off"]).include_more is False
    with pytest.raises(argparse.ArgumentError, match="include-more: expected a boolean \\(true/false\\), got 'maybe'"):
        parser.parse_args(["--data", "d", "--include-more", "maybe"])


def test_serve_without_a_model_exits_with_instructions(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "backend.cli", "serve", "--base-model", str(tmp_path / "missing"), "--port", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "no model at" in result.stderr and "joey train --data" in result.stderr and "--base-model" in result.stderr


def test_config_precedence_flag_then_env_then_default():
    parser = argparse.ArgumentParser()
    Config.add_arguments(parser)
    args = parser.parse_args(["--port", "9001"])
    config = Config.from_sources(args, env={"JOEY_PORT": "9002", "JOEY_TEMPERATURE": "0.5"})
    assert config.port == 9001 and config.temperature == 0.5 and config.max_batch == Config().max_batch


def test_no_help_line_is_longer_than_100_characters_on_a_wide_terminal():
    for command in ("serve", "train", "eval", "chat", "telegram"):
        result = subprocess.run([sys.executable, "-m", "backend.cli", command, "--help"], cwd=ROOT, capture_output=True,
                                text=True, env={**os.environ, "COLUMNS": "300"}, timeout=120)
        assert result.returncode == 0
        assert max(map(len, result.stdout.splitlines())) <= 100, command


def test_every_config_field_has_help():
    assert all(f.metadata.get("help") for f in dataclasses.fields(Config))


def test_train_flags_keep_their_types():
    from training.cli import add_arguments

    parser = argparse.ArgumentParser(prog="joey train")
    add_arguments(parser)
    args = parser.parse_args(["--data", "d", "--work", "w", "--lora-steps", "3", "--lora-lr", "0.5"])
    assert isinstance(args.work, Path) and (args.lora_steps, args.lora_lr) == (3, 0.5)
