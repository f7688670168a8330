"""The ``joey`` command: serve, train, eval, chat and telegram."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from backend.config import Config

NO_MODEL_HELP = """\
joey: no model at {where}.
Joey Chat ships its adapters in weights/ and installs the SmolLM2 base at set-up. Either:
  - set up again:        bash scripts/setup.sh          (installs and converts the SmolLM2 base)
  - restore the weights: git checkout -- weights/
  - train your own:      joey train --data ../shared/data      (about 90 minutes on 2 CPU cores)
  - use the small model: joey serve --model mini
  - or point elsewhere:  joey serve --base-model DIR_OR_HUB_ID --adapter DIR_OR_HUB_ID
"""


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from backend.app import create_app

    from model.generator import missing_model
    from model.presets import BaseModelMissing, ensure_base

    try:
        config = Config.from_sources(args)
        files = config.model_files()
        ensure_base(files)
    except (ValueError, BaseModelMissing) as exc:
        print(f"joey serve: {exc}", file=sys.stderr)
        return 2
    if args.telegram and "telegram" not in config.frontend_names():
        config.frontends = ",".join([*config.frontend_names(), "telegram"])
    if missing := missing_model(files.base, files.adapter):
        print(NO_MODEL_HELP.format(where=missing), file=sys.stderr)
        return 2
    from backend.plugins import preflight

    if problems := preflight(config):
        print("\n".join(f"joey serve: {problem}" for problem in problems), file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(config), host=config.host, port=config.port, log_level=config.log_level,
        # Named explicitly: uvicorn's "auto" choice changed between versions.
        ws="websockets-sansio", ws_max_size=config.max_frame_bytes, ws_ping_interval=20, ws_ping_timeout=20,
    )
    return 0


def _add_dataclass_flags(parser: argparse.ArgumentParser, cls, skip: tuple = ()) -> None:
    for f in dataclasses.fields(cls):
        if f.name in skip or f.name == "history":
            continue
        kind = {int: int, float: float, bool: _bool, Path: Path}.get(type(f.default), str)
        parser.add_argument("--" + f.name.replace("_", "-"), type=kind, default=f.default)


def _bool(text: str) -> bool:
    return text.lower() in ("1", "true", "yes", "on")


def train(args: argparse.Namespace) -> int:
    from training.train import run
    from training.train_config import TrainConfig

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if f.name != "history"}
    run(TrainConfig(**values))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="joey", description="Joey Chat: talk with Joey Tribbiani.")
    sub = parser.add_subparsers(dest="command", required=True)

    p_serve = sub.add_parser("serve", help="run the chat server (WebSocket /ws and the web page at /)")
    Config.add_arguments(p_serve)
    p_serve.add_argument("--telegram", action="store_true", help="also run the Telegram bot in-process "
                         "(same as --frontends telegram; needs TELEGRAM_BOT_TOKEN)")
    p_serve.set_defaults(func=serve)

    from training.train_config import TrainConfig

    p_train = sub.add_parser("train", help="train the tokenizer, base model and Joey LoRA from transcripts")
    p_train.add_argument("--data", type=Path, required=True, help="folder with the transcripts")
    _add_dataclass_flags(p_train, TrainConfig, skip=("data",))
    p_train.set_defaults(func=train)

    for name, module in (("eval", "training.evaluate"), ("chat", "backend.terminal"), ("telegram", "frontends.telegram.cli")):
        _add_optional(sub, name, module)

    args = parser.parse_args(argv)
    return args.func(args)


def _add_optional(sub, name: str, module: str) -> None:
    """Sub-commands whose modules register their own flags through ``add_arguments``."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return
        raise
    p = sub.add_parser(name, help=mod.__doc__.strip().splitlines()[0] if mod.__doc__ else None)
    mod.add_arguments(p)
    p.set_defaults(func=mod.run)


if __name__ == "__main__":
    sys.exit(main())
