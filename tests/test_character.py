"""The character card: one file holds the bot's name and the sheet that opens every prompt."""

from __future__ import annotations

import pytest

from model.character import DEFAULT_CARD, CardError, Character, default_character


def test_the_default_card_is_joeys_and_holds_what_a_fan_knows():
    joey = default_character()
    assert joey.name == "Joey" and joey.system.startswith("You are Joey Tribbiani from Friends.")
    sheet = joey.system.lower()
    for fact in ("days of our lives", "drake ramoray", "estelle", "seven sisters", "queens", "chandler",
                 "across the hall from monica", "hugsy", "joey doesn't share food", "how you doin'",
                 "central perk", "paleontologist", "not a computer or an assistant"):
        assert fact in sheet, fact
    assert "about:" not in joey.system  # the front matter's description never reaches the prompt


def test_a_second_character_needs_only_a_file(tmp_path):
    card = tmp_path / "rachel.md"
    card.write_text("---\nname: Rachel\nsystem: You are Rachel Green.\n---\nI work in fashion.\n")
    rachel = Character.load(card)
    assert rachel == Character("Rachel", "You are Rachel Green.\n\nI work in fashion.")


@pytest.mark.parametrize("text,expected", [
    ("no front matter", "expected a front matter"),
    ("---\nname: X\n", "expected a front matter"),
    ("---\nname X\n---\n", "expected 'key: value'"),
    ("---\nname: X\n---\nsheet", "lacks system"),
])
def test_a_malformed_card_says_what_is_wrong(text, expected):
    with pytest.raises(CardError, match=expected):
        Character.parse(text)


def test_the_card_path_is_a_setting_and_a_bad_one_stops_the_server_with_exit_2(tmp_path, monkeypatch, capsys):
    import argparse

    from backend.config import Config
    from backend.serve import add_arguments, run

    card = tmp_path / "joey.md"
    card.write_text(DEFAULT_CARD.read_text().replace("name: Joey", "name: Joseph"))
    monkeypatch.setenv("JOEY_CHARACTER_CARD", str(card))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert Config.from_sources(parser.parse_args([])).character().name == "Joseph"
    assert run(parser.parse_args(["--character-card", str(tmp_path / "missing.md")])) == 2
    assert "cannot read the character card" in capsys.readouterr().err
