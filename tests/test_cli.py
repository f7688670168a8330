"""The joey command: refusing to start half-working, and config from flags and environment."""

from __future__ import annotations

import argparse
import subprocess
import sys

from backend.config import Config
from tests.conftest import ROOT


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


def test_every_config_field_has_help():
    import dataclasses

    assert all(f.metadata.get("help") for f in dataclasses.fields(Config))
