"""Settings dataclasses: one field declares a setting; its flag and environment variable follow.

Shared by the server's Config, the Telegram adapter's settings and ``joey train``: field
``poll_timeout`` of a class read with prefix ``JOEY_TELEGRAM_`` is ``--poll-timeout`` and
``JOEY_TELEGRAM_POLL_TIMEOUT``. Precedence: flag, then environment, then the field's default.
``--flag yes`` means the same everywhere (and a typo is an error, not a silent false).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path


class NotABoolean(argparse.ArgumentTypeError, ValueError):
    """Both: argparse shows an ArgumentTypeError's own message with the flag's name."""


def opt(default, help: str, env: str = "", flag: bool = True, secret: bool = False):
    """A setting: ``help`` for ``--help``; ``env`` names its variable where the derived name will not
    do; ``flag=False`` keeps it off the command line; ``secret`` keeps it out of repr and help."""
    return field(default=default, repr=not secret, metadata={"help": help, "env": env, "flag": flag})


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


def env_name(f: dataclasses.Field, prefix: str) -> str:
    return f.metadata.get("env") or prefix + f.name.upper()


def _settings(cls, skip: tuple[str, ...]) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.name not in skip and "help" in f.metadata]


def add_flags(parser: argparse.ArgumentParser, cls, env_prefix: str, skip: tuple[str, ...] = ()) -> None:
    """A flag per field of ``cls``, its help ending with the variable and default it falls back to."""
    for f in _settings(cls, skip):
        if not f.metadata["flag"]:
            continue
        # A boolean flag alone means true (`--openai`); `--openai false` still reads its value.
        alone = {"nargs": "?", "const": True} if parser_for(f) is parse_bool else {}
        parser.add_argument("--" + f.name.replace("_", "-"), type=parser_for(f), default=None, **alone,
                            help=f"{f.metadata['help']} (env {env_name(f, env_prefix)}, default {f.default!r})")


def read_settings(cls, env_prefix: str, args: argparse.Namespace | None = None, env: Mapping | None = None,
                  skip: tuple[str, ...] = ()) -> dict:
    """The fields of ``cls`` set by a flag in ``args`` or else a variable in ``env``."""
    env = os.environ if env is None else env
    values = {}
    for f in _settings(cls, skip):
        raw = getattr(args, f.name, None) if args is not None and f.metadata["flag"] else None
        if raw is None:
            raw = env.get(env_name(f, env_prefix))
        if raw is not None:
            values[f.name] = parser_for(f)(raw)
    return values
