"""Reading transcripts: scenes, cleaning, the fixed hold-out, Joey pairs."""

from __future__ import annotations

from training import data as corpus
from tests.synthetic_data import write_dataset


def test_scenes_drop_directions_and_use_first_names(tmp_path):
    scenes = list(corpus.read_scenes(write_dataset(tmp_path / "d")))
    friends = [s for s in scenes if s.show == "Friends"]
    assert len(friends) == 24 and {s.show for s in scenes} == {"Friends", "The Office"}
    turns = friends[0].turns
    assert [t.speaker for t in turns] == ["Monica", "Joey", "Chandler", "Joey", "All"]
    assert turns[1].text == "Great, I'm starving!" and "(" not in turns[1].text
    assert all("[" not in t.text for t in turns)


def test_every_tenth_episode_is_held_out(tmp_path):
    scenes = list(corpus.read_scenes(write_dataset(tmp_path / "d")))
    held = {s.episode for s in scenes if s.held_out}
    assert held == {"s01e10"}


def test_joey_pairs_take_preceding_turns(tmp_path):
    scenes = list(corpus.read_scenes(write_dataset(tmp_path / "d")))
    train = list(corpus.joey_pairs(scenes, held_out=False))
    held = list(corpus.joey_pairs(scenes, held_out=True))
    assert len(train) == 22 * 2 and len(held) == 2 * 2
    first = train[0]
    assert [t.speaker for t in first.context] == ["Monica"] and first.reply == "Great, I'm starving!"
    assert [t.speaker for t in train[1].context] == ["Monica", "Joey", "Chandler"]
