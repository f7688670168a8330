"""run the chat server (WebSocket /ws and the web page at /)

    joey serve                        # SmolLM2 + the Joey LoRA on 127.0.0.1:8000
    joey serve --model mini --port 9000

Every flag is a field of backend/config.py (also settable as JOEY_*). The server refuses to start
half-working: a missing model or a frontend that cannot run stops it here, with instructions.
"""

from __future__ import annotations

import argparse
import logging
import sys

from backend.config import Config

NO_MODEL_HELP = """\
joey: no model at {where}.
Joey Chat ships its adapters in weights/ and installs the SmolLM2 base at set-up. Either:
  - set up again:        bash scripts/setup.sh          (installs and converts the SmolLM2 base)
  - restore the weights: git checkout -- weights/
  - train your own:      joey train --data ../shared/data      (about an hour on 2 CPU cores)
  - use the small model: joey serve --model mini
  - or point elsewhere:  joey serve --base-model DIR_OR_HUB_ID --adapter DIR_OR_HUB_ID
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    Config.add_arguments(parser)
    parser.add_argument("--telegram", action="store_true", help="also run the Telegram bot in-process "
                        "(same as --frontends telegram; needs TELEGRAM_BOT_TOKEN)")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from backend.app import create_app
    from backend.plugins import preflight
    from backend.ws_protocol import uvicorn_options
    from model.loading import missing_model
    from model.presets import BaseModelMissing, ensure_base

    try:
        config = Config.from_sources(args)
        files = config.model_files()
        config.character()  # a missing or malformed card stops the start here (CardError)
        ensure_base(files)
    except (ValueError, BaseModelMissing) as exc:
        print(f"joey serve: {exc}", file=sys.stderr)
        return 2
    if args.telegram and "telegram" not in config.frontend_names():
        config.frontends = ",".join([*config.frontend_names(), "telegram"])
    if missing := missing_model(files.base, files.adapter):
        print(NO_MODEL_HELP.format(where=missing), file=sys.stderr)
        return 2
    if problems := preflight(config):
        print("\n".join(f"joey serve: {problem}" for problem in problems), file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(config), host=config.host, port=config.port, log_level=config.log_level, **uvicorn_options(config),
    )
    return 0
