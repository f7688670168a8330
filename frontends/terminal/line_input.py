"""Keyboard input for ``joey chat``: stdin lines and Ctrl-C, delivered on the event loop.

The conversation must keep streaming Joey's reply while it waits for the next line, and Ctrl-C
must reach it as a callback (cancel the reply) rather than a KeyboardInterrupt that unwinds it.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import signal
import threading
from collections.abc import Callable


class LineReader:
    """Lines from stdin on an asyncio.Queue; ``None`` marks the end of input.

    Pipes and terminals are watched with ``add_reader`` (no thread, the fd stays blocking);
    regular files, which epoll refuses, are read by a daemon thread that never delays exit.
    """

    def __init__(self, fd: int = 0):
        self.fd = fd
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._loop = asyncio.get_running_loop()
        try:
            self._loop.add_reader(fd, self._readable)
            self._watching = True
        except (OSError, ValueError):
            self._watching = False
            threading.Thread(target=self._read_in_thread, daemon=True, name="joey-stdin").start()

    def _feed(self, data: bytes) -> None:
        self._buffer += self._decoder.decode(data, final=not data)
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self.queue.put_nowait(line.rstrip("\r"))
        if not data:  # end of input: a last line without a newline still counts
            if self._buffer:
                self.queue.put_nowait(self._buffer)
                self._buffer = ""
            self.queue.put_nowait(None)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
        self._feed(data)

    def _read_in_thread(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                data = b""
            self._loop.call_soon_threadsafe(self._feed, data)
            if not data:
                return

    def close(self) -> None:
        if self._watching:
            self._loop.remove_reader(self.fd)
            self._watching = False


def catch_interrupts(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    """Ctrl-C calls ``callback`` on ``loop`` instead of raising KeyboardInterrupt, where it can."""
    try:
        loop.add_signal_handler(signal.SIGINT, callback)
    except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
        pass


def release_interrupts(loop: asyncio.AbstractEventLoop) -> None:
    try:
        loop.remove_signal_handler(signal.SIGINT)
    except (NotImplementedError, RuntimeError):
        pass
