"""A server as a child process: started, waited on until its /readyz says ready, then stopped.

The benchmarks, the soak, scripts/screenshot.py and the shutdown tests all run servers this way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChildServer:
    """``args`` run from the project root, serving HTTP on ``port``; its output is kept in a
    temporary file, shown when it fails to start or leaves a traceback."""

    def __init__(self, args: list[str], port: int, env: dict[str, str] | None = None, start_timeout: float = 600,
                 stop_signal: int = signal.SIGINT):
        self.args, self.port, self.start_timeout, self.stop_signal = args, port, start_timeout, stop_signal
        # Offline and quiet whatever the caller's environment: no hub, no tokenizer thread pools.
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
                    **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.TemporaryFile()
        self.ready_after_s = float("nan")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def readyz(self) -> dict | None:
        import httpx

        try:
            r = httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2)
            return r.json() if r.status_code == 200 else None
        except httpx.HTTPError:
            return None

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def __enter__(self):
        started = time.monotonic()
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        while self.readyz() is None:
            if self.proc.poll() is not None or time.monotonic() - started > self.start_timeout:
                why = (f"exited with code {self.proc.returncode}" if self.proc.returncode is not None
                       else f"was not ready within {self.start_timeout:g} s")
                output = self.output()[-3000:]
                self.__exit__()
                raise RuntimeError(f"{' '.join(self.args[:4])} {why}:\n{output}")
            time.sleep(0.1)
        self.ready_after_s = time.monotonic() - started
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if "Traceback" in (output := self.output()):
            print("server log had a traceback:\n" + output[-3000:], file=sys.stderr)
        self.log.close()
