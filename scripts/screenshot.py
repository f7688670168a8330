"""Take docs/screenshot.png: a real conversation on the web page, in headless Chromium.

    .venv/bin/python scripts/screenshot.py                 # the default model, as `joey serve` loads it
    .venv/bin/python scripts/screenshot.py --model mini    # another preset (JOEY_MODEL works too)
    .venv/bin/python scripts/screenshot.py --theme dark --width 390 --height 780 --out /tmp/phone.png

It starts `joey serve` itself (the same preset, weights and settings, JOEY_* variables included)
on a free loopback port, opens the page, sends a few messages, waits for each streamed reply and
saves the screenshot.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.process import ChildServer, free_port  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MESSAGES = ["Hey Joey! How you doin'?", "What's your favourite food?", "Would you share your pizza with me?"]


def joey_serve(model: str | None) -> ChildServer:
    """`joey serve` itself, as a user starts it (JOEY_* variables included), on a free port."""
    port = free_port()
    env = {"JOEY_PORT": str(port), "JOEY_STATE_PATH": "", "JOEY_FRONTENDS": ""} | ({"JOEY_MODEL": model} if model else {})
    return ChildServer([str(ROOT / ".venv" / "bin" / "joey"), "serve"], port, env, start_timeout=300,
                       stop_signal=signal.SIGTERM)


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

    with joey_serve(args.model) as server:
        asyncio.run(shoot(f"http://127.0.0.1:{server.port}/", args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
