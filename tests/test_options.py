"""Settings helpers: one reading of booleans everywhere, and help text in field metadata."""

from __future__ import annotations

import dataclasses

import pytest

from model.options import opt, parse_bool


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
