"""The ``joey`` command. Its sub-commands are plugins, found like frontends (backend/plugins.py).

A sub-command is a module (or any object) with a docstring whose first line is its help,
``add_arguments(parser)`` and ``run(args) -> int``, registered in pyproject.toml under
``[project.entry-points."joey_chat.commands"]``. So ``joey serve`` lives in the backend,
``joey train`` in training/, ``joey chat`` and ``joey telegram`` in frontends/, and this
module imports none of them by name.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from backend.plugins import COMMANDS, available


HELP_WIDTH = 100  # --help lines never run longer, however wide the terminal


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog, width=min(HELP_WIDTH, shutil.get_terminal_size().columns))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="joey", description="Joey Chat: talk with Joey Tribbiani.",
                                     formatter_class=_formatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, entry in sorted(available(COMMANDS).items()):
        try:
            command = entry.load()
        except ModuleNotFoundError as exc:
            if exc.name and entry.module.startswith(exc.name):  # registered, then moved: a stale install
                print(f"joey: skipping {name!r}: {entry.value} is gone (reinstall: pip install -e .)", file=sys.stderr)
                continue
            raise
        doc = (command.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc.splitlines()[0] if doc else None, formatter_class=_formatter)
        command.add_arguments(p)
        p.set_defaults(func=command.run)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
