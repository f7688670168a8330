"""Tiny transcripts in the shared data's format, written by the tests themselves."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

FRIENDS_LINES = [
    ("Monica Geller", "Hi everyone, dinner is ready."),
    ("Joey Tribbiani", "(grabbing a plate) Great, I'm starving!"),
    ("Scene Directions", "(They all sit down.)"),
    ("Chandler Bing", "Could this lasagna be any bigger?"),
    ("Joey Tribbiani", "How you doin'? More for me!"),
    ("#ALL#", "Joey!"),
]


def write_dataset(root: Path, episodes: int = 12) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with gzip.open(root / "friends_s01-s09.jsonl.gz", "wt") as f:
        for ep in range(1, episodes + 1):
            for scene in (1, 2):
                for i, (speaker, text) in enumerate(FRIENDS_LINES):
                    row = {"season": 1, "episode": ep, "scene": scene, "utterance": i + 1, "speaker": speaker,
                           "text": f"{text} [episode {ep}]"}
                    f.write(json.dumps(row) + "\n")
    with gzip.open(root / "theoffice.jsonl.gz", "wt") as f:
        for ep in range(1, 4):
            for i in range(6):
                row = {"season": 1, "episode": ep, "line": i + 1, "speaker": "Michael" if i % 2 else "Jim",
                       "text": f"That's what she said, line {i}."}
                f.write(json.dumps(row) + "\n")
    return root
