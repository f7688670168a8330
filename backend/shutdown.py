"""Graceful shutdown on SIGTERM/SIGINT: tell the clients before the sockets close.

uvicorn, on a signal, closes every WebSocket with 1012 first and runs the app's shutdown code
after, too late to send anything. So the app puts its handler in front of uvicorn's: on the
first signal the hub drains (no new messages; replies in flight may finish within
``shutdown_grace_s``; the rest are interrupted, not kept, and answered again when their clients
resend after the restart), sends ``server_restarting`` (the connection then closes with 1012),
waits briefly for the connections to go, and only then hands the signal to uvicorn. A second
signal goes straight to uvicorn (its forced exit). A watchdog ends the process if anything
still hangs well past the bound, so a stuck task cannot keep it alive.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time

log = logging.getLogger("joey.shutdown")

SIGNALS = (signal.SIGTERM, signal.SIGINT)
CLOSE_WAIT_S = 2.0  # after server_restarting, how long the clients get to close their sockets first


class GracefulShutdown:
    def __init__(self, hub, connections: set, grace_s: float):
        self.hub, self.connections, self.grace_s = hub, connections, grace_s
        self.draining = False
        self._previous: dict[int, object] = {}

    @property
    def exit_bound_s(self) -> float:
        """Longest the process lives after the first signal: drain, uvicorn's close, lifespan shutdown."""
        return 2 * self.grace_s + 10

    def install(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Put our handler in front of uvicorn's. Only the main thread can take signals."""
        if threading.current_thread() is not threading.main_thread():
            return False
        self.loop = loop
        for sig in SIGNALS:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)
        return True

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame) -> None:
        if self.draining:
            self._pass_on(signum, frame)
            return
        self.draining = True
        threading.Thread(target=self._watchdog, daemon=True, name="joey-shutdown-watchdog").start()
        self.loop.call_soon_threadsafe(lambda: self.loop.create_task(self._drain(signum, frame)))

    async def _drain(self, signum: int, frame) -> None:
        log.info("signal %d: draining replies, then telling %d connections", signum, len(self.connections))
        try:
            await asyncio.wait_for(self.hub.stop(self.grace_s), 1.5 * self.grace_s + 2)
            deadline = time.monotonic() + CLOSE_WAIT_S
            while self.connections and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        except Exception:
            log.exception("graceful drain failed; closing anyway")
        finally:
            self._pass_on(signum, frame)

    def _pass_on(self, signum: int, frame) -> None:
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)
        else:  # uvicorn's handler is gone (SIG_DFL/SIG_IGN): stop as the default would
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def _watchdog(self) -> None:
        time.sleep(self.exit_bound_s)
        log.error("still alive %.0f s after the shutdown signal; exiting now", self.exit_bound_s)
        logging.shutdown()
        os._exit(1)
