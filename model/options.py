"""Settings dataclasses as flags: a field's help text, and one way to read a boolean.

Shared by the server's Config, the Telegram adapter's settings and ``joey train``, so that
``--flag yes`` means the same everywhere (and a typo is an error, not a silent false).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import field
from pathlib import Path


class NotABoolean(argparse.ArgumentTypeError, ValueError):
    """Both: argparse shows an ArgumentTypeError's own message with the flag's name."""


def opt(default, help: str):
    """A dataclass field whose ``--help`` text is ``help`` (in the field's metadata)."""
    return field(default=default, metadata={"help": help})


def parse_bool(text) -> bool:
    if isinstance(text, bool):
        return text
    if str(text).strip().lower() in ("1", "true", "yes", "on"):
        return True
    if str(text).strip().lower() in ("0", "false", "no", "off"):
        return False
    raise NotABoolean(f"expected a boolean (true/false), got {text!r}")


# A field's annotation is a string here (``from __future__ import annotations``) or a type.
_PARSERS = {"bool": parse_bool, "int": int, "float": float, "str": str, "Path": Path}


def parser_for(f: dataclasses.Field):
    """How to read field ``f`` from a flag or an environment variable."""
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    return _PARSERS[kind]
