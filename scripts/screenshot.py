"""Take docs/screenshot.png: a real conversation on the web page, in headless Chromium.

    .venv/bin/python scripts/screenshot.py                 # the default model, as `joey serve` loads it
    .venv/bin/python scripts/screenshot.py --model mini    # another preset (JOEY_MODEL works too)
    .venv/bin/python scripts/screenshot.py --theme dark --width 390 --height 780 --out /tmp/phone.png

It starts the real server (the app `joey serve` runs, with the default Config: the same preset,
weights and settings, JOEY_* variables included) on a free loopback port, opens the page, sends
a few messages, waits for each streamed reply and saves the screenshot. If the model's files are
not there yet (the base not converted, the LoRA not trained), it says so and falls back to the
tiny random test model, whose replies are gibberish: re-run it once the weights exist.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import socket
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MESSAGES = ["Hey Joey! How you doin'?", "What's your favourite food?", "Would you share your pizza with me?"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_files(config) -> str | None:
    """What of the configured model is not on disk yet, or None when all of it is."""
    files = config.model_files()
    if not (Path(files.base) / "config.json").is_file():
        return f"no base model at {files.base}"
    if files.adapter and not (Path(files.adapter) / "adapter_config.json").is_file():
        return f"no LoRA adapter at {files.adapter}"
    return None


def with_model(config):
    """The config as given if its model is on disk, else one on the tiny test model."""
    missing = missing_files(config)
    if missing is None:
        return config
    from tests.tiny_model import build_tiny_model

    print(f"{missing}: using the tiny test model (gibberish replies); re-run once the weights exist",
          file=sys.stderr)
    tiny_base, tiny_adapter = build_tiny_model(Path(tempfile.mkdtemp(prefix="joey-tiny-")))
    return dataclasses.replace(config, base_model=str(tiny_base), adapter=str(tiny_adapter),
                               max_new_tokens=40, temperature=0.0)


def running_server(config):
    from backend.app import create_app
    from tests.server_thread import ServerThread

    return ServerThread(create_app(config), config.port, ws_max_size=config.max_frame_bytes, start_timeout=300)


async def shoot(url: str, args) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": args.width, "height": args.height},
                                            device_scale_factor=args.scale, color_scheme=args.theme)
        page = await context.new_page()
        await page.goto(url)
        await page.wait_for_selector("html[data-connection=online]", timeout=60_000)
        for i, text in enumerate(args.message or MESSAGES, start=1):
            await page.fill("#input", text)
            await page.press("#input", "Enter")
            # A locator, not wait_for_function: the page's CSP forbids the eval that one needs.
            await page.locator("#messages .msg--joey[data-state=done]").nth(i - 1).wait_for(timeout=300_000)
        await page.fill("#input", "")
        await page.locator("#input").blur()
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(out), animations="disabled")
        await browser.close()
    print(f"saved {out}")


def main() -> int:
    from backend.config import Config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    parser.add_argument("--model", help="model preset (default: Config's, as `joey serve`)")
    parser.add_argument("--theme", choices=["light", "dark"], default="light")
    parser.add_argument("--width", type=int, default=900)
    parser.add_argument("--height", type=int, default=680)
    parser.add_argument("--scale", type=float, default=1.5, help="device pixel ratio of the image")
    parser.add_argument("--message", action="append", help="a message to send (repeatable); default: three")
    parser.add_argument("--chromium", default=CHROMIUM)
    args = parser.parse_args()

    config = Config.from_sources()  # defaults and JOEY_* variables, exactly as `joey serve` reads them
    if args.model:
        config = dataclasses.replace(config, model=args.model)
    config = with_model(dataclasses.replace(config, port=free_port(), web_root=str(ROOT / "frontends" / "web"),
                                            state_path="", frontends=""))
    with running_server(config):
        asyncio.run(shoot(f"http://127.0.0.1:{config.port}/", args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
