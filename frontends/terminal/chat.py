"""chat with Joey in the terminal (a protocol-v1 WebSocket client that resumes your session)

    joey chat                                  # the server at ws://127.0.0.1:8000/ws
    joey chat --server wss://joey.example/ws --api-key KEY --name Chandler

Type a line and press Enter; Joey's reply streams in as he "types". ``/reset`` starts the
conversation over, ``/quit`` (or Ctrl-D) exits. Ctrl-C stops the reply in flight; a second
Ctrl-C (while Joey is quiet, or before the reply has stopped) exits with status 130.

The session id and token are kept in ``--session-file`` (one per server URL, readable only by
you), so the next ``joey chat`` continues the same conversation. A dropped connection or a
restarted server is invisible: the client reconnects with backoff, resumes the session and the
server replays whatever was missed (client/, docs/protocol.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from client import ClientError, ConnectionLost, JoeyClient, WebSocketTransport
from frontends.terminal.line_input import LineReader, catch_interrupts, release_interrupts
from frontends.terminal.session_file import SessionFile

DEFAULT_SERVER = "ws://127.0.0.1:8000/ws"
DEFAULT_SESSION_FILE = "~/.config/joey-chat/session.json"
EXIT_INTERRUPTED = 130  # the shell convention for "ended by Ctrl-C"
HELP = "/reset starts over, /quit exits, Ctrl-C stops Joey mid-reply (twice: quit)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default=DEFAULT_SERVER,
                        help=f"the server's WebSocket URL (default {DEFAULT_SERVER})")
    parser.add_argument("--name", default=None, help="how Joey calls you (new sessions only)")
    parser.add_argument("--api-key", default=os.environ.get("JOEY_API_KEY") or None,
                        help="the server's API key, if it needs one (default: env JOEY_API_KEY)")
    parser.add_argument("--session-file", default=DEFAULT_SESSION_FILE,
                        help=f"where the session is kept to resume it next time ('' = don't keep it; "
                             f"default {DEFAULT_SESSION_FILE})")
    parser.add_argument("--new", action="store_true", help="start a new conversation instead of resuming")


def run(args: argparse.Namespace) -> int:
    try:
        sys.stdout.reconfigure(errors="replace")  # an emoji on a latin-1 terminal must not crash us
    except (AttributeError, ValueError):
        pass
    return asyncio.run(Terminal(args).main())


# --- the client, with notices on reconnect ----------------------------------------------------
class TerminalClient(JoeyClient):
    def __init__(self, *args, on_reconnecting=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.on_reconnecting = on_reconnecting

    async def _reconnect(self) -> None:
        if self.on_reconnecting:
            self.on_reconnecting()
        await super()._reconnect()


class Terminal:
    def __init__(self, args: argparse.Namespace, out=None):
        self.args = args
        self.out = out or sys.stdout
        self.interactive = os.isatty(0) and os.isatty(1)
        self.sessions = SessionFile(args.session_file)
        self.mid_line = False  # the cursor is after some of Joey's reply
        self.replying = self.reply_shown = False
        self.cancel_requested_at: float | None = None
        self.exit_code: int | None = None
        self.quit_event: asyncio.Event | None = None
        self.sessions_seen = 0
        self.client: TerminalClient | None = None

    # --- output ---------------------------------------------------------------------------
    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def notice(self, text: str) -> None:
        self.write(("\n" if self.mid_line else "") + f"({text})\n")
        self.mid_line = False

    def _on_chunk(self, text: str) -> None:
        if not self.mid_line:  # the reply's first words, or its continuation after a notice
            text = text.lstrip()
            if not text:
                return
            text = "Joey: " + text
        self.write(text)
        self.mid_line = self.reply_shown = True

    def _on_session(self, frame: dict) -> None:
        self.sessions_seen += 1
        self.sessions.put(self.args.server, frame["session_id"], frame["token"])
        client = self.client
        if self.sessions_seen == 1:
            if frame["resumed"]:
                self.notice(f"resumed your conversation: {len(frame['history'])} earlier messages")
                for turn in frame["history"][-6:]:
                    who = "you" if turn["role"] == "user" else "Joey"
                    self.write(f"  {who}: {turn['text']}\n")
            else:
                lost = " (the saved one had expired)" if client and client.session_lost else ""
                self.notice(f"new conversation{lost}")
            self.notice(HELP)
        elif frame["resumed"]:
            self.notice("reconnected")
        else:
            self.notice("reconnected, but the server had forgotten the conversation: starting over")

    def _on_reconnecting(self) -> None:
        self.notice("connection lost; reconnecting...")

    # --- Ctrl-C -----------------------------------------------------------------------------
    def _on_interrupt(self) -> None:
        """Ctrl-C: the first one during a reply cancels it; one while idle, or a second one, quits."""
        if self.replying and self.cancel_requested_at is None:
            self.cancel_requested_at = time.monotonic()
            asyncio.get_running_loop().create_task(self._send_cancel())
            return
        self.quit(EXIT_INTERRUPTED)

    async def _send_cancel(self) -> None:
        # Straight to the transport: if the connection is down, the reply's own reconnect
        # handles it, and a second reconnect must not race that one.
        try:
            await self.client.transport.send({"type": "cancel"})
        except ConnectionLost:
            pass

    def quit(self, code: int) -> None:
        if self.exit_code is None:
            self.exit_code = code
        self.quit_event.set()

    async def _or_quit(self, awaitable):
        """Await ``awaitable`` unless quit comes first; returns (done, result)."""
        task = asyncio.ensure_future(awaitable)
        quitting = asyncio.ensure_future(self.quit_event.wait())
        try:
            await asyncio.wait({task, quitting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            quitting.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return False, None
        return True, task.result()

    # --- the conversation -------------------------------------------------------------------
    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        self.quit_event = asyncio.Event()
        catch_interrupts(loop, self._on_interrupt)
        reader = LineReader()
        session_id, token = (None, None) if self.args.new else self.sessions.get(self.args.server)
        self.client = TerminalClient(WebSocketTransport(self.args.server, api_key=self.args.api_key),
                                     name=self.args.name, session_id=session_id, token=token,
                                     on_reconnecting=self._on_reconnecting)
        self.client.on_session = self._on_session
        try:
            try:
                done, _ = await self._or_quit(self.client.start())
            except ConnectionLost as exc:
                print(f"joey chat: cannot reach {self.args.server}: {exc}", file=sys.stderr)
                return 1
            except ClientError as exc:
                print(f"joey chat: the server refused: {exc}", file=sys.stderr)
                return 1
            if not done:
                return self.exit_code
            return await self._converse(reader)
        finally:
            reader.close()
            release_interrupts(loop)
            try:
                await asyncio.wait_for(self.client.close(), 2)
            except Exception:  # closing a connection that is already gone
                pass

    async def _converse(self, reader: LineReader) -> int:
        while True:
            if self.interactive:
                self.write("you> ")
            done, line = await self._or_quit(reader.queue.get())
            if not done:
                return self.exit_code
            if line is None:  # end of input
                if self.interactive:
                    self.write("\n")
                return 0
            text = line.strip()
            if not text:
                continue
            if text in ("/quit", "/exit"):
                return 0
            if text == "/help":
                self.notice(HELP)
            elif text == "/reset":
                if not await self._call(self.client.reset()):
                    return self.exit_code
                self.notice("started over: Joey has forgotten the conversation")
            elif text.startswith("/") and " " not in text:
                self.notice(f"unknown command {text}; {HELP}")
            elif not await self._ask(text):
                return self.exit_code

    async def _call(self, awaitable) -> bool:
        try:
            done, _ = await self._or_quit(awaitable)
        except ClientError as exc:
            self.notice(f"error: {exc.message}")
            return True
        return done

    async def _ask(self, text: str) -> bool:
        """Ask Joey and stream the reply; False when the user quit meanwhile."""
        self.replying, self.cancel_requested_at, self.reply_shown = True, None, False
        try:
            done, end = await self._or_quit(self.client.ask(text, on_chunk=self._on_chunk))
        except ClientError as exc:
            if exc.code == "rate_limited" and exc.retry_after:
                self.notice(f"slow down: try again in {exc.retry_after:.0f} s")
            else:
                self.notice(f"{exc.code}: {exc.message}")
            return True
        finally:
            self.replying = False
        if not done:
            self.notice("stopped")
            return False
        if end["finish_reason"] == "cancelled":
            self.notice("stopped" + (" - Ctrl-C again to quit" if self.cancel_requested_at else ""))
        elif self.mid_line:
            self.write("\n")
            self.mid_line = False
        elif not self.reply_shown:
            self.notice("Joey has nothing to say")
        return True
